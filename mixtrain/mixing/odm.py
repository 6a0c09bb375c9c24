"""ODM (Albalak et al. 2023, "Efficient Online Data Mixing for Language Model Pre-Training"):
an EXP3 bandit whose reward is the domain's training loss.

Place in the flow: `compute(ctx)` (uniform) -> sampler.py; every `refit_every_n_steps` the
controller (mixing/refit.py) hands a `MixHistory` to `update()` (contract: mixing/ado.py).
Pure Python/numpy: no torch, no Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy, finite_or_nan
from mixtrain.weights import normalize_weights


def exp3_exploration(k: int, t: int) -> float:
    """ODM's exploration rate eps_t = min(1/K, sqrt(ln K / (K t)))."""
    if t <= 0:
        return 1.0 / k
    return min(1.0 / k, math.sqrt(math.log(k) / (k * t)))


class ODM(MixingStrategy):
    """Online Data Mixing: EXP3 over domains, reward = the domain's training loss.

    ODM samples one domain per step and updates the sampled arm's reward; here a refit sees
    the mean training loss of every domain since the last refit, so every sampled domain d gets
    its importance-weighted reward loss_d / pi_d at once, pi = the realised shares the losses were
    drawn under (`MixHistory.weights`; not the scheduled weights, which may not have taken effect). As ODM's
    code, the estimated reward is a moving average (non-stationary rewards):
        R_d <- a R_d + (1 - a) loss_d / pi_d          (a = reward_smoothing = 0.9)
        pi  =  (1 - K eps_t) softmax(eps_{t-1} R) + eps_t,   eps_t = min(1/K, sqrt(ln K / (K t)))
    with t = the training step (the paper's per-step exploration schedule, whatever the
    refit interval). A domain with NaN loss (not sampled) gets no reward. Weights are uniform
    until `warmup_steps` (rewards are still collected).
    """

    name = "odm"

    def __init__(
        self,
        refit_every_n_steps: int = 10,
        warmup_steps: int = 100,
        reward_smoothing: float = 0.9,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if not 0.0 <= reward_smoothing < 1.0:
            raise ValueError(f"mixing.reward_smoothing must be in [0, 1), got {reward_smoothing}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.warmup_steps = int(warmup_steps)
        self.reward_smoothing = float(reward_smoothing)
        self._rewards: dict[str, float] | None = None
        self._eps_prev: float | None = None
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: 1.0 for d in ctx.domains}  # EXP3 starts from uniform

    def update(self, history: MixHistory) -> dict[str, float] | None:
        domains = list(history.weights)
        k = len(domains)
        loss = history.train_loss
        if not finite_or_nan(loss) or any(float(loss[d]) < 0 for d in domains if not math.isnan(float(loss[d]))):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite or negative losses"}
            return None
        sampled = [d for d in domains if not math.isnan(float(loss[d]))]
        if not sampled:
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        pi_now = normalize_weights(history.weights, domains, what="odm realised shares")
        rewards = dict(self._rewards or {d: 0.0 for d in domains})
        a = self.reward_smoothing
        for d in sampled:  # importance weighting: a rarely sampled domain's loss counts more
            rewards[d] = a * rewards[d] + (1.0 - a) * float(loss[d]) / max(pi_now[d], 1e-12)
        eps_prev = self._eps_prev if self._eps_prev is not None else 1.0 / k
        eps = exp3_exploration(k, int(history.step))
        if not all(math.isfinite(v) for v in rewards.values()):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite rewards"}
            return None
        self._rewards, self._eps_prev = rewards, eps
        if history.step <= self.warmup_steps:
            self.last_fit_report = {"phase": "warmup", "eps": eps}
            return None
        x = np.array([eps_prev * rewards[d] for d in domains])
        p = np.exp(x - x.max())  # stable softmax
        p = (1.0 - k * eps) * p / p.sum() + eps
        self.last_fit_report = {"phase": "exp3", "eps": eps,
                                "reward": {d: float(f"{rewards[d]:.6g}") for d in domains}}
        return normalize_weights(dict(zip(domains, p.tolist())), domains, what="odm weights")

    def state_dict(self) -> dict[str, Any]:
        return {"rewards": self._rewards, "eps_prev": self._eps_prev}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rewards = dict(state["rewards"]) if state.get("rewards") else None
        self._eps_prev = None if state.get("eps_prev") is None else float(state["eps_prev"])

