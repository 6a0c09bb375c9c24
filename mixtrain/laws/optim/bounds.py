"""The optimisation problem both optimisers share: the user's per-domain floors and caps
(--min-weight / --max-weight, epoch caps) and the check of the target step.

Place in the flow: fitted law -> **bounds** -> laws/optim/slsqp.py and laws/optim/sampled.py ->
weights.yaml / mixing=law. Pure: numpy.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mixtrain.laws.table import as_domain_map

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw

__all__ = ["check_step", "user_bounds"]


def user_bounds(law: MixingLaw, min_weight=0.0, max_weight=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-training-domain floor and cap arrays from a scalar or {domain: value} each."""
    lo_map = as_domain_map(min_weight, law.train_domains, 0.0, "min_weight")
    hi_map = as_domain_map(max_weight, law.train_domains, 1.0, "max_weight")
    lo = np.array([lo_map[d] for d in law.train_domains])
    hi = np.array([hi_map[d] for d in law.train_domains])
    for d, a, b in zip(law.train_domains, lo, hi):
        if not 0.0 <= a <= 1.0 or not 0.0 <= b <= 1.0 or a > b:
            raise ValueError(f"{law.name}: bounds of domain {d!r} are min {a} max {b}; need 0 <= min <= max <= 1")
    if lo.sum() > 1.0 + 1e-12:
        raise ValueError(f"{law.name}: infeasible: the minimum weights sum to {lo.sum():g} > 1")
    if hi.sum() < 1.0 - 1e-12:
        raise ValueError(f"{law.name}: infeasible: the maximum weights sum to {hi.sum():g} < 1")
    return lo, hi


def check_step(law: MixingLaw, target_step: float) -> None:
    if not math.isfinite(float(target_step)) or float(target_step) <= 0:
        raise ValueError(f"{law.name}: target_step must be finite and > 0, got {target_step}")
