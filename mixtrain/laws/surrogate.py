"""Surrogate laws with cross-domain terms: a step factor shared with bimix/exp, times a regression of
the mixture part on features of the whole mixture. `ridge` lives here; `lightgbm` in laws/trees.py.

    log L_i(r, s) = f_i(r) + log(1 + b_i s^-beta_i)

Place in the flow: observation table -> **surrogate** fit -> predict / laws/optim/sampled.py -> weights.
Pure: numpy + scipy.

Why: in bimix and transfer a domain's loss depends on its own weight only, so they cannot see that
general web text helps every other domain, and on real proxy data they starved it (issue 19).
A regression on the whole mixture can represent that transfer.

* Step (as in bimix: separable, multiplicative): per eval domain the factor (1 + b_i s^-beta_i)
  is fitted on the within-run variation only, every run's level profiled out (variable projection:
  for given (b, beta) each run's level is its mean residual). The level mu_run = f_i(r_run) is
  then the mixture part: one number per run, so the regression counts every run once and its
  cross-validation is over runs by construction. One distinct step: no factor (the report says
  so); two steps: refused (b and beta need >= 3).
* Runs with the same mixture (seeds, bootstrap copies) are merged into one row weighted by their
  count, so leave-one-out is leave-one-mixture-out.
* `ridge`: features w_j, log(w_j + eps), and the pairwise products w_j w_l (j < l), standardised;
  the penalty per eval domain is chosen by exact leave-one-mixture-out error over a log grid,
  restricted to penalties whose effective degrees of freedom leave at least one run spare.
  The fit is closed form (one SVD per eval domain); it takes milliseconds. Predictions clip every
  standardised feature to the range the runs spanned: a linear model in log(w + eps) would
  otherwise promise ever lower loss as a weight leaves the data (seen in bench/optimiser.py at 17
  domains: the unclipped proposal was far worse than uniform).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares

from mixtrain.laws.base import MixingLaw, step_mode
from mixtrain.laws.law_registry import register_law
from mixtrain.laws.table import ObservationTable

LB_MIN, LB_MAX, BETA_MAX = -14.0, 5.0, 4.0
STEP_STARTS = [(math.log(0.1), 0.5), (math.log(1.0), 0.3), (math.log(0.01), 1.0)]
ALPHAS = np.logspace(-4, 4, 33)


def fit_step_factor(y: np.ndarray, x: np.ndarray, run_idx: np.ndarray, n_runs: int) -> tuple[float, float]:
    """(log b at the reference step, beta) of log(1 + b e^{-beta x}) with every run's level profiled out.

    y: log losses [n]; x: log(step / largest step) [n]; run_idx: run of each row. Each run counts once.
    """
    counts = np.bincount(run_idx, minlength=n_runs).astype(float)
    omega = 1.0 / np.sqrt(counts[run_idx])

    def resid(p):
        h = np.log1p(np.exp(p[0] - p[1] * x))
        e = y - h
        mu = np.bincount(run_idx, e, minlength=n_runs) / counts
        return omega * (e - mu[run_idx])

    best = None
    for p0 in STEP_STARTS:
        res = least_squares(resid, p0, bounds=([LB_MIN, 0.0], [LB_MAX, BETA_MAX]), method="trf", max_nfev=200)
        if best is None or res.cost < best.cost:
            best = res
    return float(best.x[0]), float(best.x[1])


class SurrogateLaw(MixingLaw):
    """Shared machinery: step factor, per-run mixture levels, merging of identical mixtures.
    Subclasses implement `_fit_mixture(X [u, k], Y [u, m], counts [u], notes)` and `_mixture(W) -> [n, m]`."""

    def n_params(self) -> int:
        m = len(self.eval_domains)
        return int(math.ceil(self.mixture_params() * m)) + (0 if self._single else 2 * m)

    @property
    def _single(self) -> bool:
        return bool(self.params is not None and self.params["step_free"] > 0)

    def _check(self, table: ObservationTable) -> None:
        table.require(law=self.name, min_runs=4, min_mixtures=4, why="the penalty is chosen by leave-one-out over runs")
        step_mode(self.name, table)

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        single = step_mode(self.name, table) == "single"
        names = table.run_names
        index = {n: i for i, n in enumerate(names)}
        run_idx = np.array([index[r] for r in table.runs.tolist()])
        n_runs, m = len(names), len(table.eval_domains)
        y_all = np.log(table.L)
        x = np.log(table.steps / float(table.steps.max()))
        lb, beta = np.full(m, LB_MIN), np.zeros(m)
        levels = np.zeros((n_runs, m))
        counts = np.bincount(run_idx, minlength=n_runs).astype(float)
        if single:
            notes.append(f"one distinct step ({table.steps[0]:g}): no step factor (b = 0); predictions ignore the step")
        for j in range(m):
            if not single:
                lb[j], beta[j] = fit_step_factor(y_all[:, j], x, run_idx, n_runs)
            e = y_all[:, j] - (0.0 if single else np.log1p(np.exp(lb[j] - beta[j] * x)))
            levels[:, j] = np.bincount(run_idx, e, minlength=n_runs) / counts
        # each run's mixture (its first row's: a run's rows share one), identical mixtures merged
        first = np.array([np.flatnonzero(run_idx == i)[0] for i in range(n_runs)])
        Wr = table.W[first]
        key, inverse, mult = np.unique(np.round(Wr, 9), axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        U = np.zeros((key.shape[0], Wr.shape[1]))
        U[inverse] = Wr
        Y = np.zeros((key.shape[0], m))
        np.add.at(Y, inverse, levels)
        Y /= mult[:, None]
        self.params = {"lb": lb, "beta": beta, "s_ref": np.array(float(table.steps.max())),
                       "step_free": np.array(float(single))}
        self._fit_mixture(U, Y, mult.astype(float), n_runs, notes)

    def _step_log_factor(self, steps: np.ndarray) -> np.ndarray:
        p = self.params
        if self._single:
            return np.zeros((steps.shape[0], p["lb"].shape[0]))
        x = np.log(steps / float(p["s_ref"]))[:, None]
        return np.log1p(np.exp(p["lb"][None] - p["beta"][None] * x))

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return np.exp(self._mixture(W) + self._step_log_factor(steps))

    def _fit_mixture(self, U, Y, counts, n_runs, notes) -> None:
        raise NotImplementedError

    def _mixture(self, W: np.ndarray) -> np.ndarray:
        raise NotImplementedError


_LAST: list = [None, None, None]  # (W, eps, features) of the last call: bootstrap refits score one pool B times


def ridge_features(W: np.ndarray, eps: float) -> np.ndarray:
    """[n, 2k + k(k-1)/2]: w, log(w + eps), w_j w_l for j < l. The last result is kept (by identity of W,
    which the cache holds, so the id cannot be reused): laws/optim/sampled.py scores one pool with every refit."""
    if _LAST[0] is W and _LAST[1] == eps:
        return _LAST[2]
    k = W.shape[1]
    j, l = np.triu_indices(k, 1)
    Z = np.concatenate([W, np.log(W + eps), W[:, j] * W[:, l]], axis=1)
    if W.shape[0] >= 1000:
        _LAST[:] = [W, eps, Z]
    return Z


@register_law(order=50)
class RidgeLaw(SurrogateLaw):
    name = "ridge"
    formula = ("log L_i = a_i + sum_f c_if z_f(r) + log(1 + b_i s^-beta_i),  z = std[r_j, log(r_j+eps), r_j r_l]; "
               "penalty by leave-one-mixture-out")
    defaults = {"eps": 1e-3}

    def mixture_params(self) -> float:
        if self.params is None or "dof" not in self.params:
            return 1.0
        return float(np.max(self.params["dof"]))

    def _fit_mixture(self, U, Y, counts, n_runs, notes) -> None:
        Z = ridge_features(U, float(self.config["eps"]))
        sw = counts / counts.sum()
        mean = sw @ Z
        sd = np.sqrt(sw @ (Z - mean) ** 2)
        sd[sd < 1e-12] = 1.0
        Xs = (Z - mean) / sd
        ymean = sw @ Y
        q = np.sqrt(counts)
        # weighted, centred system: rows scaled by sqrt(count); hat diag for exact leave-one-mixture-out
        Uu, s, Vt = np.linalg.svd(Xs * q[:, None], full_matrices=False)
        coef = np.zeros((Z.shape[1], Y.shape[1]))
        alpha_out, dof_out = np.zeros(Y.shape[1]), np.zeros(Y.shape[1])
        lever0 = counts / counts.sum()  # the intercept's share of the hat diagonal
        for j in range(Y.shape[1]):
            yc = (Y[:, j] - ymean[j]) * q
            uty = Uu.T @ yc
            best = None
            for a in ALPHAS[::-1]:  # from the strongest penalty: the weakest with dof <= n_runs - 1 is the last
                f = s**2 / (s**2 + a)
                dof = 1.0 + float(f.sum())
                if dof > n_runs - 1 and best is not None:
                    break
                fitted = Uu @ (f * uty)
                h = lever0 + (Uu**2) @ f
                r = (yc - fitted) / q / np.maximum(1.0 - h, 1e-6)
                score = float(counts @ r**2)
                if best is None or score < best[0]:
                    best = (score, a, f, dof)
            _, a, f, dof = best
            coef[:, j] = Vt.T @ (f / np.where(s > 0, s, 1.0) * uty)
            alpha_out[j], dof_out[j] = a, dof
        self.params.update({"z_lo": Xs.min(axis=0), "z_hi": Xs.max(axis=0), "z_mean": mean, "z_sd": sd, "coef": coef, "intercept": ymean, "alpha": alpha_out,
                            "dof": dof_out})
        notes.append(f"ridge penalty per eval domain (leave-one-mixture-out): {np.round(alpha_out, 4).tolist()}; "
                     f"effective degrees of freedom up to {dof_out.max():.1f} for {n_runs} runs")

    def _mixture(self, W: np.ndarray) -> np.ndarray:
        p = self.params
        Xs = (ridge_features(W, float(self.config["eps"])) - p["z_mean"][None]) / p["z_sd"][None]
        if "z_lo" in p:  # no extrapolation of a feature beyond the runs' range: flat outside, like trees
            Xs = np.clip(Xs, p["z_lo"][None], p["z_hi"][None])
        return p["intercept"][None] + Xs @ p["coef"]
