"""The exponential data-mixing law of Ye et al. (2024), with a separable step factor.

    L_i(r, s) = (c_i + k_i * exp(sum_j t_ij r_j)) * (1 + b_i * s^(-beta_i)),   sum_j t_ij = 0

Choices made here:
* Redundancy: since sum_j r_j = 1, adding a constant to every t_ij only rescales k_i; we fit
  t'_ij = t_ij + log k_i freely and report the canonical form (t centred per domain, k_i =
  exp(mean_j t'_ij)). Mixture part: c_i + k_i exp(t_i . r) is the loss as s -> infinity.
* Step dependence (the paper nests separate step and mixture laws; we use one separable form):
  a per-domain factor (1 + b_i s^-beta_i), b_i >= 0, beta_i in [0, 4]. One distinct step in
  the table: the factor is dropped (b = 0) and the report says so; two steps: error.
* Fit: per eval domain, least squares on log L (trf, analytic Jacobian, c_i in [0, min L_i]),
  several starts. Every run counts once (rows weighted 1/sqrt(rows of the run)).
* Data needs: the mixture part has k+1 free parameters per domain, so without regularisation
  the table must hold >= k+2 distinct mixtures (error otherwise). `ridge` > 0 adds
  ridge * n_runs * var(log L) * sum_j (t_ij - mean t_i)^2 (scale-free) and allows >= 3 runs.
* Optimum: SLSQP on the simplex with floors/caps, several starts (no closed form: laws/optim/slsqp.py's
  generic `box_optimum`).

Place in the flow: observation table (laws/table.py) -> **exp** fit (laws/base.py; registered as `exp` by
`@register_law`, laws/law_registry.py) -> predict / law.json -> the optimisers (laws/optim/) -> weights.
"""

from __future__ import annotations

import math

import numpy as np
from mixtrain.laws.base import MixingLaw, multistart_least_squares, run_weights, step_mode
from mixtrain.laws.law_registry import register_law
from mixtrain.laws.table import ObservationTable

T_MAX, BETA_MAX = 50.0, 4.0
# log b at the largest step: the step factor there lies in [1 + 1e-6, 1 + e^5]
LB_MIN, LB_MAX = -14.0, 5.0


