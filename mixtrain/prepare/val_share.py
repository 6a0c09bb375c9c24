"""A warning when a domain gives more than a tenth of its tokens to validation.

Place in the flow: prepare/pipeline.py calls `val_share_warning(domain, stats)` after each domain's shards
are written (prepare/shards.py decides the split). The rule (shards.py `_split`): a domain's validation
split takes documents until it holds max(shards.min_val_tokens, shards.val_fraction * tokens) tokens,
at most shards.max_val_tokens and half the domain. On a small domain the floor `min_val_tokens`
(16,384) can take up to half of it away from training; the warning says so and names the keys.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

MAX_VAL_SHARE = 0.10  # above this share of a domain's tokens in validation, prepare warns


def val_share_warning(domain: str, stats: Mapping[str, Any], max_share: float = MAX_VAL_SHARE) -> str | None:
    """The warning line for `domain` (its stats.json) when validation holds over `max_share` of its tokens."""
    val, total = int(stats.get("num_val_tokens", 0)), int(stats.get("num_tokens", 0))
    if total <= 0 or val / total <= max_share:
        return None
    return (f"[prepare] warning: {domain}: validation holds {val:,} of its {total:,} tokens ({val / total:.0%}), "
            f"leaving {int(stats.get('num_train_tokens', total - val)):,} for training: the split takes "
            "max(shards.min_val_tokens, shards.val_fraction x tokens), at most shards.max_val_tokens and half "
            "the domain; lower shards.min_val_tokens (e.g. shards.min_val_tokens=2048) to train on more of it")


def warn_val_share(domain: str, stats: Mapping[str, Any]) -> None:
    """Print `val_share_warning` on stderr when there is one."""
    line = val_share_warning(domain, stats)
    if line:
        print(line, file=sys.stderr, flush=True)
