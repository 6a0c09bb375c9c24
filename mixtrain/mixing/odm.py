"""ODM (Albalak et al. 2023, "Efficient Online Data Mixing for Language Model Pre-Training"):
an EXP3 bandit over domains whose reward is the training loss of the sampled domain.

Place in the flow: `compute(ctx)` (uniform) -> sampler/; every `refit_every_n_steps` (default:
every step, as ODM) the controller (mixtrain/train/mixing_controller.py) hands a `MixHistory` to `update()`
(contract: mixing/ado.py). Pure Python/numpy: no torch, no Lightning. What follows ODM and what
does not: docs/online.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy, finite_or_nan
from mixtrain.mixing.strategy_registry import register_strategy
from mixtrain.weights import normalize_weights


def exp3_exploration(k: int, t: int) -> float:
    """ODM's exploration rate eps_t = min(1/K, sqrt(ln K / (K t)))."""
    if t <= 0:
        return 1.0 / k
    return min(1.0 / k, math.sqrt(math.log(k) / (k * t)))


@register_strategy
class ODM(MixingStrategy):
    """Online Data Mixing: EXP3 over domains, reward = the sampled domain's training loss.

    Per step t (after `warmup_steps` of uniform sampling), as ODM's algorithm and code:
        eps_t = min(1/K, sqrt(ln K / (K t)))
        R_d  += scale * loss_d / pi_d     for the sampled domain d (importance-weighted reward)
        pi    = (1 - K eps_t) softmax(eps_{t-1} R) + eps_t
    ODM draws one domain per step; a mixtrain batch mixes domains, so one step is many pulls.
    Each sample of d is a pull with reward loss/pi_d; their batch average is
    share_d * loss_d / pi_d (share_d = d's share of the step's samples), an unbiased estimate of
    loss_d (E[share_d] = pi_d) whether or not d happened to be drawn. pi is the policy the
    strategy last proposed (`MixHistory.scheduled_weights`); a refit that covers k steps adds k
    times its interval's estimate, so the cumulative reward does not depend on the cadence.
    `scale` = 0.1 is ODM's code (reward / 10): it sets how fast the policy concentrates.
    The bandit updates at every refit (every step by default, as ODM); it proposes its policy to
    the sampler every `propose_every_n_steps`, because the sampler applies a change only from its
    next planning window on (docs/online.md): proposing more often only replaces pending changes.
    Because R accumulates while eps_t decays, the policy concentrates over time on the domains
    with the highest loss (EXP3 maximises reward, and ODM's reward is loss).

    `reward="ema"` keeps this module's earlier estimator (a named option, not ODM's default):
    R_d <- a R_d + (1 - a) loss_d / share_d with a = `reward_smoothing`. R then stays bounded
    while eps_t decays, so the policy drifts back towards uniform as training goes on.
    A domain not sampled since the last refit (NaN loss) gets no reward.
    """

    name = "odm"
    REWARDS = ("cumulative", "ema")

    def __init__(
        self,
        refit_every_n_steps: int = 1,
        propose_every_n_steps: int = 1,
        warmup_steps: int = 100,
        reward: str = "cumulative",
        reward_scale: float = 0.1,
        reward_smoothing: float = 0.9,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if reward not in self.REWARDS:
            raise ValueError(f"mixing.reward must be one of {self.REWARDS}, got {reward!r}")
        if not 0.0 <= reward_smoothing < 1.0:
            raise ValueError(f"mixing.reward_smoothing must be in [0, 1), got {reward_smoothing}")
        if not reward_scale > 0:
            raise ValueError(f"mixing.reward_scale must be > 0, got {reward_scale}")
        if int(propose_every_n_steps) < 1:
            raise ValueError(f"mixing.propose_every_n_steps must be >= 1, got {propose_every_n_steps}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.propose_every_n_steps = int(propose_every_n_steps)
        self.warmup_steps = int(warmup_steps)
        self.reward, self.reward_scale = reward, float(reward_scale)
        self.reward_smoothing = float(reward_smoothing)
        self._rewards: dict[str, float] | None = None
        self._policy: dict[str, float] | None = None  # the last proposal (importance weights without a sampler)
        self._proposed_step: int | None = None
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: 1.0 for d in ctx.domains}  # EXP3 starts from uniform

    def _policy_in_force(self, history: MixHistory, domains: list[str]) -> dict[str, float]:
        """The probabilities the step's samples were drawn with, as far as the strategy knows: the
        latest scheduled weights (the sampler applies them after its lag: docs/online.md)."""
        pi = history.scheduled_weights or self._policy or {d: 1.0 for d in domains}
        return normalize_weights(pi, domains, what="odm policy")

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
        if history.step <= self.warmup_steps:  # ODM: uniform, and no bandit update, during warm-up
            self.last_fit_report = {"phase": "warmup", "eps": exp3_exploration(k, int(history.step))}
            return None
        share = normalize_weights(history.weights, domains, what="odm realised shares")
        rewards = dict(self._rewards or {d: 0.0 for d in domains})
        if self.reward == "cumulative":
            pi = self._policy_in_force(history, domains)
            # the steps this refit covers, warm-up steps excluded (ODM rewards none of them)
            since = max(int(history.records[-1]["step"]) if history.records else 0, self.warmup_steps)
            steps = max(int(history.step) - since, 1)
            for d in sampled:
                rewards[d] += steps * self.reward_scale * share[d] * float(loss[d]) / max(pi[d], 1e-12)
        else:
            a = self.reward_smoothing
            for d in sampled:
                rewards[d] = a * rewards[d] + (1.0 - a) * float(loss[d]) / max(share[d], 1e-12)
        if not all(math.isfinite(v) for v in rewards.values()):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite rewards"}
            return None
        # eps_{t-1} of the step before, as ODM's per-step update, whatever the refit interval
        eps_prev = exp3_exploration(k, int(history.step) - 1)
        eps = exp3_exploration(k, int(history.step))
        x = np.array([eps_prev * rewards[d] for d in domains])
        p = np.exp(x - x.max())  # stable softmax
        p = (1.0 - k * eps) * p / p.sum() + eps
        policy = normalize_weights(dict(zip(domains, p.tolist())), domains, what="odm weights")
        # the sampler applies a change only from its next planning window on: a proposal every
        # step would mostly replace the pending one (and rewrite refits.jsonl each time)
        every = self.propose_every_n_steps  # at the first update, then whenever a multiple of `every` is passed
        due = self._proposed_step is None or int(history.step) // every != self._proposed_step // every
        self._rewards = rewards
        self.last_fit_report = {"phase": "exp3", "eps": eps, "proposed": due,
                                "reward": {d: float(f"{rewards[d]:.6g}") for d in domains}}
        if not due:
            return None
        self._policy, self._proposed_step = policy, int(history.step)
        return dict(policy)

    def state_dict(self) -> dict[str, Any]:
        return {"rewards": self._rewards, "policy": self._policy, "proposed_step": self._proposed_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rewards = dict(state["rewards"]) if state.get("rewards") else None
        self._policy = dict(state["policy"]) if state.get("policy") else None
        self._proposed_step = None if state.get("proposed_step") is None else int(state["proposed_step"])