@register_law(order=20)
class ExpLaw(MixingLaw):
    name = "exp"
    formula = "L_i = (c_i + k_i exp(sum_j t_ij r_j)) * (1 + b_i s^-beta_i),  sum_j t_ij = 0"
    defaults = {"ridge": 0.0, "inits": 3}

    def n_params(self) -> int:
        m, k = len(self.eval_domains), len(self.train_domains)
        return m * (k + 1) + (0 if self._single else 2 * m)

    def mixture_params(self) -> int:
        # c_i plus the k free t'_ij; with ridge > 0 the t's are shrunk and only c_i and the level stay free
        return len(self.train_domains) + 1 if float(self.config["ridge"]) == 0 else 2

    @property
    def _single(self) -> bool:
        return bool(self.params is not None and self.params["step_free"] > 0)

    def _check(self, table: ObservationTable) -> None:
        k = len(table.train_domains)
        if float(self.config["ridge"]) > 0:
            table.require(law=self.name, min_runs=3, min_mixtures=3, why="ridge > 0")
        else:
            table.require(law=self.name, min_mixtures=k + 2,
                          why=f"k+1 = {k + 1} mixture parameters per domain plus one to spare; or set ridge > 0")
        step_mode(self.name, table)

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        k, m = len(table.train_domains), len(table.eval_domains)
        ridge, inits = float(self.config["ridge"]), int(self.config["inits"])
        single = step_mode(self.name, table) == "single"
        if single:
            notes.append(f"one distinct step ({table.steps[0]:g}): step factor dropped (b = 0); predictions ignore the step")
        omega = run_weights(table)
        s_ref = float(table.steps.max())
        x = np.log(table.steps / s_ref)
        R = table.W
        centre = np.eye(k) - 1.0 / k
        c_out, k_out, t_out = np.zeros(m), np.zeros(m), np.zeros((m, k))
        b_out, beta_out = np.zeros(m), np.zeros(m)
        npar = 1 + k + (0 if single else 2)
        for i in range(m):
            d = table.eval_domains[i]
            y = np.log(table.L[:, i])
            ymin = float(table.L[:, i].min())
            lam = math.sqrt(ridge * table.n_runs * max(float(np.var(y)), 1e-12)) if ridge > 0 else 0.0

            def parts(p):
                c, t = p[0], p[1 : 1 + k]
                E = np.exp(np.clip(R @ t, -T_MAX, T_MAX))
                M = c + E
                z = np.log(M)
                if single:
                    return z, E, M, None, None
                S = np.exp(p[1 + k] - p[2 + k] * x)
                return z + np.log1p(S), E, M, S, S / (1 + S)

            def resid(p):
                z = parts(p)[0]
                r = omega * (z - y)
                return np.concatenate([r, lam * (centre @ p[1 : 1 + k])]) if lam else r

            def jac(p):
                _, E, M, S, q = parts(p)
                cols = [1.0 / M, (E / M)[:, None] * R]
                if not single:
                    cols += [q, -x * q]
                J = omega[:, None] * np.column_stack(cols)
                if lam:
                    pen = np.zeros((k, npar))
                    pen[:, 1 : 1 + k] = lam * centre
                    J = np.vstack([J, pen])
                return J

            lo = [0.0] + [-T_MAX] * k + ([] if single else [LB_MIN, 0.0])
            hi = [ymin * (1 - 1e-9)] + [T_MAX] * k + ([] if single else [LB_MAX, BETA_MAX])
            starts = []
            for frac in (0.0, 0.5, 0.8)[: max(1, inits)]:
                c0 = frac * ymin
                # linear start: log(L - c0) ~ t'.r (+ const absorbed since sum r = 1) + a x
                A = np.column_stack([R] + ([] if single else [x]))
                sol = np.linalg.lstsq(A * omega[:, None], np.log(table.L[:, i] - c0 + 1e-12) * omega, rcond=None)[0]
                starts.append([c0] + list(np.clip(sol[:k], -T_MAX + 1, T_MAX - 1)) + ([] if single else [math.log(0.1), 0.5]))
            best = multistart_least_squares(resid, jac, starts, lo, hi, max_nfev=100 * npar)
            if best is None:
                raise ValueError(f"{self.name}: the fit failed for domain {d!r} from every start; check its losses")
            p = best.x
            tp = p[1 : 1 + k]
            c_out[i], k_out[i], t_out[i] = p[0], math.exp(tp.mean()), tp - tp.mean()
            if not single:
                beta_out[i] = p[2 + k]
                b_out[i] = math.exp(p[1 + k] + p[2 + k] * math.log(s_ref))
        self.params = {"c": c_out, "k": k_out, "t": t_out, "b": b_out, "beta": beta_out, "step_free": np.array(float(single))}

    def _factor(self, steps: np.ndarray) -> np.ndarray:
        p = self.params
        if self._single:
            return np.ones((steps.shape[0], p["c"].shape[0]))
        return 1.0 + p["b"][None] * steps[:, None] ** (-p["beta"][None])

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        p = self.params
        E = p["k"][None] * np.exp(np.clip(W @ p["t"].T, -T_MAX, T_MAX))
        return (p["c"][None] + E) * self._factor(steps)

    def _predict_grad(self, r: np.ndarray, step: float):
        p = self.params
        f = self._factor(np.array([step]))[0]
        E = p["k"] * np.exp(np.clip(p["t"] @ r, -T_MAX, T_MAX))
        L = (p["c"] + E) * f
        return L, (E * f)[:, None] * p["t"]
