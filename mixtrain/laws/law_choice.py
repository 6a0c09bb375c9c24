"""`law="auto"`: a law choice that does not flip on one lucky fold (issue 32).

Place in the flow: observation table -> every law in `LAWS` fitted and cross-validated
(laws/cross_validation.py) -> **choose_law** -> the chosen fitted law (`fit_law(table, "auto")`,
`mixtrain.fitting.fit --law auto`) with `report["auto"]`. Pure: numpy (+ the laws' own fits).

Why not the former criterion (lowest top-1/top-3 regret of one 5-fold split, ties to the fewest
parameters): over 16 runs the top-1 regret is one noisy draw. It chose lightgbm from 16 runs on a
0.000-vs-0.106 regret and then ranked unseen mixtures worse than bimix; from 512 runs it chose bimix
(fewest parameters among the tied), which ranked a larger size worse than ridge. The rule here:

1. Repeated group k-fold: every candidate is cross-validated under `AUTO_REPEATS` (3) fold seeds
   (seed, seed+1, ...). Per repeat its score is the mean of the normalised decision regret
   (mean of top-1 and top-k regret / the random-pick regret: 0 best, ~1 random) and the rank error
   (1 - Spearman of the predicted vs observed mean loss over held-out runs: 0 best, ~1 random).
   Regret alone is a top-1 event over a handful of runs; the Spearman uses every held-out run.
2. Run-count rule: a flexible law (class attribute `auto_min_runs`, lightgbm: 64) is a candidate
   only from that many runs on; below, the report says why it was skipped.
3. The default law (`DEFAULT_LAW`, ridge: the CLI default) stays unless a challenger beats it in
   *every* repeat and by `AUTO_MARGIN` (0.05) in mean score; among such challengers the lowest mean
   score wins. Without a default (it could not be fitted), the lowest mean score wins.
   Why a default and a margin: a choice that only moves on a clear, repeated difference is stable
   under fold reseeding (BENCHMARKS.md "Law choice"), and ridge is never far from the best law on
   the synthetic worlds and the real tables (issue 32's numbers).
Laws that cannot fit the table or whose CV fails are skipped with the reason; `scaling` is never a
candidate (laws/__init__.py says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.laws.base import MixingLaw
from mixtrain.laws.cross_validation import TOP_K, cross_validate
from mixtrain.laws.table import ObservationTable

AUTO_REPEATS = 3
AUTO_MARGIN = 0.05
DEFAULT_LAW = "ridge"

__all__ = ["AUTO_MARGIN", "AUTO_REPEATS", "DEFAULT_LAW", "choose_law", "cv_score"]


def cv_score(cv: Mapping[str, Any]) -> float | None:
    """0.5 x normalised decision regret + 0.5 x (1 - mean-loss Spearman); None if the CV has no answer."""
    if cv.get("error") or cv.get("regret_top1") is None:
        return None
    scale = cv["regret_random"] if cv.get("regret_random") else 0.0
    regret = 0.5 * (cv["regret_top1"] + cv["regret_topk"])
    nreg = regret / scale if scale > 0 else 0.0
    rho = cv.get("mean_loss_spearman")
    rank_err = 1.0 if rho is None or not np.isfinite(rho) else 1.0 - float(rho)
    return 0.5 * nreg + 0.5 * rank_err


def _candidate(cls, table: ObservationTable, folds: int, seeds: list[int], importance) -> tuple[MixingLaw | None, dict]:
    """Fit one law (CV under seeds[0]) and cross-validate it under the other seeds -> (law or None, its entry)."""
    min_runs = int(getattr(cls, "auto_min_runs", 0))
    if table.n_runs < min_runs:
        return None, {"error": f"flexible law: an auto candidate from {min_runs} runs on (the table has "
                      f"{table.n_runs}); fit it by name (--law {cls.name}) to use it anyway"}
    try:
        law = cls().fit(table, cv_folds=folds, seed=seeds[0], importance=importance)
    except ValueError as e:
        return None, {"error": str(e)}
    cv = law.report.get("cv", {})
    entry: dict[str, Any] = {key: cv.get(key) for key in (
        "regret_top1", "regret_topk", "regret_random", "baseline_regret_top1", "mean_loss_spearman",
        "mean_spearman", "mean_mre", "error")}
    entry["n_params"] = law.n_params()
    scores = [cv_score(cv)]
    imp = law.importance_vector(importance)
    for s in seeds[1:]:
        scores.append(cv_score(cross_validate(law, table, folds=folds, seed=s, importance=imp)))
    if any(x is None for x in scores):
        entry["error"] = entry.get("error") or "cross-validation failed under some fold seed"
        return None, entry
    entry["scores"] = [float(x) for x in scores]
    entry["score"] = float(np.mean(scores))
    entry["regret"] = 0.5 * (cv["regret_top1"] + cv["regret_topk"])
    return law, entry


def choose_law(laws: Mapping[str, type], table: ObservationTable, *, cv_folds: int = 5, seed: int = 0,
               importance: Mapping[str, float] | None = None, repeats: int = AUTO_REPEATS,
               margin: float = AUTO_MARGIN, default: str = DEFAULT_LAW) -> MixingLaw:
    """The auto choice among `laws` (name -> class) on `table` (module docstring); report in `law.report["auto"]`."""
    folds = max(cv_folds, 2)
    seeds = [seed + r for r in range(max(1, repeats))]
    fitted: dict[str, MixingLaw] = {}
    candidates: dict[str, dict[str, Any]] = {}
    for name, cls in laws.items():
        if not getattr(cls, "auto_candidate", True):
            candidates[name] = {"error": "not an auto candidate (it extrapolates across model sizes; "
                                "fit it by name: --law scaling)"}
            continue
        law, entry = _candidate(cls, table, folds, seeds, importance)
        candidates[name] = entry
        if law is not None:
            fitted[name] = law
    if not fitted:
        raise ValueError("auto: no law could be fitted and cross-validated on the table "
                         f"{table.source}: " + "; ".join(f"{n}: {c.get('error')}" for n, c in candidates.items()))
    chosen, why = _decide(candidates, list(fitted), margin, default)
    law_obj = fitted[chosen]
    law_obj.report["auto"] = {
        "chosen": chosen,
        "criterion": (f"{default} unless a law scores lower under every one of {len(seeds)} fold seeds and by "
                      f"{margin:g} on average (score: 0.5 x decision regret / random-pick regret, mean of top-1 and "
                      f"top-{TOP_K}, + 0.5 x (1 - mean-loss Spearman)); flexible laws need enough runs"),
        "why": why,
        "fold_seeds": seeds,
        "candidates": candidates,
    }
    return law_obj


def _decide(candidates: dict[str, dict], names: list[str], margin: float, default: str) -> tuple[str, str]:
    if default not in names:
        best = min(names, key=lambda n: candidates[n]["score"])
        return best, f"{default} could not be fitted; lowest mean score"
    base = candidates[default]
    challengers = [n for n in names if n != default
                   and candidates[n]["score"] < base["score"] - margin
                   and all(a < b for a, b in zip(candidates[n]["scores"], base["scores"]))]
    if not challengers:
        return default, f"no law beats {default} under every fold seed by the margin"
    best = min(challengers, key=lambda n: candidates[n]["score"])
    return best, f"beats {default} under every fold seed, mean score {candidates[best]['score']:.3f} vs {base['score']:.3f}"
