"""The learning-rate schedules (`optim.schedule`): the LR multiplier at each optimizer step. Pure
math (no torch), so a schedule is checked in microseconds and validated before training starts.

Place in the flow: train/config.py `OptimConfig` -> module.py (`MixtureLM.configure_optimizers` wraps
`lr_multiplier` in a LambdaLR, stepped every optimizer step) -> the optimizer's lr.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd", "constant")
DECAY_SHAPES = ("linear", "1-sqrt")


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_lr_ratio` at `max_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if max_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_multiplier(
    step: int, schedule: str, *, warmup_steps: int, max_steps: int, min_lr_ratio: float,
    decay_fraction: float = 0.2, decay_shape: str = "linear",
) -> float:
    """LR multiplier at optimizer step `step` (0-based) for `optim.schedule`.

    cosine:   warmup, then cosine to min_lr_ratio at max_steps (the loss at step s < max_steps
              is mid-schedule, so only the last step is a finished run of its length);
    wsd:      warmup-stable-decay: warmup, 1.0 until the last `decay_fraction` of max_steps, then
              `decay_shape` (linear, or 1-sqrt as in Hägele et al. 2024) to min_lr_ratio at max_steps;
              every step of the stable phase is the same as a constant run's;
    constant: warmup, then 1.0 to the end (every step is comparable with every other: the
              schedule does not depend on max_steps after warmup).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0.0 <= decay_fraction <= 1.0:
        raise ValueError(f"optim.decay_fraction must be in [0, 1], got {decay_fraction}")
    if decay_shape not in DECAY_SHAPES:
        raise ValueError(f"optim.decay_shape must be one of {DECAY_SHAPES}, got {decay_shape!r}")
    if schedule == "cosine":
        return warmup_cosine(step, warmup_steps, max_steps, min_lr_ratio)
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    # the decay never eats into warmup: a short run decays over what is left after it
    decay_start = max(warmup_steps, max_steps - int(round(decay_fraction * max_steps)))
    if step < decay_start or max_steps <= decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / (max_steps - decay_start))
    fall = progress if decay_shape == "linear" else math.sqrt(progress)
    return 1.0 - (1.0 - min_lr_ratio) * fall
