"""Repetition at the target budget: how much a domain's repeated tokens are still worth.

Place in the flow: a law fitted on proxy runs (which never repeat a domain) -> `mixtrain.fitting.fit
--optimize --step S` (or `--tokens D`) with the domains' unique token counts (`--data-dir` reads
them from the prepared shards' stats, or `--domain-tokens`) -> **repetition.py** discounts the
repeated tokens of every candidate mixture before the law scores it (the hook in laws/optim/sampled.py's
`propose(repetition=...)`) and reports the epochs each domain would see -> weights.yaml.

Why: a weight w_d at a budget of T tokens asks for w_d * T tokens of domain d. When that exceeds the
domain's U_d unique tokens, the run repeats it for E_d = w_d T / U_d epochs. A law fitted on short
proxies has only ever seen unique tokens, so it credits every repeated token as a new one and
over-recommends small, valuable domains (Sedova et al. 2026, "Scaling Laws for Mixture Pretraining
Under Data Constraints", arXiv 2605.12715).

The math (Muennighoff et al. 2023's effective data, the form that paper's repetition-aware law
builds on): with R = max(E - 1, 0) repetitions beyond the first epoch,

    D' = min(D, U) + U * R_star * (1 - exp(-R / R_star))

so the r-th repetition is worth exp(-r / R_star) of a fresh token, and D' saturates at
U (1 + R_star). R_star = 15.4 (DEFAULT_R_STAR, Muennighoff's fitted decay constant for data):
with it 15 repetitions (16 epochs) still keep 66% of their tokens' value (D'/D) and the marginal
epoch ~38% of a fresh one, which matches the paper's finding that scarce data inside a mixture
keeps most of its value for 15-20 repetitions; beyond that the value flattens out. The paper's own
law additionally models overfitting (loss rising past a repetition frontier); this discount does
not, so it is an optimistic bound on what many more repetitions are worth: hence the warning.

How the law uses it: the law is evaluated at the effective weights w'_d = w_d * D'_d / D_d (the
weight that would have given the same number of effective tokens without repetition). They are not
renormalised: compute spent on repeats is partly wasted, it does not move to other domains. For
own-weight laws (bimix, transfer) this is exactly "fewer fresh tokens of d"; for laws over the whole
simplex (ridge, scaling's mixture term) an unnormalised point is a mild extrapolation.

WARN_EPOCHS = 16 (15 repetitions, the low end of the paper's 15-20): above it a domain is flagged
in the console and weights.yaml. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_R_STAR = 15.4
WARN_EPOCHS = 16.0


def effective_tokens(unique_tokens, num_tokens, r_star: float = DEFAULT_R_STAR) -> np.ndarray:
    """D': the fresh-token equivalent of `num_tokens` drawn from `unique_tokens` (broadcast arrays)."""
    U = np.asarray(unique_tokens, dtype=float)
    D = np.asarray(num_tokens, dtype=float)
    if not r_star > 0:
        raise ValueError(f"r_star must be > 0, got {r_star}")
    with np.errstate(divide="ignore", invalid="ignore"):
        R = np.maximum(np.where(U > 0, D / U, 0.0) - 1.0, 0.0)
    return np.minimum(D, U) + U * r_star * -np.expm1(-R / r_star)


def epochs(W, budget_tokens: float, unique_tokens) -> np.ndarray:
    """[n, k] epochs of each domain: w_d * budget / U_d."""
    return np.asarray(W, dtype=float) * float(budget_tokens) / np.asarray(unique_tokens, dtype=float)


