"""ADO (Jiang et al. 2025, "Adaptive Data Optimization: Dynamic Sample Selection with Scaling
Laws", ICLR): sample each domain by how fast its fitted loss still falls.

Place in the flow: `compute(ctx)` (the prior) -> sampler/; every `refit_every_n_steps` the
controller (mixtrain/train/mixing_controller.py) hands a `MixHistory` (all-reduced, identical on every rank) to
`update()` on rank 0, broadcasts the result and `state_dict()`, applies the yaml's `refit:`
safety rules and schedules the weights; `last_fit_report` goes to RUN/refits.jsonl.
Contract of every online strategy (ado, odm, doremi, online_bimix): `update` is a pure function
of (history, state) (no randomness, no clock: a resume proposes the same weights); state is
plain JSON-able Python, changed only at the end of a successful `update`; NaN/inf inputs return
None (keep the weights), while NaN in a per-domain training loss only means "not sampled since
the last refit". Pure Python/numpy/scipy: no torch, no Lightning. What follows the paper and
what does not: docs/online.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy, finite_or_nan, tokens_ok
from mixtrain.mixing.static import prior_weights
from mixtrain.mixing.strategy_registry import register_strategy
from mixtrain.weights import normalize_weights


def fit_power_law(n: np.ndarray, loss: np.ndarray, *, alpha_max: float = 0.8,
                  huber_delta: float = 1e-3, grid: int = 25) -> dict[str, float]:
    """Fit L(n) = eps + beta * n^(-alpha) in log space; returns {"eps", "beta", "alpha", "cost"}.

    Log space, as ADO: log L = logsumexp(log beta - alpha log n, log eps), so the residuals are
    relative errors and the three parameters live on comparable scales. Huber loss with a
    small delta (ADO: 1e-3) because per-interval training losses have outliers. Bounds:
    0 <= alpha <= alpha_max (ADO: 0.8); eps below the smallest observed loss (the curve must
    still be able to go down to it). Start: for each alpha on a grid, (eps, beta) by linear
    least squares (the law is linear in them for a fixed alpha); the best one is refined.
    Short histories leave the law unidentified (a long flat valley towards eps -> 0): the grid
    start and an evaluation cap keep such fits to milliseconds instead of hundreds.
    """
    from scipy.optimize import least_squares

    n = np.asarray(n, dtype=float)
    loss = np.asarray(loss, dtype=float)
    logn, logl = np.log(n), np.log(loss)
    lo_eps, hi_eps = math.log(max(loss.min() * 1e-3, 1e-8)), math.log(loss.min())
    lower = np.array([lo_eps, -30.0, 0.0])
    upper = np.array([hi_eps, 40.0, alpha_max])

    def residuals(p):
        log_eps, log_beta, alpha = p
        return np.logaddexp(log_beta - alpha * logn, log_eps) - logl

    def jacobian(p):  # analytic: several times fewer evaluations than finite differences
        log_eps, log_beta, alpha = p
        power = log_beta - alpha * logn
        share = np.exp(power - np.logaddexp(power, log_eps))  # the power term's share of the prediction
        return np.stack([1.0 - share, share, -share * logn], axis=1)

    best_sse, x0 = math.inf, None
    for alpha in np.linspace(alpha_max / grid, alpha_max, grid):
        design = np.stack([np.ones_like(n), n ** -alpha], axis=1)
        (eps, beta), *_ = np.linalg.lstsq(design, loss, rcond=None)
        eps = min(max(eps, math.exp(lo_eps)), loss.min())
        p = np.clip([math.log(eps), math.log(max(beta, 1e-12)), alpha], lower, upper)
        sse = float(np.sum(residuals(p) ** 2))
        if sse < best_sse:
            best_sse, x0 = sse, p
    x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)  # least_squares wants a strictly feasible start
    res = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), loss="huber", f_scale=huber_delta,
                        max_nfev=100)
    log_eps, log_beta, alpha = (float(v) for v in res.x)
    return {"eps": math.exp(log_eps), "beta": math.exp(log_beta), "alpha": alpha, "cost": float(res.cost)}


def smooth_losses(losses: np.ndarray, window: int, order: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing of a loss series (ADO's code: window 101 steps, order 3), the
    window cut to the series (odd, > order); too short a series, or a smoothed value <= 0 (the
    fit is in log space), returns the series unchanged."""
    from scipy.signal import savgol_filter

    window = min(int(window), len(losses))
    window -= 1 - window % 2  # savgol needs an odd window
    if window <= order:
        return losses
    smoothed = savgol_filter(losses, window_length=window, polyorder=order)
    return smoothed if np.all(np.isfinite(smoothed)) and smoothed.min() > 0 else losses


