"""Steps 2 and 4 of the sampled optimiser: bootstrap refits of the law score the candidate pool (the
proposal is the best in expectation over the refits, or RegMix's top-k average when that is lower), and
the intervals of the report (each mixture's predicted loss, and proposal - uniform, paired over refits,
optionally widened by the law's cross-validated error).

Place in the flow: candidates.py (the pool) -> **scoring** (bootstrap.py refits the law) -> decision.py
-> Proposal. Pure: numpy (+ the laws' own fits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixtrain.laws.optim.bootstrap import bootstrap_laws
from mixtrain.laws.optim.candidates import Problem
from mixtrain.laws.optim.proposal import ProposalSettings

__all__ = ["Scores", "score_pool"]


@dataclass
class Scores:
    """The scored pool: columns of P are the pool's candidates, then the comparators (then the top-k average)."""

    P: np.ndarray  # [n_pool + comparators (+ 1), k] scored mixtures
    S: np.ndarray | None  # [B, |P|] loss of every column under each refit (None without refits)
    full: np.ndarray  # [|P|] loss under the full-data fit
    n_pool: int  # candidates in the pool (the comparators' columns follow)
    refits: list[Any]  # the law's bootstrap refits (seen through the repetition view)
    best: int  # column of the proposal
    r: np.ndarray  # [k] the proposal
    q: tuple[float, float] = (0.025, 0.975)  # interval quantiles
    sigma: float = 0.0  # sd of the law's own error in a difference of mean losses (model_error)
    z: np.ndarray | None = None  # standard normal draws that carry sigma into the intervals

    def interval(self, col: int) -> tuple[float, float, float]:
        """(full fit, interval lo, hi) of the predicted loss of column `col`."""
        if self.S is None:
            return float(self.full[col]), float("nan"), float("nan")
        lo_, hi_ = np.quantile(self.S[:, col], self.q)
        return float(self.full[col]), float(lo_), float(hi_)

    def diff(self, col: int) -> tuple[float, float, float]:
        """(refits' mean, lo, hi) of column `col` minus uniform, paired over refits (+ the law's error)."""
        dd = self.S[:, col] - self.S[:, self.n_pool]
        aug = (dd[:, None] + self.sigma * self.z[: len(dd)]).ravel()
        return float(dd.mean()), *map(float, np.quantile(aug, self.q))

    def mean(self, col: int) -> float:
        """The loss of column `col` in expectation over the refits (the full fit without refits)."""
        return float(self.S[:, col].mean() if self.S is not None else self.full[col])

    def predicted(self, labels) -> dict[str, tuple[float, float, float]]:
        """{"proposal": interval, comparator label: interval, ...} (the report's table)."""
        out = {"proposal": self.interval(self.best)}
        for i, label in enumerate(labels):
            out[label] = self.interval(self.n_pool + i)
        return out


def score_pool(p: Problem, C: np.ndarray, f0: np.ndarray, s: ProposalSettings) -> Scores:
    """Step 2: refits score the pool (the `refit_pool` best of the full fit, or all); the best in expectation
    wins, unless the mean of the `average_top` best has a lower expectation still."""
    pool_n = s.refit_pool if s.refit_pool is not None else getattr(p.law, "refit_pool", None)
    pool = np.argsort(f0)[: pool_n] if pool_n is not None and pool_n < len(C) else np.arange(len(C))
    P = np.vstack([C[pool], np.array(list(p.comps.values()))])
    n_pool = len(pool)
    refits = [p.viewed(m) for m in bootstrap_laws(p.base_law, s.bootstrap, p.rng)] if s.bootstrap else []
    S = np.array([p.loss(f, P) for f in refits]) if refits else None  # [B, |P|]
    full = p.loss(p.law, P)
    score = S[:, :n_pool].mean(axis=0) if S is not None else full[:n_pool]
    best = int(np.argmin(score))
    r = C[pool[best]]
    if s.average_top > 1:
        # one more candidate: the mean of the `average_top` best in expectation (RegMix's top-k average, which
        # regularises towards the interior); it replaces the best single candidate only if its expectation is lower
        avg = C[pool[np.argsort(score)[:s.average_top]]].mean(axis=0)
        f_avg = p.loss(p.law, avg[None])
        s_avg = np.array([p.loss(f, avg[None]) for f in refits]) if refits else None
        if (s_avg.mean() if s_avg is not None else float(f_avg[0])) < score[best]:
            P, full = np.vstack([P, avg[None]]), np.append(full, f_avg)
            S = np.hstack([S, s_avg]) if S is not None else None
            best, r = len(P) - 1, avg
    # the law's own error, not only its parameters' spread: each refit's difference plus the held-out (CV)
    # error of a mean-loss difference, sqrt(2) x the sd of the CV error of the mean loss (0 without CV)
    cv_sd = p.law.report.get("cv", {}).get("mean_loss_error_sd")
    sigma = float(cv_sd or 0.0) * np.sqrt(2.0) if s.model_error else 0.0
    z = np.random.default_rng(s.seed + 1).standard_normal((max(1, len(refits)), 50))
    return Scores(P, S, full, n_pool, refits, best, r, s.quantiles, sigma, z)
