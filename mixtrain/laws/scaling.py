"""A mixture law across model size and training tokens (Shukor et al. 2025, "Scaling Laws for
Optimal Data Mixtures", arXiv 2507.09404), in the paper's additive form:

    L_i(N, D, h) = E_i + 1 / sum_j C_ij h_j^gamma_ij + A_i / N^alpha_i + B_i / D^beta_i

N = model parameters, D = training tokens, h = the domain weights (a point on the simplex),
L_i = validation loss on evaluation domain i. Every evaluation domain has its own 5 + 2k
parameters (k training domains). Why the additive form and not the joint one: docs/scaling.md.

Place in the flow: runs of several model sizes -> collect.py (rows of num_params, num_tokens,
weights, losses) -> **ScalingLaw.fit** -> `predict` at a size and budget nobody trained. It is
fit/predict only. Choosing a mixture from it belongs to the laws' optimiser (laws/base.py). Under
the additive form the optimal mixture does not depend on N or D: the mixture term is the only
one that depends on h. Pure numpy/scipy: no torch, Lightning or Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FORMULA = "L_i = E_i + 1 / sum_j C_ij h_j^gamma_ij + A_i / N^alpha_i + B_i / D^beta_i"
EXPONENT_MAX = {"alpha": 2.0, "beta": 2.0, "gamma": 5.0}
MIN_SIZES = 3  # A_i and alpha_i: two sizes give one difference for two unknowns (likewise D)


class ScalingLaw:
    """The additive law of Shukor et al. 2025, one set of parameters per evaluation domain.

    `fit` uses least squares on log L, with a Huber loss (`huber_delta`, as in Chinchilla-style
    fits) and deterministic multi-starts. N and D are divided by their geometric means over the
    fitting rows (`n_ref`, `d_ref`, kept with the parameters), so that A_i and B_i stay on the
    scale of the losses.
    """

    name = "scaling"
    formula = FORMULA

    def __init__(self, *, huber_delta: float = 1e-3, max_nfev: int = 2000):
        self.huber_delta, self.max_nfev = float(huber_delta), int(max_nfev)
        self.train_domains: tuple[str, ...] = ()
        self.eval_domains: tuple[str, ...] = ()
        self.params: dict[str, dict[str, Any]] | None = None  # eval domain -> {E, A, alpha, B, beta, C, gamma}
        self.n_ref = self.d_ref = float("nan")
        self.report: dict[str, Any] = {}

    # ---- fit ---------------------------------------------------------------------------
    def fit(self, train_domains: Sequence[str], eval_domains: Sequence[str], num_params: Sequence[float],
            num_tokens: Sequence[float], weights: Sequence[Sequence[float]],
            losses: Sequence[Sequence[float]]) -> ScalingLaw:
        """Fit on rows (num_params[r], num_tokens[r], weights[r] over train_domains, losses[r] over
        eval_domains). Raises ValueError naming what is missing: too few model sizes, budgets,
        mixtures or rows for the parameters."""
        N, D, H, L = _check_rows(train_domains, eval_domains, num_params, num_tokens, weights, losses)
        k = H.shape[1]
        self.train_domains, self.eval_domains = tuple(train_domains), tuple(eval_domains)
        self.n_ref, self.d_ref = float(np.exp(np.log(N).mean())), float(np.exp(np.log(D).mean()))
        x = (N / self.n_ref, D / self.d_ref, H)
        params, domains = {}, {}
        for i, d in enumerate(self.eval_domains):
            theta, cost = self._fit_domain(x, L[:, i], k)
            params[d] = _unpack(theta, k)
            pred = _predict(theta, *x, k)
            domains[d] = {"mre": float(np.mean(np.abs(pred - L[:, i]) / L[:, i])), "cost": cost}
        self.params = params
        self.report = {"law": self.name, "formula": self.formula, "rows": int(N.size),
                       "sizes": sorted({float(n) for n in N}), "domains": domains,
                       "mean_mre": float(np.mean([v["mre"] for v in domains.values()]))}
        return self

    def _fit_domain(self, x, y: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        from scipy.optimize import least_squares

        n, dd, h = x
        logy = np.log(y)
        lo = np.array([-30.0, -30.0, 0.0, -30.0, 0.0] + [-30.0] * k + [0.0] * k)
        hi = np.array([30.0, 30.0, EXPONENT_MAX["alpha"], 30.0, EXPONENT_MAX["beta"]] + [30.0] * k
                      + [EXPONENT_MAX["gamma"]] * k)

        def resid(theta):
            pred = _predict(theta, n, dd, h, k)
            return np.log(np.maximum(pred, 1e-300)) - logy

        # starts: each term about a fifth of the mean loss, over a small grid of exponents
        scale = math.log(0.2 * float(y.mean()))
        best, best_cost = None, math.inf
        for alpha, beta, gamma in ((0.3, 0.3, 1.0), (0.6, 0.6, 1.0), (0.3, 0.8, 0.5), (0.8, 0.3, 2.0)):
            theta0 = np.array([math.log(0.5 * float(y.min())), scale, alpha, scale, beta]
                              + [-scale] * k + [gamma] * k)
            res = least_squares(resid, np.clip(theta0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), loss="huber",
                                f_scale=self.huber_delta, max_nfev=self.max_nfev, x_scale="jac")
            if np.all(np.isfinite(res.x)) and res.cost < best_cost:
                best, best_cost = res.x, float(res.cost)
        if best is None:
            raise ValueError(f"{self.name}: every start of the fit failed (non-finite parameters)")
        return best, best_cost

    # ---- predict -----------------------------------------------------------------------
    def predict(self, num_params: Sequence[float] | float, num_tokens: Sequence[float] | float,
                weights: Sequence[Sequence[float]] | Mapping[str, float]) -> np.ndarray:
        """Losses [rows, eval domains] at model sizes, token budgets and mixtures (broadcast: one
        size or budget for every mixture). `weights` may be one {domain: weight} dict."""
        if self.params is None:
            raise ValueError(f"{self.name}: predict before fit (or load)")
        k = len(self.train_domains)
        if isinstance(weights, Mapping):
            missing = [d for d in self.train_domains if d not in weights]
            if missing:
                raise ValueError(f"{self.name}: weights name no {missing}; the law was fitted on {list(self.train_domains)}")
            weights = [[float(weights[d]) for d in self.train_domains]]
        H = np.atleast_2d(np.asarray(weights, dtype=float))
        if H.shape[1] != k:
            raise ValueError(f"{self.name}: weights have {H.shape[1]} columns, the law {k} ({list(self.train_domains)})")
        N, D = np.broadcast_arrays(np.asarray(num_params, dtype=float).reshape(-1),
                                   np.asarray(num_tokens, dtype=float).reshape(-1))
        N, D = (np.broadcast_to(a, (H.shape[0],)) if a.size == 1 else a for a in (N, D))
        if not (N.size == D.size == H.shape[0]) or np.any(N <= 0) or np.any(D <= 0):
            raise ValueError(f"{self.name}: need positive num_params and num_tokens, one per mixture (or one for all)")
        out = [_predict(_pack(self.params[d], k), N / self.n_ref, D / self.d_ref, H, k) for d in self.eval_domains]
        return np.stack(out, axis=1)

    # ---- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if self.params is None:
            raise ValueError(f"{self.name}: nothing to save before fit")
        return {"law": self.name, "formula": self.formula, "train_domains": list(self.train_domains),
                "eval_domains": list(self.eval_domains), "n_ref": self.n_ref, "d_ref": self.d_ref,
                "params": self.params, "report": self.report}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScalingLaw:
        if data.get("law") != cls.name:
            raise ValueError(f"not a {cls.name} law: 'law' is {data.get('law')!r}")
        law = cls()
        law.train_domains, law.eval_domains = tuple(data["train_domains"]), tuple(data["eval_domains"])
        law.n_ref, law.d_ref = float(data["n_ref"]), float(data["d_ref"])
        law.params = {d: dict(p) for d, p in data["params"].items()}
        law.report = dict(data.get("report", {}))
        return law


def _predict(theta: np.ndarray, n: np.ndarray, d: np.ndarray, h: np.ndarray, k: int) -> np.ndarray:
    e, a, alpha, b, beta = theta[:5]
    c, gamma = theta[5:5 + k], theta[5 + k:5 + 2 * k]
    mixture = (np.exp(c)[None, :] * h ** gamma[None, :]).sum(axis=1)
    return math.exp(e) + 1.0 / np.maximum(mixture, 1e-300) + math.exp(a) * n ** -alpha + math.exp(b) * d ** -beta


def _unpack(theta: np.ndarray, k: int) -> dict[str, Any]:
    e, a, alpha, b, beta = (float(v) for v in theta[:5])
    return {"E": math.exp(e), "A": math.exp(a), "alpha": alpha, "B": math.exp(b), "beta": beta,
            "C": [math.exp(float(v)) for v in theta[5:5 + k]], "gamma": [float(v) for v in theta[5 + k:5 + 2 * k]]}


def _pack(p: Mapping[str, Any], k: int) -> np.ndarray:
    return np.array([math.log(p["E"]), math.log(p["A"]), p["alpha"], math.log(p["B"]), p["beta"]]
                    + [math.log(c) for c in p["C"]] + list(p["gamma"]), dtype=float)


def _check_rows(train_domains, eval_domains, num_params, num_tokens, weights, losses):
    N = np.asarray(num_params, dtype=float).reshape(-1)
    D = np.asarray(num_tokens, dtype=float).reshape(-1)
    H = np.asarray(weights, dtype=float)
    L = np.asarray(losses, dtype=float)
    k, m = len(train_domains), len(eval_domains)
    if H.ndim != 2 or H.shape != (N.size, k) or L.shape != (N.size, m) or D.size != N.size:
        raise ValueError(f"scaling: rows disagree: {N.size} num_params, {D.size} num_tokens, weights {H.shape} "
                         f"(want [rows, {k}]), losses {L.shape} (want [rows, {m}])")
    for name, v in (("num_params", N), ("num_tokens", D)):
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"scaling: {name} must be finite and > 0 on every row (row {int(np.argmin(np.isfinite(v) & (v > 0)))})")
    if not (np.all(np.isfinite(H)) and np.all(H >= 0) and np.allclose(H.sum(axis=1), 1.0, atol=1e-6)):
        raise ValueError("scaling: every row's weights must be >= 0 and sum to 1 (normalise them)")
    if not (np.all(np.isfinite(L)) and np.all(L > 0)):
        bad = np.argwhere(~(np.isfinite(L) & (L > 0)))[0]
        raise ValueError(f"scaling: loss of {eval_domains[bad[1]]!r} on row {bad[0]} is {L[bad[0], bad[1]]} (need > 0)")
    for name, v in (("model sizes (num_params)", N), ("token budgets (num_tokens)", D)):
        if np.unique(v).size < MIN_SIZES:
            raise ValueError(f"scaling: {np.unique(v).size} distinct {name}; the law needs >= {MIN_SIZES} "
                             "(two give one difference for a coefficient and an exponent)")
    mixtures = np.unique(np.round(H, 9), axis=0).shape[0]
    if mixtures < 2 * k + 1:
        raise ValueError(f"scaling: {mixtures} distinct mixtures; the mixture term has {2 * k} parameters "
                         f"(C_j, gamma_j over {k} domains): need >= {2 * k + 1}")
    if N.size <= 5 + 2 * k:
        raise ValueError(f"scaling: {N.size} rows for {5 + 2 * k} parameters per evaluation domain; need more rows")
    return N, D, H, L
