"""Projection onto the box-constrained simplex {lo <= r <= hi, sum r = 1}: the geometry every mixture lives in.

Place in the flow: the lowest layer of the laws stage, below the law interface (laws/base.py), the laws
with a closed-form optimum (laws/bimix.py), the optimisers above them (laws/optim/) and the online
strategy (mixing/online_bimix.py). Pure: numpy + scipy, imports nothing from mixtrain.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

__all__ = ["project_box_simplex", "project_rows"]


def project_box_simplex(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Euclidean projection of x onto {lo <= r <= hi, sum r = 1} (assumed non-empty)."""
    f = lambda mu: float(np.clip(x - mu, lo, hi).sum() - 1.0)  # noqa: E731  decreasing in mu
    a, b = float(np.min(x - hi)) - 1.0, float(np.max(x - lo)) + 1.0
    mu = brentq(f, a, b, xtol=1e-15, rtol=1e-15, maxiter=200)
    return np.clip(x - mu, lo, hi)


def project_rows(X: np.ndarray, lo: np.ndarray, hi: np.ndarray, iters: int = 60) -> np.ndarray:
    """`project_box_simplex` of every row of X [n, k] at once (vectorised bisection on the shift)."""
    a = (X - hi[None]).min(axis=1) - 1.0
    b = (X - lo[None]).max(axis=1) + 1.0
    for _ in range(iters):
        mu = 0.5 * (a + b)
        over = np.clip(X - mu[:, None], lo[None], hi[None]).sum(axis=1) > 1.0
        a, b = np.where(over, mu, a), np.where(over, b, mu)
    R = np.clip(X - (0.5 * (a + b))[:, None], lo[None], hi[None])
    return R / R.sum(axis=1, keepdims=True)
