"""The laws stage is layered: the optimisers (laws/optim/) sit above the laws they optimise, so no module of
mixtrain/laws/ outside laws/optim/ imports from it (not even under TYPE_CHECKING, not even lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

LAWS_DIR = Path(__file__).resolve().parents[2] / "mixtrain" / "laws"
OPTIM = "mixtrain.laws.optim"


def imported_modules(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute name) of every import in `path` (TYPE_CHECKING and function-level ones too);
    `from a import b` yields both a and a.b. `package`: the package relative imports resolve against
    (default: the file's own, from its place under mixtrain/)."""
    if package is None:
        parts = path.relative_to(LAWS_DIR.parents[1]).with_suffix("").parts
        package = ".".join(parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            out += [(node.lineno, base)] + [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def optim_imports(path: Path, package: str | None = None) -> list[str]:
    return [f"{line}: {name}" for line, name in imported_modules(path, package)
            if name == OPTIM or name.startswith(OPTIM + ".")]


def test_no_module_of_laws_outside_optim_imports_the_optimisers():
    modules = sorted(p for p in LAWS_DIR.rglob("*.py") if "optim" not in p.relative_to(LAWS_DIR).parts)
    assert LAWS_DIR / "base.py" in modules and LAWS_DIR / "__init__.py" in modules and len(modules) > 10
    offenders = {str(p.relative_to(LAWS_DIR)): found for p in modules if (found := optim_imports(p))}
    assert not offenders, f"laws/ outside laws/optim/ imports the optimisers above it: {offenders}"


def test_the_check_sees_every_form_of_an_optim_import(tmp_path):
    forms = ["from mixtrain.laws.optim.slsqp import solve", "import mixtrain.laws.optim.sampled",
             "from mixtrain.laws.optim import bootstrap", "from .optim.slsqp import solve", "from . import optim",
             "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mixtrain.laws.optim.slsqp import solve",
             "def f():\n    from mixtrain.laws.optim.sampled import propose"]
    for i, src in enumerate(forms):
        probe = tmp_path / f"probe{i}.py"
        probe.write_text(src + "\n")
        assert optim_imports(probe, package="mixtrain.laws"), src
    fine = tmp_path / "fine.py"
    fine.write_text("from mixtrain.laws.simplex import project_box_simplex\nfrom .support import Optimum\n")
    assert not optim_imports(fine, package="mixtrain.laws")
