"""Optimisation inside the data's support: per-domain bounds from the observed weights and a
trust region around the observed mixtures, and the report of where the optimum landed.

Place in the flow: a law fitted on a table remembers the table's distinct mixtures
(`law.observed_mixtures`, saved in law.json); laws/optim/slsqp.py `solve` calls `solve_in_support` here.
Pure: numpy + scipy.

Why: a law is evidence only near the mixtures it was fitted on. Without limits the optimiser
exploits extrapolation (public proxy data, 512 runs of 17 domains: `exp` put 0.72 on a domain
whose largest observed weight was 0.055 and zeroed 9 domains). Two limits, both on by default:

* support box: domain d stays in [max(0, min_obs_d - margin), min(1, max_obs_d + margin)]
  (absolute weight `support_margin`, default 0.05). A user floor/cap overrides it where they
  conflict (an epoch cap below the support is the user's call).
* trust region: total-variation ball TV(r, m) = 0.5 * sum |r - m| <= `trust_radius` (default
  0.25) around ANY observed mixture m (the union of balls), not around the centroid. TV rather
  than KL: TV is bounded (0..1), reads as "the share of the mixture that moves", and is finite
  when a proxy or the optimum has a zero weight, where KL(r||m) is infinite or says nothing. Around
  any proxy rather than the mean one: the law's error grows with the distance to the nearest
  data, and proxies of a sweep spread in every direction. The union is not convex, so every ball
  is a convex subproblem (TV linearised with slack variables t >= |r - m|, SLSQP) solved from
  the ball's centre and one seeded random point inside it; the best objective wins. Balls
  solved: the `TRUST_CENTRES` observed mixtures with the lowest predicted objective plus the one
  nearest to the box-only optimum (if that optimum is already inside a ball it is the answer).
  An observed mixture outside the user's floors/caps is first projected onto them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

DEFAULT_SUPPORT_MARGIN = 0.05
DEFAULT_TRUST_RADIUS = 0.25
TRUST_CENTRES = 8
TOL = 1e-6


def tv_distance(r: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Total-variation distance 0.5 * sum |r - m| of mixture r [k] to every row of M [n, k]."""
    return 0.5 * np.abs(np.asarray(M, float) - np.asarray(r, float)[None]).sum(axis=1)


