"""Fitted mixing laws: loss per evaluation domain as a function of the training weights and step.

Place in the flow: proxy runs -> `mixtrain.collect` -> observation table (`mixtrain.table`) ->
**laws** fit / predict / optimise -> weights.yaml for the manual strategy (`mixtrain.fit` CLI).
Pure: numpy + scipy, no torch, Lightning or Hydra.

    law = make_law("bimix").fit(table)            # params + law.report (R^2, MRE, CV)
    law.predict(W, steps)                         # [n, m] losses
    law.optimize(target_step, importance, min_weight, max_weight) -> {domain: weight}
    law.to_json("law.json"); load_law("law.json")
    fit_law(table, "auto")                        # fit every law, keep the best by CV

Laws: bimix (own weight x step, separable), exp (Ye et al.), loglinear (ridge regression in
log space), transfer (bimix on an effective proportion with shrunk cross-domain transfer).

`law="auto"` criterion: every law in LAWS is fitted with group k-fold cross-validation over
runs; the score is the mean over eval domains of the held-out MRE of the runs' final-step
losses (lower is better). Laws that cannot fit the table (too few runs, ...) or whose CV
fails are skipped. Parsimony: among laws within AUTO_TOLERANCE (5%, relative) of the best
score, the one with the fewest parameters wins (ties: lower score). The decision and every
candidate's score go to `report["auto"]`.
"""

from __future__ import annotations

from typing import Any

from mixtrain.laws.base import MixingLaw, cross_validate, project_box_simplex, spearman
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
AUTO_TOLERANCE = 0.05

__all__ = [
    "AUTO_TOLERANCE", "LAWS", "BiMixLaw", "ExpLaw", "LogLinearLaw", "MixingLaw", "TransferLaw",
    "cross_validate", "fit_law", "load_law", "make_law", "project_box_simplex", "spearman",
]


def make_law(name: str, **config: Any) -> MixingLaw:
    """A fresh (unfitted) law by registry name, with options (e.g. make_law('exp', ridge=1e-2))."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)} or 'auto'")
    return LAWS[name](**config)


def load_law(path: str) -> MixingLaw:
    """Load a law written by `law.to_json(path)`."""
    return MixingLaw.from_json(path)


def fit_law(table: ObservationTable, law: str = "auto", *, cv_folds: int = 5, seed: int = 0, **config: Any) -> MixingLaw:
    """Fit one law by name, or 'auto' (see module docstring for the criterion)."""
    if law != "auto":
        return make_law(law, **config).fit(table, cv_folds=cv_folds, seed=seed)
    if config:
        raise ValueError(f"law='auto' takes no law options, got {sorted(config)}")
    fitted: dict[str, MixingLaw] = {}
    candidates: dict[str, dict[str, Any]] = {}
    for name, cls in LAWS.items():
        try:
            candidate = cls().fit(table, cv_folds=max(cv_folds, 2), seed=seed)
        except ValueError as e:
            candidates[name] = {"error": str(e)}
            continue
        cv = candidate.report.get("cv", {})
        score = cv.get("mean_mre")
        candidates[name] = {"cv_mean_mre": score, "cv_mean_spearman": cv.get("mean_spearman"),
                            "n_params": candidate.n_params(), "error": cv.get("error")}
        if score is not None and not cv.get("error"):
            fitted[name] = candidate
    if not fitted:
        raise ValueError("auto: no law could be fitted and cross-validated on this table: "
                         + "; ".join(f"{n}: {c.get('error')}" for n, c in candidates.items()))
    best_score = min(candidates[n]["cv_mean_mre"] for n in fitted)
    eligible = [n for n in fitted if candidates[n]["cv_mean_mre"] <= best_score * (1 + AUTO_TOLERANCE)]
    chosen = min(eligible, key=lambda n: (candidates[n]["n_params"], candidates[n]["cv_mean_mre"]))
    law_obj = fitted[chosen]
    law_obj.report["auto"] = {
        "chosen": chosen,
        "criterion": "lowest mean held-out final-loss MRE (group k-fold over runs); among laws within "
        f"{AUTO_TOLERANCE:.0%} of the best, the fewest parameters",
        "candidates": candidates,
    }
    return law_obj
