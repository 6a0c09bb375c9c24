"""Surrogate laws (ridge, lightgbm), the sampled bootstrap-robust optimiser and the refusals (issue 19)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mixtrain.laws import BiMixLaw, fit_law, load_law, make_law
from mixtrain.laws.optim.sampled import propose
from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table

K = 5
DOMAINS = [f"d{i}" for i in range(K)]
# non-separable truth: every domain learns from an effective share u = T r, domain 0 ("web") helps all
T = np.eye(K) + np.array([[0.0] * K] + [[0.6] + [0.05] * (K - 1)] * (K - 1))
STEPS = [100, 200, 400, 800]


def transfer_loss(W, s):
    u = W @ T.T
    return (1.8 + 0.6 * (u + 1e-3) ** -0.3) * (1 + 4.0 * s[:, None] ** -0.5)


def transfer_table(n_runs=24, noise=0.002, seed=0):
    return synthetic_table(transfer_loss, dirichlet_mixtures(K, n_runs, seed=seed), STEPS, DOMAINS, noise=noise, seed=seed)


def true_mean(r, step=5000.0):
    return float(transfer_loss(np.asarray(r, float)[None], np.array([step]))[0].mean())


@pytest.fixture(scope="module")
def ridge_law():
    return make_law("ridge").fit(transfer_table(), cv_folds=4)


def test_ridge_fits_cross_domain_transfer_and_round_trips(ridge_law, tmp_path):
    law = ridge_law
    W = dirichlet_mixtures(K, 30, seed=11)
    s = np.full(30, 1600.0)  # beyond the proxies' last step: the step factor extrapolates
    err = np.abs(law.predict(W, s) / transfer_loss(W, s) - 1)
    # (features are clipped to the runs' range: a held-out mixture beyond it is predicted flat, hence no max bound)
    assert err.mean() < 0.015 and np.median(err) < 0.01, (err.mean(), np.median(err))
    cv = law.report["cv"]
    assert cv["mean_spearman"] > 0.8 and law.mixture_params() < law.report["n_runs"]
    # the separable law cannot see that domain 0 helps every other domain; ridge can, and decides better
    bi = make_law("bimix").fit(transfer_table(), cv_folds=0)
    kw = dict(candidates=3000, bootstrap=10, force_optimize=True, force_proposal=True)
    r_ridge, r_bi = (np.array(list(propose(m, 5000, **kw).proposal.values())) for m in (law, bi))
    assert true_mean(r_ridge) < true_mean(r_bi) < true_mean(np.full(K, 1 / K))
    assert r_ridge[0] > r_bi[0]
    path = tmp_path / "ridge.json"
    law.to_json(str(path))
    back = load_law(str(path))
    np.testing.assert_allclose(back.predict(W, s), law.predict(W, s), rtol=1e-12)
    assert back.table.n_rows == law.table.n_rows  # the fitting table travels: bootstrap refits need it
    a = propose(law, 5000, candidates=3000, bootstrap=20, force_optimize=True, seed=3)
    b = propose(back, 5000, candidates=3000, bootstrap=20, force_optimize=True, seed=3)
    assert a.weights == b.weights and a.chosen == b.chosen


def test_sampled_proposal_beats_uniform_and_reports_intervals(ridge_law):
    nat = {d: 1.0 + i for i, d in enumerate(DOMAINS)}
    p = propose(ridge_law, 5000, natural=nat, candidates=5000, seed=1)
    t = p.shrink["t"]
    assert 0 < t and p.shrink["risk"] < 0 and p.shrink["check_law"] == "bimix+exp", p.lines()
    # risk_pooling "each": the written step is below uniform at the 60th percentile under every law on its own
    assert max(p.shrink["risk_by_law"].values()) == p.shrink["risk"] < 0, p.shrink
    assert p.chosen == ("proposal" if t == 1 else f"blend {t:g}")
    r, prop = np.array(list(p.weights.values())), np.array(list(p.proposal.values()))
    np.testing.assert_allclose(r, (1 - t) / K + t * prop, atol=1e-12)  # a step along uniform -> proposal
    assert true_mean(r) < true_mean(np.full(K, 1 / K))  # truly better than uniform in this world
    assert {"proposal", "uniform", "natural"} <= set(p.predicted)
    for v, lo, hi in p.predicted.values():
        assert lo <= hi and np.isfinite(v)
    assert p.diff_vs_uniform[2] < 0
    # relative support: no weight above 1.5 x the largest observed weight + 0.01
    M = ridge_law.observed_mixtures
    assert np.all(prop <= 1.5 * M.max(axis=0) + 0.01 + 1e-9)
    text = "\n".join(p.lines())
    for part in ("proposal - uniform", "95% bootstrap interval", "check law bimix: proposal - uniform",
                 "check law exp: proposal - uniform", "shrinkage: ",
                 f"written: {p.chosen}"):
        assert part in text, text
    # the separable check law is less sure of the direction (it cannot see domain 0's transfer): without it
    # ridge's own refits take a longer step; a check that never binds would leave the step unchanged
    alone = propose(ridge_law, 5000, natural=nat, candidates=5000, seed=1, check_law=None)
    assert alone.proposal == p.proposal and alone.shrink["check_law"] is None
    assert alone.shrink["t"] > t, (alone.shrink, p.shrink)


def test_support_caps_never_seen_domains_at_zero():
    W = dirichlet_mixtures(K, 12, seed=2)
    W[:, 4] = 0.0
    W /= W.sum(axis=1, keepdims=True)
    law = make_law("ridge").fit(synthetic_table(transfer_loss, W, STEPS, DOMAINS, noise=0.001), cv_folds=0)
    p = propose(law, 5000, candidates=2000, bootstrap=0)
    assert p.proposal["d4"] == 0.0  # never above the floor in any run: no weight


@pytest.mark.parametrize("law_name, seed", [("bimix", 4), ("ridge", 5)])
def test_writes_uniform_when_no_step_is_reliably_better(law_name, seed):
    # the loss does not depend on the mixture: any "better" proposal is noise
    flat = lambda W, s: 3.0 * (1 + 2.0 * s[:, None] ** -0.5) * np.ones((W.shape[0], K))  # noqa: E731
    table = synthetic_table(flat, dirichlet_mixtures(K, 16, seed=seed), STEPS, DOMAINS, noise=0.01, seed=seed)
    law = make_law(law_name).fit(table, cv_folds=0)
    # a cautious quantile (--risk-quantile 0.9): at the default 0.6 a flat world may take a step whose predicted
    # gain is noise (harmless here, where every mixture is equally good; the bench measures what it costs)
    p = propose(law, 5000, candidates=3000, seed=0, risk_quantile=0.9)
    assert p.chosen == "uniform" and p.shrink["t"] == 0 and p.shrink["risk"] == 0, p.lines()
    assert p.weights == {d: 1 / K for d in DOMAINS} and p.weights != p.proposal
    assert "risks being worse than uniform" in p.reason
    forced = propose(law, 5000, candidates=3000, seed=0, risk_quantile=0.9, force_proposal=True)
    assert forced.chosen == "proposal" and forced.weights == forced.proposal and "--force-proposal" in forced.reason


def test_cv_regret_worse_than_the_nearest_run_warns_or_refuses(ridge_law):
    law = load_law(ridge_law.to_json())
    law.report["cv"] = {**law.report["cv"], "regret_top1": 0.5, "baseline_regret_top1": 0.1}
    warned = propose(law, 5000, candidates=2000, bootstrap=4)
    assert "treat the proposal with care" in warned.reason and "refused" not in warned.reason
    p = propose(law, 5000, candidates=2000, bootstrap=4, refuse_on_cv=True)
    assert p.chosen != "proposal" and "refused to optimise" in p.reason and "--force-optimize" in p.reason
    fin = law.table.final_rows()
    best_run = str(law.table.runs[fin[np.argmin(law.table.L[fin].mean(axis=1))]])
    assert p.chosen in ("uniform", f"run {best_run}")
    forced = propose(law, 5000, candidates=2000, bootstrap=4, refuse_on_cv=True, force_optimize=True)
    assert "refused" not in forced.reason


def test_fit_refuses_too_few_runs_and_says_how_many():
    two = synthetic_table(transfer_loss, dirichlet_mixtures(K, 2, seed=5), STEPS, DOMAINS)
    with pytest.raises(ValueError, match=r"bimix: 2 run\(s\) cannot identify 2 .*need at least 3 runs"):
        BiMixLaw().fit(two, cv_folds=0)
    five = synthetic_table(transfer_loss, dirichlet_mixtures(K, 5, seed=5), STEPS, DOMAINS)
    with pytest.raises(ValueError, match=r"transfer: .*2 run\(s\); this law needs at least 3"):
        make_law("transfer").fit(two, cv_folds=0)
    with pytest.raises(ValueError, match=r"loglinear: 2 run\(s\) cannot identify .*need at least"):
        make_law("loglinear").fit(two, cv_folds=0)
    make_law("ridge").fit(five, cv_folds=0)  # its penalty keeps the effective parameters below the runs
    assert make_law("ridge").fit(five, cv_folds=0).mixture_params() <= 4 + 1e-9


def test_lightgbm_round_trip(tmp_path):
    pytest.importorskip("lightgbm")
    table = transfer_table(n_runs=24)
    law = make_law("lightgbm").fit(table, cv_folds=0)
    W = dirichlet_mixtures(K, 10, seed=12)
    pred = law.predict(W, [800] * 10)
    assert np.all(np.isfinite(pred)) and np.mean(np.abs(pred / transfer_loss(W, np.full(10, 800.0)) - 1)) < 0.03
    back = load_law(law.to_json(str(tmp_path / "gbt.json")))
    np.testing.assert_allclose(back.predict(W, [800] * 10), pred, rtol=1e-12)
    p = propose(back, 5000, candidates=2000, bootstrap=5, force_optimize=True)
    assert p.settings["refit_pool"] <= 5000 and sum(p.weights.values()) == pytest.approx(1.0)


def test_lightgbm_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm -> ImportError
    with pytest.raises(ValueError, match=r"mixtrain\[surrogate\]"):
        make_law("lightgbm").fit(transfer_table(n_runs=12), cv_folds=0)
    law = fit_law(transfer_table(n_runs=12), "auto", cv_folds=3)  # below its run count: skipped for that first
    assert "from 64 runs on" in law.report["auto"]["candidates"]["lightgbm"]["error"]
    from mixtrain.laws import LightGBMLaw

    monkeypatch.setattr(LightGBMLaw, "auto_min_runs", 0)
    law = fit_law(transfer_table(n_runs=12), "auto", cv_folds=3)  # auto skips it and says why
    assert "mixtrain[surrogate]" in law.report["auto"]["candidates"]["lightgbm"]["error"]


def test_fit_cli_ridge_predict_optimize(tmp_path, capsys):
    from mixtrain.fitting import fit as fit_mod
    from mixtrain.laws.table import write_table

    write_table(transfer_table(), str(tmp_path / "T.csv"))
    fit_mod.main(["--table", str(tmp_path / "T.csv"), "--law", "ridge", "--folds", "3", "--out", str(tmp_path / "law.json")])
    assert "nearest observed run (no law)" in capsys.readouterr().out
    (tmp_path / "mix.csv").write_text("w/d0,w/d1,w/d2,w/d3,w/d4\n0.2,0.2,0.2,0.2,0.2\n")
    fit_mod.main(["--law-file", str(tmp_path / "law.json"), "--predict", str(tmp_path / "mix.csv"), "--step", "800",
                  "--out", str(tmp_path / "pred.csv")])
    assert len((tmp_path / "pred.csv").read_text().splitlines()) == 2
    fit_mod.main(["--law-file", str(tmp_path / "law.json"), "--optimize", "--step", "5000", "--candidates", "3000",
                  "--bootstrap", "20", "--force-optimize", "--out", str(tmp_path / "w.yaml")])
    out = capsys.readouterr().out
    assert "fit: proposal - uniform:" in out and "fit: written:" in out


def test_auto_check_law_follows_the_run_count(monkeypatch):
    # two laws of other families each; for ridge: few runs, the rigid separable law (and exp) check its variance;
    # from CHECK_TREES_MIN_RUNS on, trees (and exp) check its bias
    from mixtrain.laws.optim import bootstrap as refits

    few = make_law("ridge").fit(transfer_table(n_runs=refits.CHECK_TREES_MIN_RUNS - 1), cv_folds=0)
    many = make_law("ridge").fit(transfer_table(n_runs=refits.CHECK_TREES_MIN_RUNS), cv_folds=0)
    assert refits.auto_check_law(few) == ("bimix+exp", None)
    assert refits.auto_check_law(make_law("bimix").fit(transfer_table(), cv_folds=0)) == ("ridge+exp", None)
    assert refits.auto_check_law(make_law("loglinear").fit(transfer_table(), cv_folds=0)) == ("ridge+bimix", None)
    pytest.importorskip("lightgbm")
    assert refits.auto_check_law(many) == ("lightgbm+exp", None)
    p = propose(many, 5000, candidates=2000, bootstrap=4, seed=0)
    text = "\n".join(p.lines())
    assert p.shrink["check_law"] == "lightgbm+exp" and set(p.shrink["risk_by_law"]) == {"ridge", "lightgbm", "exp"}
    assert "check law lightgbm: proposal - uniform" in text and "check law exp: proposal - uniform" in text
    # without the extra: bimix checks, and the report says why
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    name, note = refits.auto_check_law(many)
    assert name == "bimix+exp" and "mixtrain[surrogate]" in note
    p = propose(many, 5000, candidates=2000, bootstrap=4, seed=0)
    assert p.shrink["check_law"] == "bimix+exp" and "not installed" in "\n".join(p.lines())
