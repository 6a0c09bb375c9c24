"""Repetition at the target budget (laws/repetition.py and its hook in laws/optim/sampled.py, fit.py --optimize)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mixtrain.fitting.fit import main as fit_main
from mixtrain.laws import make_law
from mixtrain.laws.optim.sampled import propose
from mixtrain.laws.repetition import DEFAULT_R_STAR, Repetition, effective_tokens
from mixtrain.laws.synthetic import synthetic_table
from mixtrain.laws.table import write_table


def test_effective_tokens_is_identity_without_repeats_and_saturates():
    U = 1e6
    assert effective_tokens(U, [0.0, 3e5, 1e6]).tolist() == pytest.approx([0.0, 3e5, 1e6])
    seen = np.array([2e6, 5e6, 16e6, 1e9])
    eff = effective_tokens(U, seen)
    assert np.all(np.diff(eff) > 0) and np.all(eff < seen)  # repeats still help, less than fresh tokens
    assert eff[-1] == pytest.approx(U * (1 + DEFAULT_R_STAR), rel=1e-6)  # at most U (1 + R*)
    # 15 repetitions (16 epochs) keep most of their value: the paper's 15-20 (module docstring)
    assert 0.6 < eff[2] / seen[2] < 0.7
    # the second epoch is worth exp(-1/R*) of fresh tokens (marginal value of repetition r: exp(-r/R*))
    assert (effective_tokens(U, 2e6) - U) / U == pytest.approx(DEFAULT_R_STAR * (1 - np.exp(-1 / DEFAULT_R_STAR)))


def test_repetition_reports_epochs_and_warns_above_threshold():
    rep = Repetition.build(("web", "rare"), {"web": 1e9, "rare": 1e6}, budget_tokens=1e8)
    w = {"web": 0.8, "rare": 0.2}
    assert rep.epochs(w) == pytest.approx({"web": 0.08, "rare": 20.0})
    assert rep.over(w) == ["rare"]
    text = "\n".join(rep.lines(w))
    assert "20.00 epochs" in text and "WARNING: rare" in text
    assert rep.effective([[0.8, 0.2]])[0, 0] == pytest.approx(0.8)  # no repetition: weight unchanged
    with pytest.raises(ValueError, match=r"no unique token count for domain\(s\) \['rare'\]"):
        Repetition.build(("web", "rare"), {"web": 1e9}, budget_tokens=1e8)


# A world where the target budget repeats the small, valuable domain: truth is bimix-shaped in the
# fresh-token-equivalent weight (the documented discount: what the test checks is that the hook puts it
# into the optimiser's scores, while the law itself is fitted on proxies that never repeat).
DOMAINS = ("web", "books", "rare")
UNIQUE = {"web": 1e10, "books": 1e9, "rare": 2e6}
ALPHA = np.array([0.05, 0.08, 0.45])  # the rare domain is the valuable one
BATCH = 1000.0  # tokens per step
TARGET_STEP = 100_000.0  # 1e8 tokens: 0.2 on rare = 10 epochs


def truth(W, steps, r_star=DEFAULT_R_STAR):
    W, steps = np.atleast_2d(W), np.asarray(steps, float)
    factor = np.ones_like(W)
    for j, d in enumerate(DOMAINS):
        seen = W[:, j] * steps * BATCH
        factor[:, j] = np.where(seen > 0, effective_tokens(UNIQUE[d], seen, r_star) / np.maximum(seen, 1), 1.0)
    return (W * factor + 1e-3) ** -ALPHA[None] * (3.0 * steps[:, None] ** -0.3 + 1.5)


def _proxy_table():
    mixtures = np.random.default_rng(0).dirichlet(np.ones(3), 16)
    # proxies: <= 1000 steps = 1e6 tokens, never a repeat of any domain
    return synthetic_table(truth, mixtures, [200.0, 400.0, 700.0, 1000.0], DOMAINS, noise=0.002, seed=1)


def test_aware_optimiser_does_not_over_pick_the_small_valuable_domain():
    table = _proxy_table()
    law = make_law("bimix").fit(table, cv_folds=0)
    rep = Repetition.build(DOMAINS, UNIQUE, budget_tokens=TARGET_STEP * BATCH)
    kw = dict(candidates=4000, bootstrap=0, seed=0)
    blind = propose(law, TARGET_STEP, **kw).proposal
    aware = propose(law, TARGET_STEP, repetition=rep, **kw).proposal
    # the true optimum's weight on rare, by a grid over the simplex
    grid = np.array([(a, b, 1 - a - b) for a in np.linspace(0, 1, 101) for b in np.linspace(0, 1, 101) if a + b <= 1 + 1e-12])
    best = grid[np.argmin(truth(grid, np.full(len(grid), TARGET_STEP)).mean(axis=1))]
    def true_loss(w):
        return float(truth([[w[d] for d in DOMAINS]], [TARGET_STEP]).mean())
    assert blind["rare"] > best[2] + 0.1  # blind: credits every repeat as fresh, over-picks rare
    assert abs(aware["rare"] - best[2]) < 0.5 * abs(blind["rare"] - best[2])
    assert rep.epochs(blind)["rare"] > rep.epochs(aware)["rare"]
    assert true_loss(aware) < true_loss(blind)


def test_fit_cli_reports_epochs_next_to_weights(tmp_path, capsys):
    table = _proxy_table()
    table = type(table)(table.train_domains, table.eval_domains, table.runs, table.steps, table.W, table.L,
                        table.steps * BATCH, table.source)  # a tokens column: the budget follows from --step
    write_table(table, str(tmp_path / "T.csv"))
    fit_main(["--table", str(tmp_path / "T.csv"), "--folds", "0", "--out", str(tmp_path / "law.json")])
    counts = ",".join(f"{d}={n:g}" for d, n in UNIQUE.items())
    fit_main(["--law-file", str(tmp_path / "law.json"), "--optimize", "--step", f"{TARGET_STEP:g}", "--domain-tokens",
              counts, "--candidates", "2000", "--bootstrap", "0", "--warn-epochs", "1", "--out", str(tmp_path / "w.yaml")])
    out = capsys.readouterr().out
    text = (tmp_path / "w.yaml").read_text()
    doc = yaml.safe_load(text)
    epochs = doc["repetition"]["epochs"]
    assert doc["repetition"]["budget_tokens"] == pytest.approx(TARGET_STEP * BATCH)
    assert epochs["rare"] == pytest.approx(doc["weights"]["rare"] * TARGET_STEP * BATCH / UNIQUE["rare"])
    assert "# repetition at the target budget" in text and "epochs of" in out
    assert ("WARNING" in out) == (epochs["rare"] > 1)


def test_fit_cli_repetition_needs_a_budget_in_tokens(tmp_path):
    write_table(_proxy_table(), str(tmp_path / "T.csv"))  # no tokens column: steps cannot become tokens
    fit_main(["--table", str(tmp_path / "T.csv"), "--folds", "0", "--out", str(tmp_path / "law.json")])
    base = ["--law-file", str(tmp_path / "law.json"), "--optimize", "--domain-tokens", "web=1e10,books=1e9,rare=2e6",
            "--candidates", "500", "--bootstrap", "0", "--out", str(tmp_path / "w.yaml")]
    with pytest.raises(SystemExit, match="repetition needs the target budget in tokens"):
        fit_main([*base, "--step", "1000"])
    fit_main([*base, "--step", "1000", "--global-batch-tokens", "1000"])
    assert yaml.safe_load((tmp_path / "w.yaml").read_text())["repetition"]["budget_tokens"] == pytest.approx(1e6)
    with pytest.raises(SystemExit, match="no unique token count"):
        fit_main([*base[:3], "--domain-tokens", "web=1e10", *base[5:], "--tokens", "1e6", "--step", "1000"])


def test_mixing_law_sees_the_runs_budget_and_the_datas_natural_mixture(tmp_path):
    # mixing=law scores with the same repetition hook as `fit --optimize --data-dir`: this run's budget
    # (target step x global batch) and the prepared data's unique tokens, which are also its natural mixture
    from mixtrain.mixing.base import DataContext
    from mixtrain.mixing.fitted_law import Law

    law = make_law("bimix").fit(_proxy_table(), cv_folds=0)
    law.to_json(str(tmp_path / "law.json"))
    ctx = DataContext(data_dir=str(tmp_path), domains=list(DOMAINS),
                      stats={d: {"num_train_tokens": int(UNIQUE[d])} for d in DOMAINS},
                      budget_tokens=int(TARGET_STEP * BATCH), global_batch_tokens=int(BATCH), max_steps=int(TARGET_STEP))
    kw = dict(law_file=str(tmp_path / "law.json"), candidates=4000, bootstrap=0)
    aware = Law(**kw).compute(ctx)
    blind = Law(repetition=False, **kw).compute(ctx)
    rep = Repetition.build(DOMAINS, UNIQUE, budget_tokens=TARGET_STEP * BATCH)
    expected = propose(law, TARGET_STEP, candidates=4000, bootstrap=0, seed=0, repetition=rep,
                       natural={d: UNIQUE[d] for d in DOMAINS}).weights
    assert aware == pytest.approx(expected, abs=1e-9)
    assert rep.epochs(aware)["rare"] < rep.epochs(blind)["rare"]
    assert blind["rare"] > aware["rare"] + 0.05
