"""Mixture weights: the one place where a `dict[domain, float]` is validated and normalised.

Every strategy, the sampler, the law optimiser and the CLI pass weights through
`normalize_weights`, so a bad mixture fails early with a message naming the domain.
Pure Python: no torch, no Lightning, no Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def normalize_weights(
    weights: Mapping[str, float], domains: Sequence[str] | None = None, *, what: str = "weights"
) -> dict[str, float]:
    """Validate `weights` against `domains` and return them normalised to sum 1, in `domains` order.

    Raises ValueError naming the offending domain for: an unknown or missing domain, a value
    that is not a finite number, a negative value, or weights that are all zero.
    """
    if not isinstance(weights, Mapping) or len(weights) == 0:
        raise ValueError(f"{what} must be a non-empty mapping domain -> weight, got {weights!r}")
    names = list(domains) if domains is not None else list(weights)
    unknown = [d for d in weights if d not in names]
    if unknown:
        raise ValueError(
            f"{what}: unknown domain(s) {unknown}; the prepared domains are {names}. "
            "Fix the domain name or prepare that domain first."
        )
    missing = [d for d in names if d not in weights]
    if missing:
        raise ValueError(
            f"{what}: no weight for domain(s) {missing}; give every domain a weight "
            f"(0.0 to leave one out). Domains: {names}"
        )
    values: dict[str, float] = {}
    for d in names:
        raw = weights[d]
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: weight of domain {d!r} is not a number: {raw!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{what}: weight of domain {d!r} is {v} (must be finite)")
        if v < 0:
            raise ValueError(f"{what}: weight of domain {d!r} is negative ({v}); weights must be >= 0")
        values[d] = v
    total = math.fsum(values.values())
    if total <= 0:
        raise ValueError(f"{what}: all weights are zero; at least one domain needs a positive weight")
    return {d: v / total for d, v in values.items()}


def format_weights(weights: Mapping[str, float], digits: int = 4) -> str:
    """One-line human form, e.g. 'code=0.5000 prose=0.5000' (for logs and errors)."""
    return " ".join(f"{d}={w:.{digits}f}" for d, w in weights.items())