@dataclass(frozen=True)
class Repetition:
    """The target run's budget and the domains' unique tokens (train-domain order of the law)."""

    domains: tuple[str, ...]
    unique_tokens: np.ndarray  # [k]
    budget_tokens: float
    r_star: float = DEFAULT_R_STAR
    warn_epochs: float = WARN_EPOCHS

    @classmethod
    def build(cls, domains: Sequence[str], domain_tokens: Mapping[str, float], budget_tokens: float,
              r_star: float = DEFAULT_R_STAR, warn_epochs: float = WARN_EPOCHS) -> Repetition:
        missing = [d for d in domains if d not in domain_tokens]
        if missing:
            raise ValueError(f"repetition: no unique token count for domain(s) {missing}; give every training domain "
                             "(--domain-tokens d=N,... or --data-dir with the prepared shards' stats)")
        U = np.array([float(domain_tokens[d]) for d in domains])
        bad = [d for d, u in zip(domains, U) if not (np.isfinite(u) and u > 0)]
        if bad:
            raise ValueError(f"repetition: unique token count of {bad} must be finite and > 0")
        if not (np.isfinite(budget_tokens) and budget_tokens > 0):
            raise ValueError(f"repetition: target budget must be finite and > 0 tokens, got {budget_tokens}")
        if not r_star > 0:
            raise ValueError(f"repetition: r_star must be > 0, got {r_star}")
        return cls(tuple(domains), U, float(budget_tokens), float(r_star), float(warn_epochs))

    def factors(self, W) -> np.ndarray:
        """[n, k] D'/D per domain (1 where nothing is repeated or the weight is 0)."""
        W = np.atleast_2d(np.asarray(W, dtype=float))
        D = W * self.budget_tokens
        eff = effective_tokens(self.unique_tokens[None, :], D, self.r_star)
        return np.where(D > 0, eff / np.where(D > 0, D, 1.0), 1.0)

    def effective(self, W) -> np.ndarray:
        """The effective weights w_d * D'_d / D_d (module docstring: not renormalised)."""
        W = np.atleast_2d(np.asarray(W, dtype=float))
        return W * self.factors(W)

    def epochs(self, weights: Mapping[str, float]) -> dict[str, float]:
        e = epochs([[weights[d] for d in self.domains]], self.budget_tokens, self.unique_tokens)[0]
        return dict(zip(self.domains, e.tolist()))

    def over(self, weights: Mapping[str, float]) -> list[str]:
        return [d for d, e in self.epochs(weights).items() if e > self.warn_epochs]

    def lines(self, weights: Mapping[str, float]) -> list[str]:
        """Epochs and value kept per domain at the target budget, and the warning."""
        f = self.factors([[weights[d] for d in self.domains]])[0]
        out = [f"repetition at the target budget of {self.budget_tokens:.4g} tokens (R* {self.r_star:g}; "
               f"warn above {self.warn_epochs:g} epochs):"]
        for (d, e), u, k in zip(self.epochs(weights).items(), self.unique_tokens, f):
            out.append(f"  {d:<16} weight {weights[d]:.4f}  {e:7.2f} epochs of {u:.4g} unique tokens  "
                       f"value kept {100 * k:5.1f}%" + ("  <- WARNING: above the threshold" if e > self.warn_epochs else ""))
        over = self.over(weights)
        if over:
            out.append(f"WARNING: {', '.join(over)} would be repeated more than {self.warn_epochs:g} times; past "
                       "15-20 repetitions scarce data stops paying off and may overfit (arXiv 2605.12715): cap them "
                       "with --max-weight, or add data")
        return out

    def meta(self, weights: Mapping[str, float]) -> dict[str, Any]:
        return {"budget_tokens": self.budget_tokens, "r_star": self.r_star, "warn_epochs": self.warn_epochs,
                "unique_tokens": dict(zip(self.domains, self.unique_tokens.tolist())),
                "epochs": self.epochs(weights), "over_threshold": self.over(weights)}

    def view(self, law: Any) -> RepetitionView:
        return RepetitionView(law, self)


class RepetitionView:
    """A fitted law seen through the discount: `_predict(W, steps)` scores the effective weights;
    everything else is the law's own (table, report, observed mixtures, ...)."""

    def __init__(self, law: Any, repetition: Repetition):
        if tuple(law.train_domains) != repetition.domains:
            raise ValueError(f"repetition: domains {list(repetition.domains)} differ from the law's "
                             f"{list(law.train_domains)}")
        self._law, self._rep = law, repetition

    def _predict(self, W, steps) -> np.ndarray:
        return self._law._predict(self._rep.effective(W), steps)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._law, name)
