"""bench/optimiser.py scores each method's written mixture by the world's TRUE loss: regret against the
true optimum is never negative, the reference rows are what they say, and the default's check law
follows the run count (bimix+exp at 16 runs); bench/law_uniform.py's fast single-law rows and paired table."""

from __future__ import annotations

import argparse

import numpy as np
import pytest


def test_one_world_scores_every_method_against_the_true_optimum(load_bench):
    from mixtrain.laws.synthetic import World

    args = argparse.Namespace(noise=0.005, candidates=500, bootstrap=3,
                              methods="ridge/sampled,ridge/sampled-check-bimix+exp,ridge/sampled-former,bimix/slsqp")
    rows = {r["method"]: r for r in load_bench("optimiser").run_world((8, 16, 7, args))}
    assert set(rows) == {"uniform", "natural", "best observed run", "ridge/sampled", "ridge/sampled-check-bimix+exp",
                         "ridge/sampled-former", "bimix/slsqp"}
    world = World(8, seed=10_000 * 8 + 7)
    opt = world.mean_loss(world.optimum())
    assert rows["uniform"]["regret"] == pytest.approx(world.mean_loss(np.full(8, 1 / 8)) - opt)
    for r in rows.values():
        assert r["regret"] >= -1e-6, r  # nothing beats the true optimum
        assert r["worse"] == (r["regret"] > rows["uniform"]["regret"] + 1e-12)
    # at 16 runs the default's automatic check laws are bimix+exp: the same decision as naming them
    assert rows["ridge/sampled"]["regret"] == pytest.approx(rows["ridge/sampled-check-bimix+exp"]["regret"], abs=1e-12)


def test_law_uniform_single_law_rows_and_the_paired_table(load_bench, monkeypatch):
    """--no-cv rows score each law's written mixture by the true loss; --former-rule changes only step 5, so
    the proposal is the same and only what is written may differ; --paired pairs the rows by world."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))  # it imports bench/law_choice.py
    bench = load_bench("law_uniform")
    bench.OPTIONS.clear()
    rows = {}
    for former in (False, True):
        bench.FORMER[0] = former
        rows[former] = bench.single_laws_row(6, 12, 3, candidates=400, bootstrap=4, only={"ridge", "bimix"})
    bench.FORMER[0] = False
    new, old = rows[False], rows[True]
    assert set(new["laws"]) == {"ridge", "bimix"} and new["uniform"] == old["uniform"] > 0
    for law in ("ridge", "bimix"):
        got = new["laws"][law]
        assert got["regret"] >= -1e-6 and got["worse"] == (got["regret"] > new["uniform"] + 1e-12)
        assert got["proposal_regret"] == pytest.approx(old["laws"][law]["proposal_regret"], abs=1e-12)
    table = "\n".join(bench.paired([old], [new]))
    assert table.startswith("1 paired worlds") and "| ridge | " in table and "| bimix | " in table
