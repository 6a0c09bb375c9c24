"""bench/optimiser.py scores each method's written mixture by the world's TRUE loss: regret against the
true optimum is never negative, the reference rows are what they say, and the default's check law
follows the run count (bimix at 16 runs)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest


def test_one_world_scores_every_method_against_the_true_optimum(load_bench):
    from mixtrain.laws.synthetic import World

    args = argparse.Namespace(noise=0.005, candidates=500, bootstrap=3,
                              methods="ridge/sampled,ridge/sampled-check-bimix,bimix/slsqp")
    rows = {r["method"]: r for r in load_bench("optimiser").run_world((8, 16, 7, args))}
    assert set(rows) == {"uniform", "natural", "best observed run", "ridge/sampled", "ridge/sampled-check-bimix",
                         "bimix/slsqp"}
    world = World(8, seed=10_000 * 8 + 7)
    opt = world.mean_loss(world.optimum())
    assert rows["uniform"]["regret"] == pytest.approx(world.mean_loss(np.full(8, 1 / 8)) - opt)
    for r in rows.values():
        assert r["regret"] >= -1e-6, r  # nothing beats the true optimum
        assert r["worse"] == (r["regret"] > rows["uniform"]["regret"] + 1e-12)
    # at 16 runs the default's automatic check law is bimix: the same decision as naming it
    assert rows["ridge/sampled"]["regret"] == pytest.approx(rows["ridge/sampled-check-bimix"]["regret"], abs=1e-12)
