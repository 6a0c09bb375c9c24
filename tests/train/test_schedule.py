"""LR schedules of mixtrain.train.lr_schedule: cosine, wsd (warmup-stable-decay), constant; and the optimizer uses them."""

from __future__ import annotations

import math

import pytest

from mixtrain.train.lr_schedule import lr_multiplier
from mixtrain.model.gpt import GPTConfig
from mixtrain.train.config import OptimConfig
from mixtrain.train.module import MixtureLM

KW = {"warmup_steps": 10, "max_steps": 100, "min_lr_ratio": 0.1}
TINY = GPTConfig(vocab_size=32, seq_len=8, n_layer=1, n_head=2, d_model=16)


def test_cosine_is_unchanged():
    assert lr_multiplier(0, "cosine", **KW) == pytest.approx(0.1)  # (0 + 1) / 10
    assert lr_multiplier(9, "cosine", **KW) == pytest.approx(1.0)
    assert lr_multiplier(55, "cosine", **KW) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert lr_multiplier(100, "cosine", **KW) == pytest.approx(0.1)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_wsd_warmup_stable_decay(shape):
    f = lambda s: lr_multiplier(s, "wsd", **KW, decay_fraction=0.2, decay_shape=shape)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)  # warmup end
    assert [f(s) for s in (10, 40, 79, 80)] == pytest.approx([1.0] * 4)  # stable until the last 20 steps
    assert f(100) == pytest.approx(0.1)  # min_lr_ratio at max_steps
    mid = 1.0 - 0.9 * (0.5 if shape == "linear" else math.sqrt(0.5))
    assert f(90) == pytest.approx(mid)
    decay = [f(s) for s in range(80, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # monotone decay


def test_constant_is_flat_after_warmup_whatever_the_length():
    assert lr_multiplier(4, "constant", **KW) == pytest.approx(0.5)
    for max_steps in (100, 1000):
        assert [lr_multiplier(s, "constant", **{**KW, "max_steps": max_steps}) for s in (10, 99, 100)] == [1.0] * 3


def test_wsd_stable_phase_equals_constant_run():
    """What makes a constant proxy's row at step s comparable with a wsd run of length > s / (1 - f)."""
    for s in range(0, 400):
        assert lr_multiplier(s, "wsd", **{**KW, "max_steps": 500}) == lr_multiplier(s, "constant", **KW)


def test_bad_schedule_settings_name_the_key():
    with pytest.raises(ValueError, match="optim.schedule"):
        lr_multiplier(0, "linear", **KW)
    with pytest.raises(ValueError, match="optim.decay_shape"):
        MixtureLM(TINY, OptimConfig(schedule="wsd", decay_shape="sqrt", warmup_steps=10, min_lr_ratio=0.1), ["a"],
                  max_steps=100)


def test_optimizer_follows_the_configured_schedule():
    optim = OptimConfig(lr=1e-3, schedule="wsd", decay_fraction=0.5, decay_shape="linear", warmup_steps=10,
                        min_lr_ratio=0.1)
    module = MixtureLM(TINY, optim, ["a", "b"], max_steps=100)
    module.configure_model()
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(101):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[30] == pytest.approx(1e-3) and lrs[50] == pytest.approx(1e-3)
    assert lrs[75] == pytest.approx(1e-3 * (1 - 0.9 * 0.5)) and lrs[100] == pytest.approx(1e-4)
