"""The package is layered: its import graph has no cycle (every `import` in every module, function-level
ones and `if TYPE_CHECKING:` ones too: a lazy or typing-only import still makes two modules depend on
each other for a reader), stages import only the stages below them, no module is over 400 lines and no
function over 80, at most 5 modules sit directly in mixtrain/ and at most 3 import Hydra or OmegaConf."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mixtrain"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def typing_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) blocks: imports there
    never run, so they order no import; they name the type a function receives (laws/optim/slsqp.py: the
    MixingLaw it optimises, whose class calls it)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in (getattr(node.test, "id", None), getattr(node.test, "attr", None)):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def import_graph(typing_edges: bool = True) -> dict[str, set[str]]:
    """module -> the package modules it imports (`from pkg import sub` is an edge to pkg.sub); with
    `typing_edges=False` the imports inside `if TYPE_CHECKING:` blocks are left out."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        skipped = set() if typing_edges else typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets.update(subs if len(subs) == len(node.names) else subs + [base])
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, colouring)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_a_planted_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_typing_only_skips_type_checking_blocks_but_not_their_else():
    tree = ast.parse("import typing\nif typing.TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
                     "if TYPE_CHECKING:\n    from c import d\n")
    kept = [n.names[0].name for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in typing_only(tree)]
    assert sorted(kept) == ["b", "typing"]


def test_import_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "mixtrain.store.locks" in graph["mixtrain.store.remote"]
    assert "mixtrain.store.locks" in graph["mixtrain.prepare.pipeline"]
    assert "mixtrain.mixing.strategy_registry" in graph["mixtrain.mixing.stages"]
    assert "mixtrain.train.run" in graph["mixtrain.hydra_app"]  # a lazy import inside a function
    assert len(graph) > 30


def test_package_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


MAX_MODULE_LINES = 400  # the project's rule: a module past this is split by responsibility


def test_no_module_is_over_400_lines():
    sizes = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert len(sizes) > 30  # the walk found the package
    too_long = {name: n for name, n in sorted(sizes.items()) if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by responsibility): {too_long}"


MAX_FUNCTION_LINES = 80  # a function past this is split into named steps


def test_no_function_is_over_80_lines():
    too_long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{path.relative_to(PACKAGE.parent).as_posix()}:{node.name}"] = lines
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them into steps): {too_long}"


def test_the_package_is_folders_by_stage():
    """At most 5 modules directly in mixtrain/ (the package, the `mixtrain` command, the weights type,
    the Hydra entry, the user-facing errors); everything else lives in a stage folder whose __init__ says its place in the flow."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 5, top
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Place in the flow" in doc or "place in the flow" in doc, f"{init}: say its place in the flow"


def _imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_hydra_and_omegaconf_are_imported_by_at_most_three_modules():
    users = sorted(path.relative_to(PACKAGE.parent).as_posix() for path in PACKAGE.rglob("*.py")
                   if any(n.split(".")[0] in ("hydra", "omegaconf") for n in _imports_of(path)))
    assert "mixtrain/hydra_app.py" in users and len(users) <= 3, users


# stage -> the stages it must never import (the flow runs the other way)
FORBIDDEN = {
    "mixtrain.store": ("mixtrain.prepare", "mixtrain.train", "mixtrain.model", "mixtrain.mixing", "mixtrain.laws",
                       "mixtrain.fitting", "mixtrain.report", "mixtrain.sampler"),
    "mixtrain.prepare": ("mixtrain.train", "mixtrain.mixing", "mixtrain.laws", "mixtrain.fitting", "mixtrain.report"),
    "mixtrain.sampler": ("mixtrain.train", "mixtrain.mixing", "mixtrain.laws", "mixtrain.fitting", "mixtrain.report"),
    "mixtrain.laws": ("mixtrain.train", "mixtrain.mixing", "mixtrain.fitting", "mixtrain.report", "mixtrain.model"),
    "mixtrain.mixing": ("mixtrain.train", "mixtrain.fitting", "mixtrain.report", "mixtrain.model"),
    "mixtrain.model": ("mixtrain.train", "mixtrain.mixing", "mixtrain.fitting", "mixtrain.report"),
    "mixtrain.embed": ("mixtrain.train", "mixtrain.mixing", "mixtrain.laws", "mixtrain.fitting", "mixtrain.report",
                       "mixtrain.sampler", "mixtrain.cluster"),
    "mixtrain.cluster": ("mixtrain.train", "mixtrain.mixing", "mixtrain.laws", "mixtrain.fitting", "mixtrain.report",
                         "mixtrain.sampler", "mixtrain.model"),
}


def test_stages_import_only_what_lies_below_them():
    graph = import_graph()
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                   for stage, banned in FORBIDDEN.items() if m.startswith(stage + ".") or m == stage
                   if t.startswith(banned))
    assert not wrong, wrong


def test_mixing_is_pure_strategies():
    """mixing/ holds strategies only: no torch, no Lightning, no rank queries (the controller in
    mixtrain/train/ passes what a strategy needs)."""
    for path in (PACKAGE / "mixing").rglob("*.py"):
        roots = {n.split(".")[0] for n in _imports_of(path)}
        assert not roots & {"torch", "lightning", "hydra", "omegaconf"}, (path, roots)
