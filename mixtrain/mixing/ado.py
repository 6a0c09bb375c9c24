"""ADO (Jiang et al. 2024, "Adaptive Data Optimization: dynamic sample selection with scaling
laws"): sample each domain by how fast its fitted loss still falls.

Place in the flow: `compute(ctx)` (the prior) -> sampler.py; every `refit_every_n_steps` the
controller (mixing/refit.py) hands a `MixHistory` (all-reduced, identical on every rank) to
`update()` on rank 0, broadcasts the result and `state_dict()`, applies the yaml's `refit:`
safety rules and schedules the weights; `last_fit_report` goes to RUN/refits.jsonl.
Contract of every online strategy (ado, odm, doremi, online_bimix): `update` is a pure function
of (history, state) (no randomness, no clock: a resume proposes the same weights); state is
plain JSON-able Python, changed only at the end of a successful `update`; NaN/inf inputs return
None (keep the weights), while NaN in a per-domain training loss only means "not sampled since
the last refit". Pure Python/numpy/scipy: no torch, no Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy, finite_or_nan, tokens_ok
from mixtrain.mixing.static import prior_weights
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


class ADO(MixingStrategy):
    """Adaptive Data Optimization: sample each domain by how fast its fitted loss still falls.

    Per domain d, fit L_d(n) = eps_d + beta_d n^(-alpha_d) to the run's own history: one point
    per refit, (n = tokens of d seen at the middle of the interval, L = mean training loss of d
    over the interval). Then at the current n_d:
        speed_d  = -dL_d/dlog n = alpha_d beta_d n_d^(-alpha_d)      (speed="log", default)
                 = -dL_d/dn     = alpha_d beta_d n_d^(-alpha_d-1)    (speed="per_token", ADO's paper)
        rho_d   ∝ prior_d * credit_d^s * speed_d                     (prior: natural mixture^(1/T))
        pi      = gamma2 * rho + (1 - gamma2) * mean_rho             (ADO's policy smoothing)
        weights = floor + (1 - K floor) * pi                         (every domain keeps >= floor)
    Choices, documented because the paper updates every step and we update every refit:
    - credit_d = an EMA of the domain's realised token share between refits (ADO: an EMA of
      the policy, gamma1 = 0.1 per step). The realised share is what the sampler actually did
      after the safety rules and the weight-change delay, so it is the honest credit. The
      per-step gamma1 is compounded over the k steps of an interval: 1 - (1 - gamma1)^k.
    - mean_rho = ADO's step-weighted running average of rho since step 0 (initialised to the
      prior, weight 1/(t+1) per step, exact for rho constant between refits).
    - speed="log" (default) multiplies ADO's -dL/dn by n: the gain per *relative* increase of
      the domain's data. -dL/dn alone scales like share^(-1-alpha) and so pushes hard towards
      whichever domain was sampled least; per-token is kept for fidelity to the paper.
    Until every domain has `min_points` usable points the weights are kept (the prior).
    """

    name = "ado"
    SPEEDS = ("log", "per_token")

    def __init__(
        self,
        refit_every_n_steps: int = 50,
        prior: str = "natural",
        prior_temperature: float = 1.0,
        credit_smoothing: float = 0.1,
        credit_exponent: float = 0.5,
        policy_smoothing: float = 0.1,
        floor: float = 0.01,
        speed: str = "log",
        min_points: int = 3,
        ignore_initial_steps: int = 0,
        alpha_max: float = 0.8,
        huber_delta: float = 1e-3,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if speed not in self.SPEEDS:
            raise ValueError(f"mixing.speed must be one of {self.SPEEDS}, got {speed!r}")
        for key, v in (("credit_smoothing", credit_smoothing), ("policy_smoothing", policy_smoothing)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"mixing.{key} must be in [0, 1], got {v}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.prior, self.prior_temperature = prior, float(prior_temperature)
        self.credit_smoothing, self.credit_exponent = float(credit_smoothing), float(credit_exponent)
        self.policy_smoothing, self.floor, self.speed = float(policy_smoothing), float(floor), speed
        self.min_points, self.ignore_initial_steps = int(min_points), int(ignore_initial_steps)
        self.alpha_max, self.huber_delta = float(alpha_max), float(huber_delta)
        self._prior_weights: dict[str, float] | None = None
        self._credit: dict[str, float] | None = None
        self._mean_rho: dict[str, float] | None = None
        self._last_step = 0
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        self._prior_weights = prior_weights(self.prior, self.prior_temperature, ctx)
        return dict(self._prior_weights)

    def _points(self, history: MixHistory, d: str) -> tuple[list[float], list[float]]:
        """(n, loss) per interval for domain d: n at the interval's midpoint, skipping unsampled intervals."""
        ns, ls = [], []
        prev = 0.0
        for rec in [*history.records, {"step": history.step, "tokens_seen": history.tokens_seen,
                                       "train_loss": history.train_loss}]:
            n = float(rec["tokens_seen"][d])
            loss = float(rec["train_loss"].get(d, math.nan)) if rec.get("train_loss") else math.nan
            if rec["step"] > self.ignore_initial_steps and n > prev and math.isfinite(loss) and loss > 0:
                ns.append(0.5 * (prev + n))  # the loss is a mean over the interval: place it mid-interval
                ls.append(loss)
            prev = n
        return ns, ls

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
        credit = dict(self._credit or prior)
        steps = max(history.step - self._last_step, 1)

        # credit: EMA of the realised token share since the last refit
        before = history.records[-1]["tokens_seen"] if history.records else {d: 0 for d in domains}
        delta = {d: max(float(history.tokens_seen[d]) - float(before.get(d, 0)), 0.0) for d in domains}
        total = sum(delta.values())
        if total > 0:
            g1 = 1.0 - (1.0 - self.credit_smoothing) ** steps
            credit = {d: (1.0 - g1) * credit[d] + g1 * delta[d] / total for d in domains}

        points = {d: self._points(history, d) for d in domains}
        short = {d: len(p[0]) for d, p in points.items() if len(p[0]) < self.min_points}
        if short:  # not enough history to fit every domain: keep the current (prior) weights
            # mean_rho stays the prior over these steps, exactly as ADO's running mean before its first fit
            self._credit, self._last_step = credit, int(history.step)
            self.last_fit_report = {"phase": "warmup", "points": {d: len(p[0]) for d, p in points.items()}}
            return None

        fits, speed = {}, {}
        for d in domains:
            fit = fit_power_law(np.array(points[d][0]), np.array(points[d][1]),
                                alpha_max=self.alpha_max, huber_delta=self.huber_delta)
            n_now = max(float(history.tokens_seen[d]), 1.0)
            gain = fit["alpha"] * fit["beta"] * n_now ** (-fit["alpha"])  # alpha (L(n) - eps) = -dL/dlog n
            speed[d] = gain if self.speed == "log" else gain / n_now
            fits[d] = fit
        rho_raw = {d: prior[d] * max(credit[d], 0.0) ** self.credit_exponent * speed[d] for d in domains}
        if not all(math.isfinite(v) and v >= 0 for v in rho_raw.values()):
            self.last_fit_report = {"phase": "skipped", "reason": f"non-finite preference {rho_raw}"}
            return None
        z = sum(rho_raw.values())
        rho = {d: rho_raw[d] / z for d in domains} if z > 0 else dict(prior)  # nothing improves: fall back to prior

        mean_rho = dict(self._mean_rho or prior)  # step-weighted mean of rho since step 0 (starts at the prior)
        keep = (self._last_step + 1.0) / (history.step + 1.0)
        pi = {d: self.policy_smoothing * rho[d] + (1.0 - self.policy_smoothing) * mean_rho[d] for d in domains}
        mean_rho = {d: keep * mean_rho[d] + (1.0 - keep) * rho[d] for d in domains}
        floor = min(self.floor, 1.0 / k_domains)
        weights = {d: floor + (1.0 - k_domains * floor) * pi[d] for d in domains}
        weights = normalize_weights(weights, domains, what="ado weights")

        self._credit, self._mean_rho, self._last_step = credit, mean_rho, int(history.step)
        self.last_fit_report = {
            "phase": "fit", "points": len(points[domains[0]][0]),
            "alpha": {d: round(fits[d]["alpha"], 5) for d in domains},
            "eps": {d: round(fits[d]["eps"], 5) for d in domains},
            "speed": {d: float(f"{speed[d]:.6g}") for d in domains},
            "credit": {d: round(credit[d], 5) for d in domains},
        }
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {"prior_weights": self._prior_weights, "credit": self._credit, "mean_rho": self._mean_rho,
                "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("prior_weights"):
            self._prior_weights = dict(state["prior_weights"])
        self._credit = dict(state["credit"]) if state.get("credit") else None
        self._mean_rho = dict(state["mean_rho"]) if state.get("mean_rho") else None
        self._last_step = int(state.get("last_step", 0))

