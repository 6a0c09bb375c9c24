"""The CV-weighted ensemble law (laws/ensemble.py) and auto's ensemble rules (laws/law_choice.py, issue 32)."""

import numpy as np
import pytest

from mixtrain.laws import BiMixLaw, load_law, make_law
from mixtrain.laws.ensemble import ENSEMBLE_TEMPERATURE, EnsembleLaw, ensemble_weights
from mixtrain.laws.law_choice import choose_law
from mixtrain.laws.synthetic import World, dirichlet_mixtures, synthetic_table

DOMAINS = ["web", "code", "math", "wiki"]


def bimix_table(n_runs=10):
    """Own-weight power-law losses (bimix's shape) on 4 domains, 3 steps, 0.2% noise."""
    def loss(W, s):
        return (1.5 + 0.8 * np.maximum(W, 1e-3) ** -0.3) * (1 + 4.0 * s[:, None] ** -0.5)
    return synthetic_table(loss, dirichlet_mixtures(4, n_runs, seed=1), [100, 400, 1000], DOMAINS, noise=0.002, seed=1)


def test_weights_follow_the_cv_scores():
    """Lower mean score -> more weight; equal means -> equal weights whatever the per-seed noise; a law 5
    temperatures behind gets under 1%; one 7 behind is dropped. Weights that ignored the scores fail here."""
    t = ENSEMBLE_TEMPERATURE
    w = ensemble_weights({"a": [0.10, 0.14, 0.12], "b": [0.14, 0.10, 0.12], "c": [0.12 + t] * 3,
                          "far": [0.12 + 5 * t] * 3, "gone": [0.12 + 8 * t] * 3})
    assert w["a"] == pytest.approx(w["b"]) and w["a"] > w["c"] > w["far"]
    assert w["c"] / w["a"] == pytest.approx(np.exp(-1.0))
    assert w["far"] < 0.01 and "gone" not in w and sum(w.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="temperature"):
        ensemble_weights({"a": [0.1]}, temperature=0.0)


def test_ensemble_fit_predicts_the_weighted_members_and_round_trips(tmp_path):
    table = bimix_table(n_runs=10)
    law = make_law("ensemble").fit(table, cv_folds=3)
    rep = law.report["ensemble"]
    cands = rep["candidates"]
    expected = ensemble_weights({n: c["scores"] for n, c in cands.items() if "scores" in c})
    assert rep["weights"] == pytest.approx(expected) and set(law.members) == set(expected)
    assert rep["fold_seeds"] == [0, 1, 2] and len(law.members) >= 2
    W, s = table.W[:5], table.steps[:5]
    mix = sum(v * law.members[n].predict(W, s) for n, v in rep["weights"].items())
    np.testing.assert_allclose(law.predict(W, s), mix, rtol=1e-12)
    zero = law.predict(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]]), [1000, 1000])
    assert np.all(np.isfinite(zero)) and np.all(zero > 0)  # a weight of 0 stays finite, as for every member
    # the weights are fixed for refits: the ensemble's own CV ran (fold clones refit only the members)
    assert law.report["cv"].get("error") is None and law.report["cv"]["n"] == 10
    path = tmp_path / "ensemble.json"
    law.to_json(str(path))
    again = load_law(str(path))
    assert isinstance(again, EnsembleLaw) and again.config["weights"] == pytest.approx(rep["weights"])
    np.testing.assert_allclose(again.predict(W, s), law.predict(W, s), rtol=1e-12)


def test_fixed_weights_refit_only_the_named_members():
    table = bimix_table(n_runs=10)
    law = make_law("ensemble", weights={"bimix": 3.0, "ridge": 1.0}).fit(table, cv_folds=0)
    assert list(law.members) == ["bimix", "ridge"]
    np.testing.assert_allclose(law.params["weights"], [0.75, 0.25])
    with pytest.raises(ValueError, match="none of the members"):
        make_law("ensemble", weights={"no-such-law": 1.0}).fit(table, cv_folds=0)


def test_auto_ensemble_rule_cannot_flip_between_tied_laws(fake_laws):
    """exp and transfer tie and swap places with the fold seed: the "tied" rule writes the ensemble under every
    seed triple, with the two near-equal laws weighted alike and the clearly worse ridge weighted near zero."""
    d = np.array([0.03, -0.01, 0.02, -0.03, 0.01, -0.02, 0.02, -0.03, 0.02])
    spec = {"exp": (list(0.15 + d), 0.95), "transfer": (list(0.15 - d), 0.95), "ridge": ([0.45] * 9, 0.8)}
    laws = fake_laws(spec)
    got = [choose_law(laws, bimix_table(), cv_folds=3, seed=s, ensemble="tied") for s in (0, 3, 6)]
    assert {law.report["auto"]["chosen"] for law in got} == {"ensemble"}
    for law in got:
        w = law.report["ensemble"]["weights"]
        assert abs(w["exp"] - w["transfer"]) < 0.5 and w.get("ridge", 0.0) < 0.01
    # one law clearly best: the "tied" rule keeps the single law (the band holds only it)
    spec = {"exp": ([0.1] * 9, 0.95), "ridge": ([0.45] * 9, 0.8)}
    law = choose_law(fake_laws(spec), bimix_table(), cv_folds=3, ensemble="tied")
    assert law.report["auto"]["chosen"] == "exp"


def test_ensemble_proposal_is_not_worse_than_uniform_on_a_world():
    """The ensemble goes through the default optimiser (bootstrap refits under fixed weights, ridge+bimix check it)."""
    from mixtrain.laws.optim.sampled import propose

    world = World(4, 3)
    table = world.proxy_table(12, seed=3)
    law = make_law("ensemble").fit(table, cv_folds=3)
    p = propose(law, world.s_ref, candidates=600, bootstrap=4, seed=0)
    r = np.array(list(p.weights.values()))
    assert p.shrink["check_law"] == "ridge+bimix"
    assert world.mean_loss(r) <= world.mean_loss(np.full(4, 1 / 4)) + 1e-12
