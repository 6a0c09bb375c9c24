"""Mixture weights: the one place where a `dict[domain, float]` is validated and normalised.

Every strategy, the sampler, the law optimiser and the CLI pass weights through
`normalize_weights`, so a bad mixture fails early with a message naming the domain.
Pure Python: no torch, no Lightning, no Hydra.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence


def normalize_weights(
    weights: Mapping[str, float], domains: Sequence[str] | None = None, *, what: str = "weights"
) -> dict[str, float]:
    """Validate `weights` against `domains` and return them normalised to sum 1, in `domains` order.

    Raises ValueError naming the offending domain and value for: an unknown or missing domain,
    a value that is not a real number (strings and bools included), not finite, or negative,
    or weights that are all zero. Any finite magnitude is accepted (1e308 included).
    """
    if not isinstance(weights, Mapping) or len(weights) == 0:
        raise ValueError(f"{what} must be a non-empty mapping domain -> weight, got {weights!r}")
    names = list(domains) if domains is not None else list(weights)
    known = set(names)  # set lookups: O(N) for N domains, not O(N^2)
    if len(known) != len(weights) or not all(d in known for d in weights):
        unknown = [d for d in weights if d not in known]
        if unknown:
            raise ValueError(
                f"{what}: unknown domain(s) {unknown}; the prepared domains are {names}. "
                "Fix the domain name or prepare that domain first."
            )
        missing = [d for d in names if d not in weights]
        raise ValueError(
            f"{what}: no weight for domain(s) {missing}; give every domain a weight "
            f"(0.0 to leave one out). Domains: {names}"
        )
    values: dict[str, float] = {}
    for d in names:
        raw = weights[d]
        # float() would take "0.5" and True: a string or bool weight is a config mistake, not a number
        if raw.__class__ is not float and (isinstance(raw, (bool, str, bytes)) or not isinstance(raw, numbers.Real)):
            raise ValueError(
                f"{what}: weight of domain {d!r} is not a number: {raw!r} ({type(raw).__name__}); give a float"
            )
        try:
            v = float(raw)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{what}: weight of domain {d!r} is not a finite number: {raw!r}") from None
        if not (0.0 <= v < math.inf):  # one comparison for the common case; nan fails it too
            if not math.isfinite(v):
                raise ValueError(f"{what}: weight of domain {d!r} is {v} (must be finite)")
            raise ValueError(f"{what}: weight of domain {d!r} is negative ({v}); weights must be >= 0")
        values[d] = v
    # divide by the largest first: the sum of finite weights near 1e308 would overflow
    largest = max(values.values())
    if largest <= 0:
        raise ValueError(f"{what}: all weights are zero; at least one domain needs a positive weight")
    scaled = {d: v / largest for d, v in values.items()}
    total = math.fsum(scaled.values())
    return {d: v / total for d, v in scaled.items()}


def format_weights(weights: Mapping[str, float], digits: int = 4) -> str:
    """One-line human form, e.g. 'code=0.5000 prose=0.5000' (for logs and errors)."""
    return " ".join(f"{d}={w:.{digits}f}" for d, w in weights.items())
