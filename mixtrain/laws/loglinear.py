"""Log-linear regression of log loss on log weights and log step (ridge-regularised).

    log L_i = a_i + sum_j b_ij log(r_j + eps) + g_i log s

Choices made here:
* eps = 1e-3 (config) keeps log r finite at weight 0, as in bimix.
* Ridge on b only (not a_i, g_i): penalty ridge * n_runs * sum_j b_ij^2, rows weighted so
  every run counts once; closed-form solve. Default ridge = 1e-3 so that tables with fewer
  mixtures than domains still fit; with ridge = 0 the table needs >= k+2 distinct mixtures.
* Step: a pure power law in s (log-linear), so loss never plateaus; extrapolation in steps is
  this law's weak side. One distinct step: g_i dropped and the report says so.
* Optimum: SLSQP on the simplex with floors/caps, several starts (no closed form: laws/optim/slsqp.py's
  generic `box_optimum`).

Place in the flow: observation table (laws/table.py) -> **loglinear** fit (laws/base.py; registered as `loglinear` by
`@register_law`, laws/law_registry.py) -> predict / law.json -> the optimisers (laws/optim/) -> weights.
"""

from __future__ import annotations

import numpy as np

from mixtrain.laws.base import MixingLaw, run_weights
from mixtrain.laws.law_registry import register_law
from mixtrain.laws.table import ObservationTable


@register_law(order=30)
class LogLinearLaw(MixingLaw):
    name = "loglinear"
    formula = "log L_i = a_i + sum_j b_ij log(r_j + eps) + g_i log s"
    defaults = {"ridge": 1e-3, "eps": 1e-3}

    def n_params(self) -> int:
        m, k = len(self.eval_domains), len(self.train_domains)
        return m * (k + 1) + (0 if self._single else m)

    def mixture_params(self) -> float:
        # effective degrees of freedom of the ridge solve (trace of its hat matrix), less the step slope
        return float(self.params["dof"]) if self.params is not None and "dof" in self.params else len(self.train_domains) + 1

    @property
    def _single(self) -> bool:
        return bool(self.params is not None and self.params["step_free"] > 0)

    def _check(self, table: ObservationTable) -> None:
        k = len(table.train_domains)
        if float(self.config["ridge"]) > 0:
            table.require(law=self.name, min_runs=2, min_mixtures=2, why="ridge > 0")
        else:
            table.require(law=self.name, min_mixtures=k + 2, why=f"ridge = 0: k+1 = {k + 1} parameters per domain plus one to spare")

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        eps, ridge = float(self.config["eps"]), float(self.config["ridge"])
        k = len(table.train_domains)
        single = table.distinct_steps().shape[0] == 1
        if single:
            notes.append(f"one distinct step ({table.steps[0]:g}): g = 0; predictions ignore the step")
        omega = run_weights(table)
        cols = [np.ones(table.n_rows), np.log(table.W + eps)]
        if not single:
            cols.append(np.log(table.steps))
        X = np.column_stack(cols)
        P = np.zeros(X.shape[1])
        P[1 : 1 + k] = ridge * table.n_runs
        Xw = X * omega[:, None]
        Y = np.log(table.L) * omega[:, None]
        A = Xw.T @ Xw + np.diag(P) + 1e-12 * np.eye(X.shape[1])
        coef = np.linalg.solve(A, Xw.T @ Y)  # [p, m]
        dof = float(np.trace(np.linalg.solve(A, Xw.T @ Xw))) - (0.0 if single else 1.0)
        self.params = {
            "a": coef[0],
            "b": coef[1 : 1 + k].T.copy(),
            "g": np.zeros(coef.shape[1]) if single else coef[1 + k],
            "step_free": np.array(float(single)),
            "dof": np.array(dof),
        }

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        p, eps = self.params, float(self.config["eps"])
        z = p["a"][None] + np.log(W + eps) @ p["b"].T + np.log(steps)[:, None] * p["g"][None]
        return np.exp(z)

    def _predict_grad(self, r: np.ndarray, step: float):
        L = self._predict(r[None], np.array([step]))[0]
        return L, L[:, None] * self.params["b"] / (r + float(self.config["eps"]))[None]
