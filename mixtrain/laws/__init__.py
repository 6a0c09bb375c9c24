"""Fitted mixing laws: loss per evaluation domain as a function of the training weights and step.

Place in the flow: proxy runs -> `mixtrain.collect` -> observation table (`mixtrain.table`) ->
**laws** fit / predict / optimise -> weights.yaml for the manual strategy (`mixtrain.fit` CLI).
Pure: numpy + scipy, no torch, Lightning or Hydra.

    law = make_law("bimix").fit(table)            # params + law.report (R^2, MRE, CV)
    law.predict(W, steps)                         # [n, m] losses
    law.optimize(target_step, importance, min_weight, max_weight) -> {domain: weight}
    law.solve(...) -> Optimum (weights, TV to the nearest proxy mixture, active constraints)
    law.to_json("law.json"); load_law("law.json")
    fit_law(table, "auto")                        # fit every law, keep the best by CV

Laws: bimix (own weight x step, separable), exp (Ye et al.), loglinear (ridge regression in
log space), transfer (bimix on an effective proportion with shrunk cross-domain transfer).

`law="auto"` criterion (what matters for choosing a mixture, not the loss error): every law in
LAWS is fitted with group k-fold cross-validation over runs (laws/evaluate.py); on the pooled
held-out final-step losses,
1. lowest top-1 regret of the importance-weighted mean loss (the true mean loss of the held-out
   run the law ranks best minus the best one); regrets within AUTO_REGRET_TOLERANCE (10%) of the
   random-pick regret of the best count as ties (the table's own scale: a law cannot beat 0);
2. among those, the highest mean-loss Spearman; laws within AUTO_SPEARMAN_TOLERANCE (0.01) of
   it count as ties;
3. among those, the fewest parameters (then the higher Spearman).
Laws that cannot fit the table (too few runs, ...) or whose CV fails are skipped. The decision
and every candidate's metrics go to `report["auto"]`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mixtrain.laws.base import MixingLaw, Optimum, project_box_simplex
from mixtrain.laws.evaluate import cross_validate, spearman
from mixtrain.laws.bimix import BiMixLaw
from mixtrain.laws.exp import ExpLaw
from mixtrain.laws.loglinear import LogLinearLaw
from mixtrain.laws.transfer import TransferLaw
from mixtrain.table import ObservationTable

LAWS: dict[str, type[MixingLaw]] = {
    "bimix": BiMixLaw,
    "exp": ExpLaw,
    "loglinear": LogLinearLaw,
    "transfer": TransferLaw,
}
AUTO_REGRET_TOLERANCE = 0.10
AUTO_SPEARMAN_TOLERANCE = 0.01

__all__ = [
    "AUTO_REGRET_TOLERANCE", "AUTO_SPEARMAN_TOLERANCE", "LAWS", "BiMixLaw", "ExpLaw", "LogLinearLaw", "MixingLaw",
    "Optimum", "TransferLaw",
    "cross_validate", "fit_law", "load_law", "make_law", "project_box_simplex", "spearman",
]


def make_law(name: str, **config: Any) -> MixingLaw:
    """A fresh (unfitted) law by registry name, with options (e.g. make_law('exp', ridge=1e-2))."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)} or 'auto'")
    return LAWS[name](**config)


def load_law(source: str | Mapping[str, Any]) -> MixingLaw:
    """Load a law written by `law.to_json(path)` (a path, or the dict itself); the class is the
    registry's entry for the file's 'law' key."""
    d, where = MixingLaw.read_json(source)
    name = d.get("law")
    if name not in LAWS:
        raise ValueError(f"{where}: unknown law {name!r}; known laws {sorted(LAWS)} (written by a newer mixtrain?)")
    return LAWS[name].from_dict(d, where)


def fit_law(table: ObservationTable, law: str = "auto", *, cv_folds: int = 5, seed: int = 0,
            importance: Mapping[str, float] | None = None, **config: Any) -> MixingLaw:
    """Fit one law by name, or 'auto' (see module docstring for the criterion)."""
    if law != "auto":
        return make_law(law, **config).fit(table, cv_folds=cv_folds, seed=seed, importance=importance)
    if config:
        raise ValueError(f"law='auto' takes no law options, got {sorted(config)}")
    fitted: dict[str, MixingLaw] = {}
    candidates: dict[str, dict[str, Any]] = {}
    for name, cls in LAWS.items():
        try:
            candidate = cls().fit(table, cv_folds=max(cv_folds, 2), seed=seed, importance=importance)
        except ValueError as e:
            candidates[name] = {"error": str(e)}
            continue
        cv = candidate.report.get("cv", {})
        candidates[name] = {key: cv.get(key) for key in (
            "regret_top1", "regret_topk", "regret_random", "mean_loss_spearman", "mean_spearman", "mean_mre", "error")}
        candidates[name]["n_params"] = candidate.n_params()
        if cv.get("regret_top1") is not None and not cv.get("error"):
            fitted[name] = candidate
    if not fitted:
        raise ValueError("auto: no law could be fitted and cross-validated on this table: "
                         + "; ".join(f"{n}: {c.get('error')}" for n, c in candidates.items()))

    def rho(n: str) -> float:
        v = candidates[n]["mean_loss_spearman"]
        return -math.inf if v is None or not math.isfinite(v) else v

    best_regret = min(candidates[n]["regret_top1"] for n in fitted)
    scale = max(candidates[n]["regret_random"] for n in fitted)
    tied = [n for n in fitted if candidates[n]["regret_top1"] <= best_regret + AUTO_REGRET_TOLERANCE * scale]
    best_rho = max(rho(n) for n in tied)
    eligible = [n for n in tied if rho(n) >= best_rho - AUTO_SPEARMAN_TOLERANCE]
    chosen = min(eligible, key=lambda n: (candidates[n]["n_params"], -rho(n)))
    law_obj = fitted[chosen]
    law_obj.report["auto"] = {
        "chosen": chosen,
        "criterion": f"lowest CV top-1 regret of the mean loss (ties within {AUTO_REGRET_TOLERANCE:.0%} of the "
        f"random-pick regret), then highest CV mean-loss Spearman (ties within {AUTO_SPEARMAN_TOLERANCE}), "
        "then fewest parameters",
        "candidates": candidates,
    }
    return law_obj
