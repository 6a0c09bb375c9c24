"""The target loss: what a run is scored on when the user says which domains matter.

Place in the flow: conf `target.importance` -> train/run.py -> **target.py** -> module.py logs
`val/target` (metrics.csv, summary.json) -> report/ compares strategies on it.

`val/target` = sum_d importance_d * val/<d>/loss over the importance's domains (normalised to sum
1). The domains may be training domains or eval-only ones (`eval_only_domains`); a domain not
named gets importance 0. Default (no importance): the unweighted mean of the training domains,
i.e. `val/loss`. Pure (no torch import; `target_loss` also runs on tensors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixtrain.weights import normalize_weights


def target_importance(importance: Mapping[str, float] | None, train_domains: Sequence[str],
                      val_domains: Sequence[str]) -> dict[str, float]:
    """{domain: importance} summing to 1 over the named domains (default: training domains equally)."""
    if not importance:
        return {d: 1.0 / len(train_domains) for d in train_domains}
    unknown = [d for d in importance if d not in val_domains]
    if unknown:
        raise ValueError(
            f"target.importance: {unknown[0]!r} is not a validated domain (training: {list(train_domains)}, "
            f"eval-only: {[d for d in val_domains if d not in train_domains]}); name one of these "
            "or add it to eval_only_domains"
        )
    named = [d for d in val_domains if d in importance]
    return normalize_weights({d: float(importance[d]) for d in named}, named, what="target.importance")


def target_loss(losses: Mapping[str, Any], importance: Mapping[str, float]) -> Any:
    """Importance-weighted mean loss, or None if a domain with importance > 0 has no loss.

    Only + and * on the losses, so the one definition serves floats (reports, tests) and the
    module's 0-d loss tensors alike (module.py logs the result as `val/target`); the result has
    the losses' type.
    """
    named = [(d, w) for d, w in importance.items() if w > 0]
    if any(losses.get(d) is None for d, _ in named):
        return None
    total = None
    for d, w in named:
        total = w * losses[d] if total is None else total + w * losses[d]
    return 0.0 if total is None else total