@register_strategy
class ADO(MixingStrategy):
    """Adaptive Data Optimization: sample each domain by how fast its fitted loss still falls.

    Every refit (`refit_every_n_steps`), per domain d, with n_d = tokens of d seen so far:
      1. credit  h_d <- (1 - g) h_d + g pi_d        (ADO: EMA of the policy, gamma1 = 0.1 per step,
                                                     compounded over the k steps: g = 1 - (1 - gamma1)^k;
                                                     pi = the latest scheduled weights)
      2. law     every `fit_every_n_steps`: fit L_d(n) = eps_d + beta_d n^-alpha_d (log space, Huber)
                 to the Savitzky-Golay-smoothed per-domain training loss against n_d, skipping the
                 first `ignore_initial_steps` (early losses do not follow a power law)
      3. speed   -dL_d/dn = max(alpha_d, speed_alpha_min) (L_d(n_d) - eps_d) / n_d
      4. rho_d  ∝ mu_d * h_d^s * speed_d,  then every rho_d >= floor (clipped, renormalised)
      5. pi      = gamma2 rho + (1 - gamma2) mean_rho    (mean_rho: running mean of rho since step 0)
    mu is the prior (the natural mixture, as ADO). Until the first fit the weights stay the prior.
    Tokens instead of ADO's samples change no weight: every domain's samples have the same length.
    Named options keep this module's earlier behaviour: speed="log" (-dL/dlog n, i.e. x n_d),
    credit="realised" (an EMA of the realised token shares instead of the policy),
    loss_smoothing_steps=0 (no smoothing), fit_every_n_steps=1 (refit the law every refit).
    """

    name = "ado"
    SPEEDS = ("per_token", "log")
    CREDITS = ("policy", "realised")

    def __init__(
        self,
        refit_every_n_steps: int = 10,
        fit_every_n_steps: int = 50,
        prior: str = "natural",
        prior_temperature: float = 1.0,
        credit: str = "policy",
        credit_smoothing: float = 0.1,
        credit_exponent: float = 0.5,
        policy_smoothing: float = 0.1,
        floor: float = 0.01,
        speed: str = "per_token",
        speed_alpha_min: float = 0.05,
        loss_smoothing_steps: int = 101,
        loss_smoothing_order: int = 3,
        min_points: int = 5,
        ignore_initial_steps: int = 20,
        alpha_max: float = 0.8,
        huber_delta: float = 1e-3,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if speed not in self.SPEEDS:
            raise ValueError(f"mixing.speed must be one of {self.SPEEDS}, got {speed!r}")
        if credit not in self.CREDITS:
            raise ValueError(f"mixing.credit must be one of {self.CREDITS}, got {credit!r}")
        for key, v in (("credit_smoothing", credit_smoothing), ("policy_smoothing", policy_smoothing)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"mixing.{key} must be in [0, 1], got {v}")
        if int(min_points) < 3:
            raise ValueError(f"mixing.min_points must be >= 3 (the law has 3 parameters), got {min_points}")
        self.refit_every_n_steps, self.fit_every_n_steps = int(refit_every_n_steps), int(fit_every_n_steps)
        self.prior, self.prior_temperature = prior, float(prior_temperature)
        self.credit, self.credit_smoothing = credit, float(credit_smoothing)
        self.credit_exponent = float(credit_exponent)
        self.policy_smoothing, self.floor = float(policy_smoothing), float(floor)
        self.speed, self.speed_alpha_min = speed, float(speed_alpha_min)
        self.loss_smoothing_steps, self.loss_smoothing_order = int(loss_smoothing_steps), int(loss_smoothing_order)
        self.min_points, self.ignore_initial_steps = int(min_points), int(ignore_initial_steps)
        self.alpha_max, self.huber_delta = float(alpha_max), float(huber_delta)
        self._prior_weights: dict[str, float] | None = None
        self._credit: dict[str, float] | None = None
        self._mean_rho: dict[str, float] | None = None
        self._policy: dict[str, float] | None = None  # the last proposal: what credit="policy" averages
        self._fits: dict[str, dict[str, float]] | None = None  # the law per domain, between law refits
        self._fit_step: int | None = None
        self._last_step = 0
        self.last_fit_report: dict[str, Any] | None = None


    def horizon_problems(self, max_steps: int | None) -> list[str]:
        """The base check, plus the law's first fit: it needs `min_points` refits after
        `ignore_initial_steps`; before that ADO samples by its prior."""
        out = super().horizon_problems(max_steps)
        first_fit = self.ignore_initial_steps + self.min_points * self.refit_every_n_steps
        if not out and max_steps and max_steps > 0 and first_fit >= max_steps:
            out.append(f"mixing: ado fits its laws first at about step {first_fit} (ignore_initial_steps="
                       f"{self.ignore_initial_steps} + min_points={self.min_points} x refit_every_n_steps="
                       f"{self.refit_every_n_steps}), not below trainer.max_steps={max_steps}: it samples by its "
                       "prior the whole run; lower those or raise trainer.max_steps")
        return out
    def compute(self, ctx: DataContext) -> dict[str, float]:
        self._prior_weights = prior_weights(self.prior, self.prior_temperature, ctx)
        return dict(self._prior_weights)

    def _points(self, history: MixHistory, d: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, smoothed loss) per interval for domain d: n at the interval's midpoint (the loss is a
        mean over the interval), unsampled intervals skipped, smoothed, then the initial ones dropped."""
        ns, ls, steps = [], [], []
        prev = 0.0
        for rec in [*history.records, {"step": history.step, "tokens_seen": history.tokens_seen,
                                       "train_loss": history.train_loss}]:
            n = float(rec["tokens_seen"][d])
            loss = float(rec["train_loss"].get(d, math.nan)) if rec.get("train_loss") else math.nan
            if n > prev and math.isfinite(loss) and loss > 0:
                ns.append(0.5 * (prev + n))
                ls.append(loss)
                steps.append(int(rec["step"]))
            prev = n
        if not ls:
            return np.zeros(0), np.zeros(0)
        window = self.loss_smoothing_steps // max(self.refit_every_n_steps, 1)
        smoothed = smooth_losses(np.array(ls), window, self.loss_smoothing_order) if window > 1 else np.array(ls)
        keep = np.array(steps) > self.ignore_initial_steps
        return np.array(ns)[keep], smoothed[keep]

    def _fit_due(self, step: int) -> bool:
        return self._fits is None or self._fit_step is None or step - self._fit_step >= self.fit_every_n_steps

    def update(self, history: MixHistory) -> dict[str, float] | None:
        domains = list(history.weights)
        k_domains = len(domains)
        if not (finite_or_nan(history.train_loss) and tokens_ok(history.tokens_seen, domains)):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite inputs"}
            return None
        if all(math.isnan(float(history.train_loss[d])) for d in domains):
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        prior = normalize_weights(self._prior_weights or history.weights, domains, what="ado prior")
        steps = max(history.step - self._last_step, 1)

        # 1. credit: EMA of the policy in force (ADO), or of the realised token shares
        credit = dict(self._credit or prior)
        if self.credit == "policy":  # the latest scheduled weights: the policy after the controller's rules
            source = normalize_weights(history.scheduled_weights or self._policy or prior, domains, what="ado policy")
        else:
            before = history.records[-1]["tokens_seen"] if history.records else {d: 0 for d in domains}
            delta = {d: max(float(history.tokens_seen[d]) - float(before.get(d, 0)), 0.0) for d in domains}
            total = sum(delta.values())
            source = {d: delta[d] / total for d in domains} if total > 0 else None
        if source is not None:
            g1 = 1.0 - (1.0 - self.credit_smoothing) ** steps
            credit = {d: (1.0 - g1) * credit[d] + g1 * source[d] for d in domains}

        # 2. the per-domain laws, refitted every fit_every_n_steps
        fits, fit_step, refitted = self._fits, self._fit_step, False
        if self._fit_due(int(history.step)):
            points = {d: self._points(history, d) for d in domains}
            counts = {d: len(p[0]) for d, p in points.items()}
            if min(counts.values()) >= self.min_points:
                fits = {d: fit_power_law(points[d][0], points[d][1], alpha_max=self.alpha_max,
                                         huber_delta=self.huber_delta) for d in domains}
                fit_step, refitted = int(history.step), True
            elif fits is None:  # not enough history to fit every domain: keep the prior
                # mean_rho stays the prior over these steps, exactly as ADO's running mean before its first fit
                self._credit, self._last_step = credit, int(history.step)
                self.last_fit_report = {"phase": "warmup", "points": counts}
                return None

        # 3.-4. learning speed x prior x credit, with a floor
        speed = {}
        for d in domains:
            fit = fits[d]
            n_now = max(float(history.tokens_seen[d]), 1.0)
            reducible = fit["beta"] * n_now ** (-fit["alpha"])  # L_d(n) - eps_d
            gain = max(fit["alpha"], self.speed_alpha_min) * reducible  # -dL/dlog n
            speed[d] = gain if self.speed == "log" else gain / n_now
        rho_raw = {d: prior[d] * max(credit[d], 0.0) ** self.credit_exponent * speed[d] for d in domains}
        if not all(math.isfinite(v) and v >= 0 for v in rho_raw.values()):
            self.last_fit_report = {"phase": "skipped", "reason": f"non-finite preference {rho_raw}"}
            return None
        z = sum(rho_raw.values())
        rho = {d: rho_raw[d] / z for d in domains} if z > 0 else dict(prior)  # nothing improves: the prior
        floor = min(self.floor, 1.0 / k_domains)
        rho = normalize_weights({d: max(v, floor) for d, v in rho.items()}, domains, what="ado preference")

        # 5. temporal smoothing: towards the step-weighted running mean of rho since step 0
        mean_rho = dict(self._mean_rho or prior)
        keep = (self._last_step + 1.0) / (history.step + 1.0)
        pi = {d: self.policy_smoothing * rho[d] + (1.0 - self.policy_smoothing) * mean_rho[d] for d in domains}
        mean_rho = {d: keep * mean_rho[d] + (1.0 - keep) * rho[d] for d in domains}
        weights = normalize_weights(pi, domains, what="ado weights")

        self._credit, self._mean_rho, self._policy = credit, mean_rho, dict(weights)
        self._fits, self._fit_step, self._last_step = fits, fit_step, int(history.step)
        self.last_fit_report = {
            "phase": "fit", "refitted": refitted, "fit_step": fit_step,
            "alpha": {d: round(fits[d]["alpha"], 5) for d in domains},
            "eps": {d: round(fits[d]["eps"], 5) for d in domains},
            "speed": {d: float(f"{speed[d]:.6g}") for d in domains},
            "credit": {d: round(credit[d], 5) for d in domains},
        }
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {"prior_weights": self._prior_weights, "credit": self._credit, "mean_rho": self._mean_rho,
                "policy": self._policy, "fits": self._fits, "fit_step": self._fit_step, "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("prior_weights"):
            self._prior_weights = dict(state["prior_weights"])
        self._credit = dict(state["credit"]) if state.get("credit") else None
        self._mean_rho = dict(state["mean_rho"]) if state.get("mean_rho") else None
        self._policy = dict(state["policy"]) if state.get("policy") else None
        self._fits = {d: dict(f) for d, f in state["fits"].items()} if state.get("fits") else None
        self._fit_step = None if state.get("fit_step") is None else int(state["fit_step"])
        self._last_step = int(state.get("last_step", 0))
