"""BiMix (Ge et al., "BiMix: Bivariate Data Mixing Law for Language Model Pretraining",
arXiv:2405.14908): a domain's loss from its own weight and the step, separably.

    L_i(r, s) = (r_i + eps)^(-alpha_i) * (B_i * s^(-beta_i) + C_i)

Choices made here:
* Redundant scale: A_i = 1 (B_i and C_i absorb it); B_i is in units of step^beta_i.
* Weight 0: the own weight is smoothed, r_i + eps with eps = 1e-3 by default (config `eps`,
  stored in the JSON): a domain left out is predicted as if it had 0.1% of the mixture, so
  predictions stay finite. The value is a convention, not fitted; the `transfer` law replaces
  this crutch with fitted transfer from the other domains.
* Fit: per eval domain, least squares on log L (scipy least_squares, trf, bounds alpha in
  [0, 5], beta in [0, 4], log B and log C in [log(min L) - 12, 40] with s scaled by the largest step),
  analytic Jacobian, `inits` starting points probed briefly, the best refined. Every run counts once (rows
  weighted 1/sqrt(rows of the run)).
* One distinct step in the table: only L_i = K_i (r_i + eps)^(-alpha_i) is fitted (a weighted
  linear least squares with alpha >= 0), the report says so and predictions ignore the step.
  Two distinct steps cannot identify (B, beta, C): error.
* Optimum at target step s*: K_i = B_i s*^-beta_i + C_i, minimise sum_i w_i K_i u_i^-alpha_i
  over u = r + eps. Stationarity: u_i(lambda) = (alpha_i w_i K_i / lambda)^(1/(1+alpha_i)).
  With floors/caps, u_i(lambda) is clipped to [lo_i + eps, hi_i + eps]: each clipped u_i is
  non-increasing in lambda, so sum_i u_i(lambda) = 1 + k*eps has one root (brentq on log
  lambda). That is exactly the KKT point of the convex problem, i.e. the same answer as
  "clip and re-solve on the free set" iterated to convergence. It is the `_optimize` hook that
  laws/optim/slsqp.py calls instead of its generic SLSQP.

Place in the flow: observation table (laws/table.py) -> **bimix** fit (laws/base.py; registered as `bimix` by
`@register_law`, laws/law_registry.py) -> predict / law.json -> the optimisers (laws/optim/) -> weights.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq, lsq_linear

from mixtrain.laws.base import MixingLaw, multistart_least_squares, own_indices, run_weights, step_mode
from mixtrain.laws.law_registry import register_law
from mixtrain.laws.simplex import project_box_simplex
from mixtrain.laws.table import ObservationTable

ALPHA_MAX, BETA_MAX, LOG_MAX = 5.0, 4.0, 40.0
# B (at the largest step) and C are bounded below by exp(-LOG_FLOOR) * (smallest loss): without a floor,
# data with no plateau send log C towards -inf along a vanishing gradient (slow, no better fit)
LOG_FLOOR = 12.0
STEP_INITS = [(0.5, 0.5), (0.2, 0.8), (1.0, 0.3), (0.1, 0.95), (2.0, 0.6), (0.05, 0.5)]


def step_part(lb: float, beta: float, lc: float, x: np.ndarray):
    """log(B s^-beta + C) with x = log(s / s_ref), B = exp(lb), C = exp(lc); and its partials."""
    a = lb - beta * x
    z = np.logaddexp(a, lc)
    pb = np.exp(a - z)  # share of the B term
    return z, pb, -x * pb, 1.0 - pb


def initial_step_guesses(z: np.ndarray, x: np.ndarray, inits: int):
    """(lb, beta, lc) starts from the log step-part values z observed at x (<= 0)."""
    at_end = z[x >= x.max() - 1e-12]
    z0 = float(np.mean(at_end))
    out = []
    for beta, frac in STEP_INITS[: max(1, inits)]:
        out.append((math.log(1 - frac) + z0, beta, math.log(frac) + z0))
    return out


@register_law(order=10)
class BiMixLaw(MixingLaw):
    name = "bimix"
    formula = "L_i = (r_i + eps)^-alpha_i * (B_i s^-beta_i + C_i)   [A_i = 1]"
    defaults = {"eps": 1e-3, "inits": 4}

    def n_params(self) -> int:
        m = len(self.eval_domains)
        return 2 * m if self._single else 4 * m

    def mixture_params(self) -> int:
        return 2  # the level and alpha; B, beta, C come from the steps within runs

    @property
    def _single(self) -> bool:
        return bool(self.params is not None and self.params.get("step_free", np.array(0.0)) > 0)

    def _check(self, table: ObservationTable) -> None:
        own = own_indices(self.name, table.train_domains, table.eval_domains)
        table.require(law=self.name, min_runs=2, min_mixtures=2, why="alpha needs the own weight to vary")
        for j, i in enumerate(own):
            if np.unique(np.round(table.W[:, i], 12)).shape[0] < 2:
                raise ValueError(
                    f"{self.name}: domain {table.eval_domains[j]!r} has the same weight in every run; "
                    "alpha cannot be fitted. Add runs with a different weight for it."
                )
        step_mode(self.name, table)

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        eps, inits = float(self.config["eps"]), int(self.config["inits"])
        own = own_indices(self.name, table.train_domains, table.eval_domains)
        m = len(own)
        omega = run_weights(table)
        logu_all = np.log(table.W[:, own] + eps)
        alpha, B, beta, C = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
        if step_mode(self.name, table) == "single":
            notes.append(f"one distinct step ({table.steps[0]:g}): fitted L_i = K_i (r_i+eps)^-alpha_i only; predictions ignore the step")
            for j in range(m):
                A = np.stack([np.ones(table.n_rows), -logu_all[:, j]], axis=1) * omega[:, None]
                res = lsq_linear(A, np.log(table.L[:, j]) * omega, bounds=([-np.inf, 0.0], [np.inf, ALPHA_MAX]))
                C[j], alpha[j] = math.exp(res.x[0]), res.x[1]
            self.params = {"alpha": alpha, "B": B, "beta": beta, "C": C, "own": own.astype(float), "step_free": np.array(1.0)}
            return
        s_ref = float(table.steps.max())
        x = np.log(table.steps / s_ref)
        for j in range(m):
            d = table.eval_domains[j]
            y, lu = np.log(table.L[:, j]), logu_all[:, j]
            X = np.stack([np.ones_like(x), lu, x], axis=1) * omega[:, None]
            coef = np.linalg.lstsq(X, y * omega, rcond=None)[0]
            a0 = float(np.clip(-coef[1], 0.01, 3.0))

            def resid(p):
                z, _, _, _ = step_part(p[1], p[2], p[3], x)
                return omega * (-p[0] * lu + z - y)

            def jac(p):
                _, db, dbeta, dc = step_part(p[1], p[2], p[3], x)
                return omega[:, None] * np.stack([-lu, db, dbeta, dc], axis=1)

            floor = float(y.min()) - LOG_FLOOR
            lo, hi = [0, floor, 0, floor], [ALPHA_MAX, LOG_MAX, BETA_MAX, LOG_MAX]
            starts = [[a0, lb0, b0, lc0] for lb0, b0, lc0 in initial_step_guesses(y + a0 * lu, x, inits)]
            best = multistart_least_squares(resid, jac, starts, lo, hi, max_nfev=400)
            if best is None:
                raise ValueError(f"{self.name}: the fit failed for domain {d!r} from every start; check its losses")
            alpha[j], beta[j] = best.x[0], best.x[2]
            B[j] = math.exp(best.x[1] + best.x[2] * math.log(s_ref))
            C[j] = math.exp(best.x[3])
        self.params = {"alpha": alpha, "B": B, "beta": beta, "C": C, "own": own.astype(float), "step_free": np.array(0.0)}

    def _K(self, steps: np.ndarray) -> np.ndarray:
        p = self.params
        if self._single:
            return np.broadcast_to(p["C"], (steps.shape[0], p["C"].shape[0]))
        return p["B"][None] * steps[:, None] ** (-p["beta"][None]) + p["C"][None]

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        p = self.params
        own = p["own"].astype(np.int64)
        u = W[:, own] + float(self.config["eps"])
        return u ** (-p["alpha"][None]) * self._K(steps)

    def _predict_grad(self, r: np.ndarray, step: float):
        p = self.params
        own = p["own"].astype(np.int64)
        L = self._predict(r[None], np.array([step]))[0]
        J = np.zeros((L.shape[0], r.shape[0]))
        J[np.arange(L.shape[0]), own] = -p["alpha"] * L / (r[own] + float(self.config["eps"]))
        return L, J

    def _optimize(self, step: float, w: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, rng=None) -> np.ndarray:
        """Closed form (module docstring); deterministic, so `rng` is unused."""
        p, eps = self.params, float(self.config["eps"])
        k = len(self.train_domains)
        own = p["own"].astype(np.int64)
        c = np.zeros(k)
        a = np.zeros(k)
        c[own] = p["alpha"] * w * self._K(np.array([step]))[0]
        a[own] = p["alpha"]
        ulo, uhi = lo + eps, hi + eps
        total = 1.0 + k * eps
        active = c > 0
        if not active.any():
            return project_box_simplex(np.full(k, 1.0 / k), lo, hi)

        def u_of(loglam: float) -> np.ndarray:
            u = ulo.copy()
            with np.errstate(over="ignore"):
                u[active] = np.exp((np.log(c[active]) - loglam) / (1.0 + a[active]))
            return np.clip(u, ulo, uhi)

        # bracket: below every domain's cap-hitting lambda all active are at their caps, above every
        # floor-hitting lambda all are at their floors
        lam_hi = np.log(c[active]) - (1 + a[active]) * np.log(uhi[active])
        lam_lo = np.log(c[active]) - (1 + a[active]) * np.log(ulo[active])
        left, right = float(lam_hi.min()) - 1.0, float(lam_lo.max()) + 1.0
        g = lambda ll: float(u_of(ll).sum() - total)  # noqa: E731
        if g(left) < 0:
            # active domains all capped and still short of 1: the rest goes to domains the
            # objective does not care about, within their caps
            r = u_of(left) - eps
            free = ~active
            room = hi[free] - lo[free]
            r[free] = lo[free] + room * ((1.0 - r.sum()) / room.sum())
            return r
        loglam = brentq(g, left, right, xtol=1e-14, rtol=1e-14, maxiter=500)
        return u_of(loglam) - eps
