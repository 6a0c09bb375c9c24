"""Tests for mixtrain.train.influence (`mixtrain influence RUN`, AutoMixer offline): the combination rule on
fixed arrays, and a real run's checkpoints scored into a weights.yaml that mixing=manual reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixtrain.errors import ConfigError, RunDirError
from mixtrain.train.influence import combine, main, run_checkpoints


def test_combine_picks_best_checkpoint_per_task_weights_by_step_and_clips():
    inner = {10: np.array([[1.0, 0.0], [0.0, 1.0], [-5.0, -5.0]]),
             20: np.array([[3.0, 0.0], [0.0, -1.0], [-5.0, -5.0]])}
    val = {10: np.array([2.0, 1.0]), 20: np.array([1.5, 1.2])}  # task 0 best at 20, task 1 best at 10
    w, chosen, joint = combine(inner, val, np.array([0.5, 0.5]))
    assert chosen == [20, 10]
    alpha = np.array([20, 10]) / 30
    np.testing.assert_allclose(joint, [alpha[0] * 3.0, alpha[1] * 1.0, -5.0])
    np.testing.assert_allclose(w, np.array([2.0, 1 / 3, 0.0]) / (2 + 1 / 3))  # negative influence clipped at 0
    with pytest.raises(ConfigError, match="<= 0"):
        combine({5: -np.ones((3, 1))}, {5: np.ones(1)}, np.ones(1))


def test_run_without_checkpoints_is_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(RunDirError, match="no step checkpoint"):
        run_checkpoints(tmp_path)


def test_influence_of_a_run_writes_weights_for_manual(tiny_data_dir, tmp_path):
    import torch

    from conftest import smoke_cfg, train_composed
    from mixtrain.mixing import build_mixing
    from mixtrain.mixing.base import DataContext

    torch.set_num_threads(1)
    run = tmp_path / "run"
    train_composed(smoke_cfg(tiny_data_dir, run, "mixing=uniform", "trainer.enable_progress_bar=false",
                             "trainer.max_steps=8", "trainer.val_check_interval=8", "checkpoint_every_n_steps=4",
                             "target.importance={tables: 1.0}"))
    assert [s for s, _ in run_checkpoints(run)] == [4, 8]
    main([str(run), "--samples-per-domain", "8", "--target-samples", "8", "--sketch-dim", "4096"])
    report = json.loads((run / "influence" / "influence.json").read_text())
    assert (run / "influence" / "influence.png").stat().st_size > 1000
    assert report["tasks"] == ["tables"] and [c["step"] for c in report["checkpoints"]] == [4, 8]
    weights = report["weights"]
    assert weights["tables"] == max(weights.values()) and sum(weights.values()) == pytest.approx(1.0)
    manual = build_mixing({"strategy": "manual", "weights_file": str(run / "influence" / "weights.yaml")}).strategy
    ctx = DataContext(data_dir=str(tiny_data_dir), domains=sorted(weights), stats={d: {} for d in weights})
    assert manual.initial_weights(ctx) == pytest.approx(weights)
