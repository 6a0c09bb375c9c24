"""Multiple-comparison correction of the report's paired comparisons (Holm–Bonferroni).

Place in the flow: tables.py (`aggregate_table`: per strategy, the paired differences to the
baselines and their two-sided paired t-test p-values) -> **stats.py** -> report.md (cli.py).
Pure: numpy + scipy.

Why: a report with k strategies compared with 2 baselines on 2 scores makes 4k tests; at 5%
each, some "wins" are expected by chance alone. Holm's step-down procedure controls the
family-wise error rate (the chance of even one false claim) at alpha over the whole family and is
uniformly more powerful than plain Bonferroni. The family here is every strategy-versus-baseline
comparison of the report's strategies table (every non-baseline strategy x baseline x score);
a baseline against the other baseline is a reference point, not a candidate, and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ALPHA = 0.05


def paired_t_pvalue(diffs: Sequence[float]) -> float | None:
    """Two-sided p-value of the one-sample t-test of mean(diffs) = 0; None when undefined
    (fewer than 2 differences, or all equal: sd 0 gives no t statistic)."""
    d = np.asarray([x for x in diffs if x is not None and math.isfinite(float(x))], dtype=float)
    if len(d) < 2 or float(np.ptp(d)) == 0.0:
        return None
    from scipy.stats import ttest_1samp

    return float(ttest_1samp(d, 0.0).pvalue)


def holm(pvalues: Sequence[float | None], alpha: float = ALPHA) -> list[tuple[float | None, bool]]:
    """Holm–Bonferroni over one family: (adjusted p, rejected at alpha) per input, in input order.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))
    (monotone, so 'adjusted p <= alpha' is exactly Holm's step-down decision). None (untestable)
    stays None, is never rejected and does not count in m."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha}: must be in (0, 1)")
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    for i in idx:
        if not 0.0 <= float(pvalues[i]) <= 1.0:
            raise ValueError(f"p-value #{i} = {pvalues[i]}: must be in [0, 1]")
    m = len(idx)
    out: list[tuple[float | None, bool]] = [(None, False)] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: float(pvalues[j]))):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = (running, running <= alpha)
    return out


def comparisons(aggs: Sequence[Mapping[str, Any]], baselines: Sequence[str], scores: Sequence[str],
                alpha: float = ALPHA) -> list[dict[str, Any]]:
    """One dict per (non-baseline strategy variant, baseline, score) with a paired comparison:
    variant, baseline, score, mean, lo, hi, n, p, p_holm, verdict ('win' / 'loss' when Holm rejects,
    with the sign of the mean; 'n.s.' otherwise; 'untested' when p is undefined). Holm runs over
    all of them together: one family, the whole table."""
    rows = []
    for a in aggs:
        if a["strategy"] in baselines:
            continue
        for b in baselines:
            for score in scores:
                ci = ((a.get("paired") or {}).get(b) or {}).get(score)
                if not ci or not ci.get("n"):
                    continue
                rows.append({"variant": a["variant"], "baseline": b, "score": score, "mean": ci["mean"],
                             "lo": ci.get("lo"), "hi": ci.get("hi"), "n": ci["n"], "p": ci.get("p")})
    for row, (p_adj, reject) in zip(rows, holm([r["p"] for r in rows], alpha)):
        row["p_holm"] = p_adj
        row["verdict"] = ("untested" if row["p"] is None else
                          ("win" if row["mean"] < 0 else "loss") if reject else "n.s.")
    return rows


def survivors(rows: Sequence[Mapping[str, Any]], baselines: Sequence[str], score: str) -> list[str]:
    """Variants whose paired difference on `score` is a Holm-surviving win against every baseline,
    i.e. that beat min(baselines) after correction."""
    wins: dict[str, set[str]] = {}
    for r in rows:
        if r["score"] == score and r["verdict"] == "win":
            wins.setdefault(r["variant"], set()).add(r["baseline"])
    return [v for v, bs in wins.items() if set(baselines) <= bs]
