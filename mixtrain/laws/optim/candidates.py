"""Step 1 and 3 of the sampled optimiser: the problem (the law as scored, the user's bounds and the
relative support, the comparators) and the candidate mixtures drawn inside that support.

Place in the flow: fitted law -> laws/optim/sampled.py `propose` -> **candidates** -> scoring.py
(bootstrap refits score them) -> decision.py -> Proposal. Pure: numpy (+ the law's predictions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixtrain.laws.optim.bounds import check_step, user_bounds
from mixtrain.laws.optim.proposal import STAGE1_SHARE, STAGE2_TOP, ProposalSettings
from mixtrain.laws.simplex import project_rows
from mixtrain.weights import normalize_weights

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw
    from mixtrain.laws.repetition import Repetition

__all__ = ["Problem", "best_observed_run", "dirichlet_around", "min_tv", "problem", "sample_candidates", "support_caps"]


def support_caps(M: np.ndarray, cap: float, floor: float) -> np.ndarray:
    """Per-domain cap: cap x largest observed weight + floor, 0 where the largest is <= floor."""
    if not np.isfinite(cap) or cap < 1 or not np.isfinite(floor) or floor < 0:
        raise ValueError(f"support_cap must be >= 1 and support_floor >= 0, got {cap} and {floor}")
    mx = M.max(axis=0)
    return np.where(mx > floor, np.minimum(1.0, cap * mx + floor), 0.0)


def min_tv(C: np.ndarray, M: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """[n] TV distance of every row of C to its nearest row of M (chunked: n x |M| x k at once is large)."""
    return np.concatenate([0.5 * np.abs(C[i:i + chunk, None, :] - M[None]).sum(axis=2).min(axis=1)
                           for i in range(0, len(C), chunk)]) if len(C) else np.zeros(0)


def dirichlet_around(rng: np.random.Generator, centres: np.ndarray, n: int, concentrations) -> np.ndarray:
    idx = rng.integers(0, centres.shape[0], n)
    conc = np.asarray(concentrations, float)[rng.integers(0, len(concentrations), n)]
    g = rng.standard_gamma(conc[:, None] * centres[idx] + 0.05)
    return g / g.sum(axis=1, keepdims=True)


def best_observed_run(law: MixingLaw, w: np.ndarray) -> tuple[str, np.ndarray, float]:
    t = law.table
    fin = t.final_rows()
    mean = t.L[fin] @ w
    i = int(np.argmin(mean))
    return str(t.runs[fin[i]]), t.W[fin[i]], float(mean[i])


@dataclass
class Problem:
    """One call of `propose`: the law as scored, its bounds and comparators, and the seeded stream."""

    law: Any  # the law as scored: through the repetition view if one is given (laws/repetition.py)
    base_law: MixingLaw  # the law as fitted: the bootstrap refits refit this one
    viewed: Callable[[Any], Any]  # a fitted law -> the law as scored (identity without repetition)
    importance: Mapping[str, float] | None
    step: float
    w: np.ndarray  # [m] eval-domain importance
    ulo: np.ndarray  # the user's floors and caps
    uhi: np.ndarray
    lo: np.ndarray  # the candidates' box: the user's floors, the support caps (user floors win)
    hi: np.ndarray
    comps: dict[str, np.ndarray]  # uniform, natural (if given), the best observed run
    rng: np.random.Generator

    @property
    def domains(self) -> tuple[str, ...]:
        return self.law.train_domains

    def loss(self, fit: Any, X: np.ndarray) -> np.ndarray:
        """[n] importance-weighted predicted loss of the mixtures X [n, k] at the target step under `fit`."""
        return fit._predict(X, np.full(len(X), self.step)) @ self.w

    def feasible(self, v: np.ndarray) -> bool:
        return bool(np.all(v >= self.ulo - 1e-9) and np.all(v <= self.uhi + 1e-9))


def problem(law: MixingLaw, target_step: float, importance: Mapping[str, float] | None, min_weight, max_weight,
            natural: Mapping[str, float] | None, repetition: Repetition | None, s: ProposalSettings) -> Problem:
    """Check the law and settings, build the support (step 3) and the comparators (step 4)."""
    # repetition hook (laws/repetition.py): with the target budget and the domains' unique tokens, every score
    # (candidates, refits, comparators) is the law at the effective weights, repeated tokens discounted
    base_law, viewed = law, (lambda m: m) if repetition is None else repetition.view
    law = viewed(law)
    law._require_fitted()
    check_step(law, target_step)
    if law.table is None or law.observed_mixtures is None:
        raise ValueError(f"{law.name}: the law carries no fitting table (a law.json written by an older mixtrain); "
                         "refit it with `python -m mixtrain.fitting.fit --table T.csv --out law.json`, or use --optimizer slsqp")
    s.check()
    doms = law.train_domains
    k = len(doms)
    w = law.importance_vector(importance)
    rng = np.random.default_rng(s.seed)
    M = law.observed_mixtures
    ulo, uhi = user_bounds(law, min_weight, max_weight)
    hi = np.maximum(np.minimum(uhi, support_caps(M, s.support_cap, s.support_floor)), ulo)  # user floors win
    if hi.sum() < 1.0 - 1e-12:
        raise ValueError(f"{law.name}: the support caps (and --max-weight) sum to {hi.sum():.3f} < 1; "
                         "raise --support-cap or --support-floor")
    # comparators: uniform, natural, best observed run (as they are: baselines, not constrained)
    comps: dict[str, np.ndarray] = {"uniform": np.full(k, 1.0 / k)}
    if natural is not None:
        nat = normalize_weights(dict(natural), doms, what="natural")
        comps["natural"] = np.array([nat[d] for d in doms])
    run, run_w, _ = best_observed_run(law, w)
    comps[f"run {run}"] = run_w
    return Problem(law, base_law, viewed, importance, float(target_step), w, ulo, uhi, ulo, hi, comps, rng)


def sample_candidates(p: Problem, s: ProposalSettings) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: (candidates C [n, k], their loss under the full fit [n]), all inside the support: every
    observed mixture and the comparators, Dirichlet draws around observed mixtures, then around the best."""
    M = p.law.observed_mixtures
    anchors = np.vstack([M, *p.comps.values()])
    n1 = max(1, int(STAGE1_SHARE * s.candidates))
    C1 = project_rows(np.vstack([anchors, dirichlet_around(p.rng, M, n1, (10.0, 30.0, 100.0))]), p.lo, p.hi)
    if s.trust_radius is not None:
        C1 = np.vstack([C1[: len(anchors)], C1[len(anchors):][min_tv(C1[len(anchors):], M) <= s.trust_radius + 1e-9]])
    f1 = p.loss(p.law, C1)
    top = C1[np.argsort(f1)[:STAGE2_TOP]]
    C2 = project_rows(dirichlet_around(p.rng, top, max(0, s.candidates - n1), (30.0, 100.0, 300.0)), p.lo, p.hi)
    if s.trust_radius is not None and len(C2):
        C2 = C2[min_tv(C2, M) <= s.trust_radius + 1e-9]
    C = np.vstack([C1, C2])
    f0 = np.concatenate([f1, p.loss(p.law, C2)]) if len(C2) else f1
    return C, f0
