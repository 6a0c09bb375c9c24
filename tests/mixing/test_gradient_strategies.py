"""Tests for mixtrain.mixing.doge (DoGE) and mixtrain.mixing.tikmix (TiKMiX-D): golden values of DoGE's
update on fixed inner products, TiKMiX-D's constraints and limits, and short real runs where the target
is one domain (both raise it) or a domain is uniform random tokens (DoGE lowers it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mixtrain.mixing import build_mixing
from mixtrain.mixing.base import MixHistory
from mixtrain.mixing.doge import doge_scores, doge_step
from mixtrain.mixing.gradient_probe import ProbeResult
from mixtrain.mixing.tikmix import solve_tikmix

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRAM = np.array([[4.0, 1.0, -1.0], [1.0, 9.0, 0.5], [-1.0, 0.5, 1.0]])


def test_doge_universal_scores_and_step_golden():
    # norms 2, 3, 1 -> clip 5 leaves them; W = row sums minus diagonal = [0, 1.5, -0.5]; avg norm 2
    lr = 1e-3
    scores = doge_scores(GRAM, None, lr=lr, target="universal", clip_norm=5.0)
    np.testing.assert_allclose(scores, [0.0, lr * 1.5 / (2 + 1e-6), 0.0])  # negative alignment floored at 0
    w = doge_step(np.full(3, 1 / 3), scores, mu=0.01)
    logits = np.array([0.0, lr * 1.5 / (2 + 1e-6) / 0.01, 0.0])
    np.testing.assert_allclose(w, np.exp(logits) / np.exp(logits).sum())
    # clipping to norm 1.5 rescales g_1 (|g|=2) by 0.75 and g_2 (|g|=3) by 0.5
    clipped = doge_scores(GRAM, None, lr=1.0, target="universal", clip_norm=1.5, dw_max=1e9)
    c = np.array([0.75, 0.5, 1.0])
    G = GRAM * np.outer(c, c)
    W = G.sum(1) - np.diag(G)
    np.testing.assert_allclose(clipped, np.clip(W / (np.mean([1.5, 1.5, 1.0]) + 1e-6), 0, None))


def test_doge_ood_uses_the_target_and_caps_scores():
    target = np.array([10.0, -2.0, 0.1])
    s = doge_scores(GRAM, target, lr=0.1, target="ood", clip_norm=None, dw_max=5.0)
    assert s[0] == pytest.approx(0.5)  # 0.1 * 10 / 2 = 0.5 = the cap lr * dw_max
    assert s[1] == 0.0 and s[2] == pytest.approx(0.1 * 0.1 / 2, rel=1e-5)


def _history(probe, weights):
    return MixHistory(step=probe.step, max_steps=100, weights=dict(weights), tokens_seen={d: 0 for d in weights},
                      train_loss={d: 1.0 for d in weights}, scheduled_weights=dict(weights), probe=probe)


def test_doge_state_round_trip_and_average_output():
    domains = ["a", "b", "c"]
    probe = ProbeResult(step=10, domains=domains, gram=GRAM, lr=1e-3, sketch_dim=64)
    s1 = build_mixing({"strategy": "doge", "refit_every_n_steps": 10}).strategy
    w = s1.update(_history(probe, dict(zip(domains, [1 / 3] * 3))))
    s2 = build_mixing({"strategy": "doge", "refit_every_n_steps": 10}).strategy
    s2.load_state_dict(json.loads(json.dumps(s1.state_dict())))
    assert s1.update(_history(probe, w)) == s2.update(_history(probe, w))
    avg = s1.output_weights()
    assert sum(avg.values()) == pytest.approx(1.0) and avg["b"] > 1 / 3
    bad = ProbeResult(step=20, domains=domains, gram=GRAM * np.nan, lr=1e-3)
    assert s1.update(_history(bad, w)) is None and s1.last_fit_report["phase"] == "skipped"


def test_tikmix_constraints_hold_and_reduce_to_uniform_without_influence_terms():
    rng = np.random.default_rng(0)
    for _ in range(5):
        S = rng.normal(size=(4, 6)) + 2 * np.eye(4, 6)
        prior = rng.dirichlet(np.ones(6))
        w, report = solve_tikmix(S, prior)
        assert abs(w.sum() - 1) < 1e-9 and w.min() >= -1e-12
        Sn = S / np.abs(S).max(axis=1, keepdims=True)
        assert np.all(Sn @ w >= Sn @ prior - 1e-6), report  # no task loses influence vs the previous mixture
    w, _ = solve_tikmix(rng.normal(size=(3, 5)), np.full(5, 0.2), alpha=0.0, beta=0.0)
    np.testing.assert_allclose(w, 0.2, atol=1e-6)


def test_tikmix_single_task_moves_weight_to_the_domain_that_helps_it():
    S = np.array([[0.1, 2.0, -0.3, 0.05]])
    w, report = solve_tikmix(S, np.full(4, 0.25))
    assert report["success"] and w[1] == max(w) and w[1] > 0.25
    w_flipped, _ = solve_tikmix(-S, np.full(4, 0.25))
    assert w_flipped[1] < 0.25  # a flipped influence sign moves it the other way


def test_gradient_strategies_refuse_unknown_settings():
    with pytest.raises(ValueError, match="target"):
        build_mixing({"strategy": "doge", "target": "everything"})
    with pytest.raises(ValueError, match="hessian"):
        build_mixing({"strategy": "tikmix", "hessian": "kfac"})


# ---------------------------------------------------------------------------- end to end


def _refits(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "refits.jsonl").read_text().splitlines() if line.strip()]


SHORT = ["trainer.enable_progress_bar=false", "trainer.max_steps=12", "trainer.val_check_interval=12",
         "mixing.refit_every_n_steps=3", "sampler.window_samples=4", "sampler.weight_lag_batches=2",
         "optim.lr=3e-3"]


@pytest.mark.parametrize("name, extra", [
    ("doge", ["mixing.target=ood", "mixing.lr_scale=none", "mixing.mu=0.5"]),
    ("tikmix", []),
])
def test_target_of_one_domain_raises_its_weight(tiny_data_dir, tmp_path, name, extra):
    from conftest import smoke_cfg, train_composed

    target = "tables"
    run = tmp_path / name
    train_composed(smoke_cfg(tiny_data_dir, run, f"mixing={name}", *SHORT, *extra, f"target.importance={{{target}: 1.0}}"))
    lines = _refits(run)
    assert [r["step"] for r in lines] == [3, 6, 9, 12]
    assert all(r["status"] == "updated" and r["error"] is None for r in lines), lines
    last = lines[-1]["new_weights"]
    assert last[target] > 1 / 3 + 0.02 and last[target] == max(last.values()), last
    assert "grad_norm" in lines[-1]["probe"] and lines[-1]["probe"]["target_inner"][target] > 0
    if name == "doge":  # the paper's output: the average weights, usable by mixing=manual
        from mixtrain.mixing.static import read_weights_file

        avg = read_weights_file(run / "weights.yaml")
        assert avg[target] == max(avg.values()) and math.isclose(sum(avg.values()), 1.0)
