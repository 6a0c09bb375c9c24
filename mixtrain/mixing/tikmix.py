"""TiKMiX-D (Wang et al. 2025, "TiKMiX: Take Data Influence into Dynamic Mixture for Language Model
Pre-training", arXiv 2508.17677): at each stage boundary, the group influence of every domain on every
target task, then the mixture that maximises the normalised total influence and its balance across
tasks with an entropy bonus, under a Pareto constraint against the previous mixture.

Place in the flow: declares a `gradient_probe` with one gradient per target domain (tasks="each";
mixing/gradient_probe.py) -> the controller (mixtrain/train/mixing_controller.py) has
mixtrain/train/grad_probe.py measure <g_task, P g_domain> every `refit_every_n_steps` (the stage
length) -> `update()` solves the TiKMiX-D program with scipy's SLSQP -> sampler/. Pure numpy/scipy.

Influence: the paper's group influence of domain j on task loss f is
I_f = -grad f^T H^-1 sum_{z in j} grad L(z). A positive score here means "more of j lowers f":
S_tj = -I_f / |j| = <grad f_t, H^-1 g_j> with g_j the mean-loss gradient of j's probe batch (equal-sized
groups, so the sum and the mean rank domains alike). H^-1: `hessian=identity` (S_tj is DoGE's
alignment) or `hessian=adam`: the optimiser's diagonal sqrt(v_hat) + eps, Adam's own preconditioner
(the paper cites EK-FAC and does not say what it used; docs/online.md says why we offer these two).

TiKMiX-D: P = S w; P_hat_t = P_t / (max_j |S_tj| + 1e-8); minimise
    alpha std(P_hat) - beta sum_t P_hat_t - gamma H(w),   H(w) = -sum w log w,
subject to w >= 0, sum w = 1 and S w >= S w_prior (no task loses influence against the previous
mixture), by SLSQP from the uniform mixture (the paper's). alpha = beta = gamma = 1 by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import minimize

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.gradient_probe import ProbeResult, ProbeSpec
from mixtrain.mixing.static import prior_weights
from mixtrain.mixing.strategy_registry import register_strategy

HESSIANS = ("identity", "adam")


def tikmix_objective(w: np.ndarray, S: np.ndarray, alpha: float, beta: float, gamma: float) -> float:
    """alpha std(P_hat) - beta sum(P_hat) - gamma H(w) for the influence matrix S [tasks x domains]."""
    P_hat = (S @ w) / (np.abs(S).max(axis=1) + 1e-8)
    entropy = -float(np.sum(w * np.log(np.clip(w, 1e-12, None))))
    return alpha * float(np.std(P_hat)) - beta * float(P_hat.sum()) - gamma * entropy


def solve_tikmix(S: np.ndarray, w_prior: np.ndarray, *, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                 pareto: bool = True, max_iter: int = 500) -> tuple[np.ndarray, dict[str, Any]]:
    """TiKMiX-D's mixture for influence matrix S [tasks x domains] (see the module doc).

    Returns (w, report). When SLSQP fails or ends infeasible, w is the prior (feasible by definition)
    and the report says why: the mixture never loses influence on a task because the solver did."""
    S = np.asarray(S, dtype=np.float64)
    k = S.shape[1]
    w_prior = np.asarray(w_prior, dtype=np.float64) / np.sum(w_prior)
    # scale each task's row to unit max |S|: the constraint's tolerances then mean the same on every task
    Sn = S / (np.abs(S).max(axis=1, keepdims=True) + 1e-30)
    floor = Sn @ w_prior
    cons = [{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}]
    if pareto:
        cons.append({"type": "ineq", "fun": lambda w: Sn @ w - floor, "jac": lambda w: Sn})
    res = minimize(tikmix_objective, np.full(k, 1.0 / k), args=(S, alpha, beta, gamma), method="SLSQP",
                   bounds=[(0.0, 1.0)] * k, constraints=cons, options={"maxiter": max_iter, "ftol": 1e-12})
    w = np.clip(res.x, 0.0, None)
    w = w / w.sum() if w.sum() > 0 else w_prior
    violation = float(max(0.0, np.max(floor - Sn @ w))) if pareto else 0.0
    report = {"success": bool(res.success), "message": str(res.message), "iterations": int(res.nit),
              "objective": float(tikmix_objective(w, S, alpha, beta, gamma)), "pareto_violation": violation}
    if not res.success or violation > 1e-6:
        report["fallback"] = "prior"
        return w_prior, report
    return w, report


@register_strategy
class TiKMiX(MixingStrategy):
    """TiKMiX-D, stage-wise, on sketched gradient influence (see the module doc)."""

    name = "tikmix"

    def __init__(self, refit_every_n_steps: int = 100, hessian: str = "identity", alpha: float = 1.0,
                 beta: float = 1.0, gamma: float = 1.0, pareto: bool = True, prior: str = "uniform",
                 samples_per_domain: int = 8, target_samples: int = 8, sketch_dim: int = 8192,
                 max_epochs: float | None = None):
        super().__init__(max_epochs)
        if hessian not in HESSIANS:
            raise ValueError(f"mixing.hessian={hessian!r}: use identity or adam (the optimiser's second moment)")
        self.refit_every_n_steps, self.hessian = int(refit_every_n_steps), hessian
        self.alpha, self.beta, self.gamma, self.pareto, self.prior = float(alpha), float(beta), float(gamma), \
            bool(pareto), prior
        self.gradient_probe = ProbeSpec(samples_per_domain=int(samples_per_domain), target_samples=int(target_samples),
                                        sketch_dim=int(sketch_dim), tasks="each", precondition=hessian)
        self.last_fit_report: dict[str, Any] | None = None
        self._stages = 0

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return prior_weights(self.prior, 1.0, ctx)

    def update(self, history: MixHistory) -> dict[str, float] | None:
        probe: ProbeResult | None = history.probe
        if probe is None or probe.task_inner is None:
            self.last_fit_report = {"phase": "skipped", "reason": "no per-task gradient probe in the history"}
            return None
        S = np.asarray(probe.task_inner, dtype=np.float64).T  # [tasks, domains]
        if not np.all(np.isfinite(S)):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite influence"}
            return None
        prior = history.scheduled_weights or history.weights
        w_prior = np.array([float(prior[d]) for d in probe.domains])
        w, report = solve_tikmix(S, w_prior, alpha=self.alpha, beta=self.beta, gamma=self.gamma, pareto=self.pareto)
        self._stages += 1
        self.last_fit_report = {"phase": "fit", "stage": self._stages, **report,
                                "influence": {t: dict(zip(probe.domains, row.tolist()))
                                              for t, row in zip(probe.tasks, S)}}
        return dict(zip(probe.domains, w.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {"stages": self._stages}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._stages = int(state.get("stages") or 0)
