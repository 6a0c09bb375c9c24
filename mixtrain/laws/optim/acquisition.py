"""Batch acquisition for sequential proxy search: which K mixtures to train next, given the runs so far.

Place in the flow: observation table -> a fitted law (laws/) -> **acquisition** (`next_batch`) over a
candidate pool (a user's pool file, or Dirichlet draws inside the support) -> K mixtures ->
`mixtrain.fitting.search` writes them (`mixtrain proxy --next K`) -> proxy runs -> collect -> again.
Pure numpy (+ the law's own fits); the Gaussian-process rule (BoTorch, torch) lives in
laws/optim/gp_acquisition.py, imported only when asked for.

Rules (`method`):
* `thompson` (default): Thompson sampling over the bootstrap refits the optimiser already makes
  (laws/optim/bootstrap.py): each of the K slots takes one refit of the law on resampled runs and
  picks the pool mixture that refit predicts best. Refits disagree where the runs say little, so
  the batch spreads over the plausible optima: exploration comes from the posterior, not a knob.
* `climb`: CLIMB's rule (Nemotron-CLIMB, step 8): predict every candidate with the full fit, keep the
  top max(K^2, 128), draw K of them uniformly.
* `qei`: q-expected improvement (BoTorch qLogEI) from a GP on the mixture (gp_acquisition.py).
Every rule also spends `explore` (default 1/4, rounded up, at least 1 when K >= 2) of the batch on
learning: the pool mixtures farthest (TV) from every observed and already chosen mixture, so the
table's coverage grows even where no rule expects the optimum. A chosen mixture is never within
`min_separation` TV of an observed run or of another choice (a duplicate teaches nothing).
Which rule is the default was measured (bench/search.py, BENCHMARKS.md "Sequential proxy search").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mixtrain.laws.optim.bootstrap import bootstrap_laws
from mixtrain.laws.optim.candidates import dirichlet_around, min_tv, support_caps
from mixtrain.laws.simplex import project_rows

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw

METHODS = ("thompson", "climb", "qei")
DEFAULT_METHOD = "thompson"
EXPLORE_SHARE = 0.25
MIN_SEPARATION = 0.02  # TV: closer than this to a run or another choice counts as a duplicate

__all__ = ["DEFAULT_METHOD", "METHODS", "Batch", "draw_pool", "next_batch"]


@dataclass
class Batch:
    """The K chosen pool rows (`index` into the pool), why each (`reason`), and each one's predicted mean loss."""

    index: list[int]
    reason: list[str]
    predicted: list[float]
    notes: list[str] = field(default_factory=list)


def draw_pool(law: MixingLaw, n: int, rng: np.random.Generator, *, support_cap: float = 1.5,
              support_floor: float = 0.01) -> np.ndarray:
    """[n, k] candidates inside the support the optimiser uses (laws/optim/candidates.py): Dirichlet draws
    around the observed mixtures at concentrations 3..100 (wider than the optimiser's: search must explore)."""
    M = law.observed_mixtures
    hi = support_caps(M, support_cap, support_floor)
    C = dirichlet_around(rng, M, n, (3.0, 10.0, 30.0, 100.0))
    return project_rows(C, np.zeros(M.shape[1]), hi)


def _mean_loss(law, X: np.ndarray, step: float, w: np.ndarray) -> np.ndarray:
    return law._predict(X, np.full(len(X), step)) @ w


def next_batch(law: MixingLaw, pool: np.ndarray, k: int, *, step: float, method: str = DEFAULT_METHOD,
               importance=None, explore: float = EXPLORE_SHARE, bootstrap: int = 20, seed: int = 0,
               min_separation: float = MIN_SEPARATION, fidelity=None, allowed: np.ndarray | None = None) -> Batch:
    """Choose k rows of `pool` [P, k_domains] to train next (module docstring). `fidelity` (qei only):
    gp_acquisition.Fidelity for a multi-fidelity pool; `allowed` [P] bool: rows that may be chosen at all
    (a pool's rows not yet trained)."""
    if method not in METHODS:
        raise ValueError(f"acquisition method {method!r} unknown; choose one of {', '.join(METHODS)}")
    rng = np.random.default_rng(seed)
    w = law.importance_vector(importance)
    observed = law.table.W[law.table.final_rows()]
    n_explore = 0 if k < 2 else max(1, math.ceil(explore * k))
    n_exploit = k - n_explore
    free = min_tv(pool, observed) >= min_separation if len(observed) else np.ones(len(pool), bool)
    if fidelity is not None:  # other sizes of an observed mixture are new information
        free = np.ones(len(pool), bool)
    if allowed is not None:
        free &= allowed
    f0 = _mean_loss(law, pool, step, w)
    chosen: list[int] = []
    reasons: list[str] = []
    notes: list[str] = []
    if method == "thompson":
        refits = bootstrap_laws(law, max(2, bootstrap), rng)
        order = rng.permutation(len(refits))
        for j in range(n_exploit):
            refit = refits[order[j % len(refits)]]
            cand = _available(pool, free, chosen, min_separation)
            if not cand.size:
                break
            f = _mean_loss(refit, pool[cand], step, w)
            chosen.append(int(cand[np.argmin(f)]))
            reasons.append(f"thompson: best under bootstrap refit {order[j % len(refits)]}")
    elif method == "climb":
        top = np.argsort(f0)[: max(n_exploit ** 2, 128)]
        for i in rng.permutation(top):
            if len(chosen) == n_exploit:
                break
            if _available(pool, free, chosen, min_separation, only=np.array([i])).size:
                chosen.append(int(i))
                reasons.append(f"climb: random pick from the predicted top {len(top)}")
    else:
        from mixtrain.laws.optim.gp_acquisition import qei_batch

        idx, why = qei_batch(law.table, pool, n_exploit, step=step, importance=w, free=free, seed=seed, fidelity=fidelity)
        for i in idx:
            chosen.append(int(i))
            reasons.append(why)
    n_explore = k - len(chosen)  # a rule that ran out of distinct candidates leaves more to exploration
    if fidelity is not None:  # learning is bought at the cheapest size (ADMIRE: cheap runs explore)
        free = free & (fidelity.pool <= fidelity.pool[free].min() + 1e-12) if free.any() else free
    for _ in range(n_explore):
        cand = _available(pool, free, chosen, min_separation)
        if not cand.size:
            break
        ref = np.vstack([observed] + ([pool[chosen]] if chosen else []))
        d = min_tv(pool[cand], ref)
        chosen.append(int(cand[np.argmax(d)]))
        reasons.append(f"explore: farthest from every run and choice (TV {float(d.max()):.3f})")
    if len(chosen) < k:
        notes.append(f"only {len(chosen)} of {k} pool mixtures are at least {min_separation} TV from the runs "
                     "and from each other")
    return Batch(chosen, reasons, [float(f0[i]) for i in chosen], notes)


def _available(pool: np.ndarray, free: np.ndarray, chosen: list[int], sep: float, only: np.ndarray | None = None) -> np.ndarray:
    """Indices (of `only`, default all) that are free and not within `sep` TV of a chosen row."""
    idx = np.flatnonzero(free) if only is None else only[free[only]]
    if chosen and idx.size:
        idx = idx[min_tv(pool[idx], pool[chosen]) >= sep]
    return idx
