"""Step 7 of the sampled optimiser (laws/optim/observed.py, `--prefer-best-run`): the best observed run replaces the
written mixture only when its measured loss, carried to the target step, beats the written mixture's prediction."""

from __future__ import annotations

import numpy as np
import pytest

from mixtrain.laws import make_law
from mixtrain.laws.optim.observed import best_run_instead
from mixtrain.laws.optim.sampled import propose
from mixtrain.laws.synthetic import World, synthetic_table
from mixtrain.laws.table import make_table

STEPS = [250.0, 500.0, 1000.0]


def _table(world: World, n: int, lucky: float = 0.0, seed: int = 0):
    """Runs at STEPS; run 0's losses lowered by `lucky` at every step (a run measured far below any law's fit)."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(3 * world.natural * world.k, n)
    t = synthetic_table(world.loss, W, STEPS, world.domains, noise=0.002, seed=seed)
    L = t.L.copy()
    L[np.array([r == t.runs[0] for r in t.runs])] -= lucky
    return make_table(world.domains, world.domains, t.runs, t.steps, t.W, L), W


def test_a_run_measured_below_the_prediction_is_written():
    world = World(4, 1)
    table, W = _table(world, 24, lucky=0.3)
    law = make_law("ridge").fit(table, cv_folds=0)
    kw = dict(candidates=1000, bootstrap=4, check_law=None, seed=0)
    plain = propose(law, 10_000, **kw)
    pref = propose(law, 10_000, prefer_best_run=True, **kw)
    assert pref.chosen == f"run {table.runs[0]}" and "--prefer-best-run" in pref.reason
    assert np.allclose(list(pref.weights.values()), W[0] / W[0].sum())
    assert not np.allclose(list(plain.weights.values()), list(pref.weights.values()))
    # carried from the run's last step (1000) to the target (10,000): its raw loss at 1000 is not what is compared
    w = law.importance_vector(None)
    run, Wr, carried, predicted = best_run_instead(law, np.array(list(plain.weights.values())), 10_000, w)
    raw = float(table.L[table.final_rows()][0] @ w)
    drop = float((law._predict(Wr[None], np.array([10_000.0])) - law._predict(Wr[None], np.array([1000.0])))[0] @ w)
    assert drop < 0 and carried == pytest.approx(raw + drop) and carried < predicted < raw


def test_runs_measured_above_the_prediction_leave_the_written_mixture():
    world = World(4, 2)
    table, _ = _table(world, 24)
    law = make_law("ridge").fit(table, cv_folds=0)
    kw = dict(candidates=1000, bootstrap=4, check_law=None, seed=0)
    # every run measured 1 nat above what the fit says: no run beats the written mixture's prediction
    law.table = make_table(table.train_domains, table.eval_domains, table.runs, table.steps, table.W, table.L + 1.0)
    plain = propose(law, 10_000, **kw)
    written = np.array(list(plain.weights.values()))
    assert best_run_instead(law, written, 10_000, law.importance_vector(None)) is None
    pref = propose(law, 10_000, prefer_best_run=True, **kw)
    assert pref.chosen == plain.chosen and pref.weights == plain.weights