def distinct_mixtures(W: np.ndarray, runs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Distinct rows of W (rounded to 1e-9) in order of first appearance, and the first run of each."""
    _, first = np.unique(np.round(W, 9), axis=0, return_index=True)
    first = np.sort(first)
    return np.asarray(W[first], dtype=float), [str(runs[i]) for i in first]


@dataclass(frozen=True)
class Optimum:
    """A law's optimum and where it lies relative to the data (laws/optim/slsqp.py `solve`)."""

    weights: dict[str, float]
    objective: float  # predicted importance-weighted mean loss at the target step
    tv_to_nearest: float | None  # TV distance to the nearest observed mixture (None: law has none)
    nearest_run: str | None  # a run with that mixture
    active: list[str] = field(default_factory=list)  # binding constraints, e.g. "code >= 0.02 (support)"
    support_margin: float | None = None
    trust_radius: float | None = None
    unconstrained_tv: float | None = None  # TV of the box-only optimum to the nearest observed mixture

    def lines(self) -> list[str]:
        """Human-readable report (CLI output and weights.yaml comments)."""
        margin = "off" if self.support_margin is None else f"{self.support_margin:g}"
        radius = "off" if self.trust_radius is None else f"TV <= {self.trust_radius:g}"
        out = [f"support box margin: {margin}; trust region: {radius}; predicted mean loss {self.objective:.4f}"]
        if self.tv_to_nearest is not None:
            out.append(f"TV to the nearest observed mixture: {self.tv_to_nearest:.4f} (run {self.nearest_run})")
        if self.unconstrained_tv is not None:
            out.append(f"without the trust region the optimum would lie at TV {self.unconstrained_tv:.4f} from the data")
        out.append("active constraints: " + (", ".join(self.active) if self.active else "none"))
        return out


def support_box(M: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """[max(0, min_obs - margin), min(1, max_obs + margin)] per domain."""
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"support_margin must be finite and >= 0 (or None to switch the support box off), got {margin}")
    return np.maximum(0.0, M.min(axis=0) - margin), np.minimum(1.0, M.max(axis=0) + margin)


def combine_bounds(ulo, uhi, slo, shi) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intersect user and support bounds; user bounds win a conflict. Returns lo, hi and their sources."""
    lo, hi = np.maximum(ulo, slo), np.minimum(uhi, shi)
    lo_src = np.where(slo > ulo, "support", "floor").astype(object)
    hi_src = np.where(shi < uhi, "support", "cap").astype(object)
    # a user floor above the support or a cap below it (an epoch cap): that domain keeps the user's bounds
    conflict = lo > hi
    lo, hi = np.where(conflict, ulo, lo), np.where(conflict, uhi, hi)
    lo_src[conflict], hi_src[conflict] = "floor", "cap"
    # the support box must still hold a mixture; if not, widen it back towards the user bounds
    if lo.sum() > 1.0 + 1e-12:
        lo, lo_src = ulo.copy(), np.full(lo.shape, "floor", dtype=object)
    if hi.sum() < 1.0 - 1e-12:
        hi, hi_src = uhi.copy(), np.full(hi.shape, "cap", dtype=object)
    return lo, hi, lo_src, hi_src


def _ball_problem(fg, c, lo, hi, radius, x0):
    """min f(r) s.t. lo <= r <= hi, sum r = 1, TV(r, c) <= radius; variables z = [r, t], t >= |r - c|."""
    k = c.shape[0]
    eye = np.eye(k)
    cons = [
        {"type": "eq", "fun": lambda z: z[:k].sum() - 1.0, "jac": lambda z: np.r_[np.ones(k), np.zeros(k)]},
        {"type": "ineq", "fun": lambda z: z[k:] - (z[:k] - c), "jac": lambda z: np.hstack([-eye, eye])},
        {"type": "ineq", "fun": lambda z: z[k:] + (z[:k] - c), "jac": lambda z: np.hstack([eye, eye])},
        {"type": "ineq", "fun": lambda z: 2.0 * radius - z[k:].sum(), "jac": lambda z: np.r_[np.zeros(k), -np.ones(k)]},
    ]

    def f(z):
        v, g = fg(z[:k])
        return v, np.r_[g, np.zeros(k)]

    z0 = np.r_[x0, np.abs(x0 - c)]
    res = minimize(f, z0, jac=True, method="SLSQP", bounds=list(zip(lo, hi)) + [(0.0, 1.0)] * k,
                   constraints=cons, options={"maxiter": 300, "ftol": 1e-12})
    return res.x[:k] if np.all(np.isfinite(res.x)) else None


def solve_in_support(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    box_optimum: Callable[[np.ndarray, np.ndarray], np.ndarray],
    project: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    M: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    radius: float | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Best r in the box (and, if `radius`, in the union of TV balls); returns (r, box-only optimum)."""
    free = project(np.asarray(box_optimum(lo, hi), float), lo, hi)
    if radius is None:
        return free, free
    if not math.isfinite(radius) or radius <= 0:
        raise ValueError(f"trust_radius must be finite and > 0 (or None to switch the trust region off), got {radius}")
    centres = np.array([project(m, lo, hi) for m in M])
    if tv_distance(free, centres).min() <= radius + TOL:
        return free, free
    vals = np.array([fg(c)[0] for c in centres])
    chosen = list(np.argsort(vals)[:TRUST_CENTRES])
    near = int(np.argmin(tv_distance(free, centres)))
    if near not in chosen:
        chosen.append(near)
    best, best_f = centres[chosen[0]], float(vals[chosen[0]])
    k = M.shape[1]
    for i in chosen:
        c = centres[i]
        d = project(rng.dirichlet(np.ones(k)), lo, hi)
        t = min(1.0, radius / max(float(tv_distance(d, c[None])[0]), 1e-12))
        for x0 in (c, (1 - t) * c + t * d):
            x = _ball_problem(fg, c, lo, hi, radius, x0)
            if x is None:
                continue
            x = project(x, lo, hi)
            if tv_distance(x, c[None])[0] > radius + 1e-5:  # SLSQP stopped outside the ball: not feasible
                continue
            v = fg(x)[0]
            if v < best_f:
                best, best_f = x, v
    return best, free


def active_constraints(r, lo, hi, lo_src, hi_src, domains, trust_tv, radius) -> list[str]:
    """Names of the binding bounds (and the trust region) at r."""
    out = []
    for d, x, a, b, sa, sb in zip(domains, r, lo, hi, lo_src, hi_src):
        if b - a <= TOL:
            out.append(f"{d} = {a:.4g} (fixed by {sa}/{sb})")
        elif x <= a + TOL:
            out.append(f"{d} >= {a:.4g} ({sa})")
        elif x >= b - TOL:
            out.append(f"{d} <= {b:.4g} ({sb})")
    if radius is not None and trust_tv is not None and trust_tv >= radius - 1e-4:
        out.append(f"trust region TV <= {radius:g}")
    return out
