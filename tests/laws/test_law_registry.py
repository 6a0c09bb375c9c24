"""Laws register themselves where they are defined (`@register_law`, laws/law_registry.py): the built-in
laws are found in their historical order, and a law defined anywhere (here: in this test) is built and
loaded by name without touching any other module."""

from __future__ import annotations

import numpy as np
import pytest

from mixtrain.laws import LAWS, BiMixLaw, load_law, make_law
from mixtrain.laws.law_registry import register_law, unregister_law
from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table

NAME = "test_tiny_law"


@pytest.fixture
def tiny_law():
    """A tiny law registered under a test name, removed from the registry again afterwards."""
    assert NAME not in LAWS

    @register_law
    class TinyLaw(BiMixLaw):
        name = NAME

    yield TinyLaw
    unregister_law(NAME)
    assert NAME not in LAWS


def test_builtin_laws_are_registered_in_their_order():
    # the order `law="auto"` tries them in (a tie in regret and parameters goes to the earlier)
    assert list(LAWS)[:7] == ["bimix", "exp", "loglinear", "transfer", "ridge", "lightgbm", "scaling"]
    for name, cls in LAWS.items():
        assert cls.name == name


def test_a_law_defined_with_the_decorator_is_found_by_make_law_and_load_law(tiny_law):
    assert LAWS[NAME] is tiny_law and list(LAWS)[-1] == NAME  # default order: after the built-in laws
    law = make_law(NAME, eps=1e-3)
    assert type(law) is tiny_law
    rng = np.random.default_rng(0)
    alpha, B, beta, C = rng.uniform(0.1, 0.3, 3), rng.uniform(10, 20, 3), rng.uniform(0.3, 0.6, 3), rng.uniform(2, 3, 3)

    def loss(W, s):
        return (W + 1e-3) ** -alpha * (B * s[:, None] ** -beta + C)

    table = synthetic_table(loss, dirichlet_mixtures(3, 6), [100, 300, 1000], ["a", "b", "c"])
    law.fit(table, cv_folds=0)
    back = load_law(law.to_json())
    assert type(back) is tiny_law and back.report["law"] == NAME


def test_register_law_refuses_a_name_taken_by_another_class_and_a_class_without_a_name(tiny_law):
    class Other(BiMixLaw):
        name = NAME

    with pytest.raises(ValueError, match="already registered"):
        register_law(Other)
    assert LAWS[NAME] is tiny_law

    class Nameless(BiMixLaw.__mro__[1]):  # MixingLaw itself: name "base"
        pass

    with pytest.raises(TypeError, match="own `name`"):
        register_law(Nameless)
    with pytest.raises(TypeError):
        register_law(object)
