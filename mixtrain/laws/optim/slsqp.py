"""The gradient optimiser of a fitted law: SLSQP on the simplex inside a support box and a TV trust
region (`solve`, `optimize`, `--optimizer slsqp`, `mixing.optimizer: slsqp`). Not the default:
laws/optim/sampled.py is.

Place in the flow: fitted law (laws/base.py) -> **laws/optim/slsqp.py** -> Optimum -> weights.yaml
(`mixtrain.fitting.fit`) / mixing=law (`mixtrain.mixing.fitted_law`) / the online refit
(`mixtrain.mixing.online_bimix`). The optimiser sits above the laws it optimises: a law knows nothing of it.
A law with a closed-form box optimum (bimix) offers it through its `_optimize` hook; for every other law
(`_optimize` returns None) the box optimum is the generic multi-start SLSQP here (`box_optimum`).
Kept for the closed forms and for comparison (bench/optimiser.py). Measured weakness (issue 19): on real
proxy data every law's optimum sat exactly on the trust-region edge, so the constraint chose the answer,
not the data. Pure: numpy + scipy.

    solve(law, target_step, importance, min_weight, max_weight, support_margin=..., trust_radius=..., seed=0) -> Optimum
    optimize(law, target_step, ...) -> {domain: weight}      # the weights of `solve`
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize

from mixtrain.laws.optim.bounds import check_step, user_bounds
from mixtrain.laws.simplex import project_box_simplex
from mixtrain.laws.support import (
    DEFAULT_SUPPORT_MARGIN, DEFAULT_TRUST_RADIUS, Optimum, active_constraints, combine_bounds, solve_in_support,
    support_box, tv_distance,
)
from mixtrain.weights import normalize_weights

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw

__all__ = ["box_optimum", "law_box_optimum", "optimize", "solve"]


def optimize(law: MixingLaw, target_step: float, importance: Mapping[str, float] | None = None,
             min_weight: float | Mapping[str, float] = 0.0, max_weight: float | Mapping[str, float] | None = None,
             **support: Any) -> dict[str, float]:
    """The weights of `solve(law, ...)` (same arguments)."""
    return solve(law, target_step, importance, min_weight, max_weight, **support).weights


def solve(
    law: MixingLaw,
    target_step: float,
    importance: Mapping[str, float] | None = None,
    min_weight: float | Mapping[str, float] = 0.0,
    max_weight: float | Mapping[str, float] | None = None,
    *,
    support_margin: float | None = DEFAULT_SUPPORT_MARGIN,
    trust_radius: float | None = DEFAULT_TRUST_RADIUS,
    seed: int = 0,
) -> Optimum:
    """Weights minimising sum_i importance_i * L_i(r, target_step) within floors,
    caps, the support box (absolute `support_margin`) and the TV `trust_radius` (laws/support.py)."""
    law._require_fitted()
    check_step(law, target_step)
    w = law.importance_vector(importance)
    ulo, uhi = user_bounds(law, min_weight, max_weight)
    M = law.observed_mixtures
    if (support_margin is not None or trust_radius is not None) and M is None:
        raise ValueError(
            f"{law.name}: this law carries no observed mixtures (a law.json written before they were saved, "
            "or parameters set by hand), so the optimum cannot be kept inside the data's support. Refit it "
            "with `python -m mixtrain.fitting.fit --table T.csv`, or opt out with support_margin=None and "
            "trust_radius=None (--support-margin none --trust-radius none)."
        )
    k = len(law.train_domains)
    if support_margin is not None:
        slo, shi = support_box(M, float(support_margin))
    else:
        slo, shi = np.zeros(k), np.ones(k)
    lo, hi, lo_src, hi_src = combine_bounds(ulo, uhi, slo, shi)
    rng = np.random.default_rng(seed)

    def fg(r):
        L, J = law._predict_grad(np.clip(r, 0, None), float(target_step))
        return float(L @ w), J.T @ w

    r, free = solve_in_support(
        fg, lambda a, b: law_box_optimum(law, float(target_step), w, a, b, rng=rng), project_box_simplex,
        M if M is not None else np.empty((0, k)), lo, hi, None if trust_radius is None else float(trust_radius), rng,
    )
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{law.name}: optimisation produced non-finite weights {r}")
    r = project_box_simplex(np.asarray(r, dtype=float), lo, hi)
    weights = normalize_weights(dict(zip(law.train_domains, r.tolist())), law.train_domains, what=f"{law.name} optimum")
    tv = near = free_tv = trust_tv = None
    if M is not None and len(M):
        d = tv_distance(r, M)
        near = int(np.argmin(d))
        tv = float(d[near])
        free_tv = float(tv_distance(free, M).min())
        trust_tv = float(tv_distance(r, np.array([project_box_simplex(m, lo, hi) for m in M])).min())
    return Optimum(
        weights=weights, objective=fg(r)[0], tv_to_nearest=tv,
        nearest_run=None if near is None else law.observed_runs[near],
        active=active_constraints(r, lo, hi, lo_src, hi_src, law.train_domains, trust_tv,
                                  None if trust_radius is None else float(trust_radius)),
        support_margin=support_margin, trust_radius=trust_radius,
        unconstrained_tv=free_tv if trust_radius is not None and free_tv is not None and free_tv > tv + 1e-6 else None,
    )


def law_box_optimum(law: MixingLaw, step: float, w: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    *, rng: np.random.Generator) -> np.ndarray:
    """The box optimum of `law`: its closed form (`law._optimize`) where it has one, else `box_optimum`."""
    closed = law._optimize(step, w, lo, hi, rng=rng)
    return box_optimum(law, step, w, lo, hi, rng=rng) if closed is None else closed


def box_optimum(law: MixingLaw, step: float, w: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                *, rng: np.random.Generator, **_: Any) -> np.ndarray:
    """The generic box optimum (laws without a closed form): SLSQP on {lo <= r <= hi, sum r = 1} from several starts, best wins.

    Starts: uniform, 4 Dirichlet draws from `rng` (seeded by the caller), and the 3 observed
    mixtures with the lowest objective (projected into the box).
    """
    k = len(law.train_domains)
    if np.allclose(lo, hi):
        return lo.copy()

    def fg(r):
        L, J = law._predict_grad(np.clip(r, 0, None), step)
        return float(L @ w), J.T @ w

    starts = [project_box_simplex(np.full(k, 1.0 / k), lo, hi)]
    starts += [project_box_simplex(rng.dirichlet(np.ones(k)), lo, hi) for _ in range(4)]
    obs = law.observed_mixtures
    if obs is not None and len(obs):
        proj = [project_box_simplex(m, lo, hi) for m in obs]
        vals = [fg(m)[0] for m in proj]
        starts += [proj[i] for i in np.argsort(vals)[:3]]
    best, best_f = None, math.inf
    for x0 in starts:
        res = minimize(
            fg, x0, jac=True, method="SLSQP", bounds=list(zip(lo, hi)),
            constraints=[{"type": "eq", "fun": lambda r: r.sum() - 1.0, "jac": lambda r: np.ones_like(r)}],
            options={"maxiter": 500, "ftol": 1e-12},
        )
        x = project_box_simplex(res.x, lo, hi) if np.all(np.isfinite(res.x)) else x0
        f = fg(x)[0]
        if f < best_f:
            best, best_f = x, f
    return best
