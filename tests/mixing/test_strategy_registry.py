"""Strategies register themselves (`@register_strategy` in their own module): a new one needs no list
entry anywhere, and `build_mixing` builds it by its `name`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mixtrain.mixing import STRATEGIES, MixingStrategy, build_mixing, register_strategy
from mixtrain.mixing.base import DataContext

MIXING = Path(__file__).resolve().parents[2] / "mixtrain" / "mixing"


@pytest.fixture
def registry_restored():
    """STRATEGIES as it was before the test: the test's classes are removed at teardown."""
    before = dict(STRATEGIES)
    yield
    STRATEGIES.clear()
    STRATEGIES.update(before)


def test_a_decorated_class_is_built_by_its_name(registry_restored):
    @register_strategy
    class Halves(MixingStrategy):
        name = "test_halves"

        def __init__(self, first: str = "a", max_epochs: float | None = None):
            super().__init__(max_epochs)
            self.first = first

        def compute(self, ctx: DataContext) -> dict[str, float]:
            return {d: (1.0 if d == self.first else 1.0 / (len(ctx.domains) - 1)) for d in ctx.domains}

    assert STRATEGIES["test_halves"] is Halves
    mixing = build_mixing({"strategy": "test_halves", "name": "halves-b", "first": "b"})
    assert type(mixing.strategy) is Halves and mixing.strategy.first == "b"
    assert mixing.name == "halves-b" and mixing.config == {"strategy": "test_halves", "first": "b"}
    ctx = DataContext("unused", ["a", "b", "c"], {d: {"num_train_tokens": 10} for d in "abc"})
    assert mixing.strategy.initial_weights(ctx) == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.25})


def test_the_registry_is_left_as_it_was():
    assert "test_halves" not in STRATEGIES  # the test above registered it; its fixture removed it
    with pytest.raises(ValueError, match="'test_halves' is not a mixing strategy"):
        build_mixing({"strategy": "test_halves"})


def test_register_refuses_a_taken_name_a_missing_name_and_a_non_strategy(registry_restored):
    with pytest.raises(ValueError, match=r"mixing strategy 'uniform' is already mixtrain\.mixing\.static\.Uniform"):
        @register_strategy
        class Uniform(MixingStrategy):
            name = "uniform"
    assert STRATEGIES["uniform"].__module__ == "mixtrain.mixing.static"
    with pytest.raises(TypeError, match="give the class its own `name"):
        @register_strategy
        class Nameless(MixingStrategy):
            pass
    with pytest.raises(TypeError, match="subclasses mixtrain.mixing.base.MixingStrategy"):
        @register_strategy
        class NotAStrategy:
            name = "not_a_strategy"
    assert "not_a_strategy" not in STRATEGIES and "base" not in STRATEGIES  # nothing half-registered


def test_every_registered_class_is_decorated_in_its_own_module():
    """No hand-kept list: each package strategy carries @register_strategy where it is defined, and the
    package's __init__ names no strategy module."""
    decorated = {}
    for path in MIXING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "register_strategy"
                                                      for d in node.decorator_list):
                decorated[node.name] = path.stem
    package = {key: cls for key, cls in STRATEGIES.items() if cls.__module__.startswith("mixtrain.mixing.")}
    assert len(package) >= 13  # 11 + chameleon, domain2vec (other issues add more: a floor, not a count)
    assert {cls.__name__: cls.__module__.rpartition(".")[2] for cls in package.values()} == decorated
    init = (MIXING / "__init__.py").read_text()
    assert not any(f"mixtrain.mixing.{stem} import" in init for stem in set(decorated.values()))


def test_mixing_is_pure_strategies():
    """No torch, Lightning, Hydra or training-stage import anywhere in mixing/ (function-level ones
    counted): the caller hands in what a strategy may not ask itself (DataContext.writes_caches)."""
    found = {}
    for path in sorted(MIXING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad = [n for n in names if n.split(".")[0] in ("torch", "lightning", "pytorch_lightning", "hydra", "omegaconf")
                   or n.startswith("mixtrain.train")]
            if bad:
                found.setdefault(path.name, []).extend(bad)
    assert found == {}


def test_writes_caches_reaches_the_entropy_cache(monkeypatch, tmp_path):
    import mixtrain.prepare.domain_entropy as domain_entropy
    from mixtrain.mixing.base import domain_stats_context

    calls = []

    def fake(data_dir, *, domains, sample_tokens, seed, write):
        calls.append(write)
        return {d: {"ce": 1.0 + i} for i, d in enumerate(domains)}

    monkeypatch.setattr(domain_entropy, "load_or_compute_entropies", fake)
    stats = {d: {"num_train_tokens": 10} for d in "ab"}
    for writes in (True, False):
        ctx = domain_stats_context(str(tmp_path), ["a", "b"], stats, max_steps=None, global_batch_tokens=None,
                                   writes_caches=writes)
        build_mixing({"strategy": "entropy"}).strategy.initial_weights(ctx)
    default = domain_stats_context(str(tmp_path), ["a", "b"], stats, max_steps=None, global_batch_tokens=None)
    assert calls == [True, False] and default.writes_caches is True
