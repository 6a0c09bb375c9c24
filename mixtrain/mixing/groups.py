"""Domain groups: which domains a glob or prefix names, and how a group's weight is shared out.

Place in the flow: conf `mixing.groups` (patterns) + the run's domains -> **groups.py** ->
grouped.py runs any strategy over the groups and expands its group weights to the sampler's
per-domain weights. Pure: no torch, Lightning or Hydra.

A pattern with a glob character (`*`, `?`, `[`) is matched with fnmatch (`web_*`, `*/en`); any
other pattern is a prefix (`web` names `web_en`, `web_de`, ... and `web` itself). Every domain
must fall in exactly one group: a domain named by two patterns, or by none, is an error naming
it (add a catch-all `*` group for "everything else" -- a domain named by `*` and by a more
specific pattern belongs to the specific one).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence

GLOB_CHARS = "*?["
CATCH_ALL = "*"


def _matches(pattern: str, domain: str) -> bool:
    if any(c in pattern for c in GLOB_CHARS):
        return fnmatch.fnmatchcase(domain, pattern)
    return domain.startswith(pattern)


def resolve_groups(patterns: Sequence[str], domains: Sequence[str]) -> dict[str, list[str]]:
    """{pattern: its domains, in the run's domain order}; every domain in exactly one group."""
    patterns = [str(p) for p in patterns]
    if not patterns:
        raise ValueError("mixing.groups is empty; give group patterns (e.g. [web_*, code_*, '*']) or null")
    if len(set(patterns)) != len(patterns):
        raise ValueError(f"mixing.groups lists a pattern twice: {patterns}")
    groups: dict[str, list[str]] = {p: [] for p in patterns}
    specific = [p for p in patterns if p != CATCH_ALL]
    unmatched = []
    for d in domains:
        hits = [p for p in specific if _matches(p, d)]
        if len(hits) > 1:
            raise ValueError(f"mixing.groups: domain {d!r} is named by {hits}; make the patterns disjoint")
        if hits:
            groups[hits[0]].append(d)
        elif CATCH_ALL in groups:
            groups[CATCH_ALL].append(d)
        else:
            unmatched.append(d)
    if unmatched:
        shown = unmatched[:10] + (["..."] if len(unmatched) > 10 else [])
        raise ValueError(f"mixing.groups: {len(unmatched)} domain(s) in no group: {shown}; add a pattern for them "
                         f"or a catch-all '{CATCH_ALL}' group")
    empty = [p for p, members in groups.items() if not members]
    if empty:
        raise ValueError(f"mixing.groups: pattern(s) {empty} name no domain of this data_dir; fix or drop them")
    return groups


def expand(group_weights: Mapping[str, float], groups: Mapping[str, Sequence[str]],
           within: Mapping[str, float]) -> dict[str, float]:
    """Per-domain weights: each group's weight split among its domains in proportion to `within`
    (a group whose `within` values are all zero splits evenly). Returned in the groups' domain order."""
    out: dict[str, float] = {}
    for g, members in groups.items():
        shares = [max(float(within[d]), 0.0) for d in members]
        total = math.fsum(shares)
        w = float(group_weights[g])
        for d, s in zip(members, shares):
            out[d] = w * (s / total if total > 0 else 1.0 / len(members))
    return out


def group_sums(values: Mapping[str, float], groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Additive per-domain values (weights, tokens) per group."""
    return {g: math.fsum(float(values[d]) for d in members) for g, members in groups.items()}


def group_means(values: Mapping[str, float], groups: Mapping[str, Sequence[str]],
                shares: Mapping[str, float]) -> dict[str, float]:
    """Per-domain means (losses) per group, weighted by `shares` over the members with a finite value
    (nan: no member has one; equal weights if their shares are all zero)."""
    out = {}
    for g, members in groups.items():
        finite = [d for d in members if math.isfinite(float(values.get(d, math.nan)))]
        if not finite:
            out[g] = math.nan
            continue
        w = [max(float(shares.get(d, 0.0)), 0.0) for d in finite]
        if math.fsum(w) <= 0:
            w = [1.0] * len(finite)
        out[g] = math.fsum(wi * float(values[d]) for wi, d in zip(w, finite)) / math.fsum(w)
    return out
