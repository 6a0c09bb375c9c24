"""Fitted mixing laws: loss per evaluation domain as a function of the training weights and step.

Place in the flow: proxy runs -> `mixtrain.fitting.collect` -> observation table (`mixtrain.laws.table`) ->
**laws** fit / predict / law.json -> the optimisers (laws/optim/) -> weights.yaml for the manual strategy
(`mixtrain.fitting.fit` CLI) or mixing=law.
Pure: numpy + scipy, no torch, Lightning or Hydra.

    law = make_law("bimix").fit(table)            # params + law.report (R^2, MRE, CV)
    law.predict(W, steps)                         # [n, m] losses
    law.to_json("law.json"); load_law("law.json")
    fit_law(table, "auto")                        # fit every law, keep the best by CV

The optimisers sit above the laws, in laws/optim/ (this package does not import them):

    from mixtrain.laws.optim.sampled import propose   # propose(law, target_step, ...) -> Proposal, the default
    from mixtrain.laws.optim.slsqp import solve, optimize  # solve(law, ...) -> Optimum (SLSQP in a trust region)

Laws register themselves where they are defined (`@register_law`, laws/law_registry.py); importing this
package imports every law module once (`discover_laws`), so `LAWS` holds them all.

`law="auto"` criterion (the decision a law leads to, not its loss error): every law in LAWS is
fitted with group k-fold cross-validation over runs (laws/cross_validation.py; a law's own tuning, such as
ridge's penalty, runs inside each fold: nested); on the pooled held-out final-step losses,
1. lowest decision regret: the mean of the top-1 and top-k regret of the importance-weighted mean
   loss (true mean loss of the held-out run(s) the law ranks best minus the best one); regrets
   within AUTO_REGRET_TOLERANCE (10%) of the random-pick regret of the best count as ties (the
   table's own scale: a law cannot beat 0);
2. among those, the fewest fitted parameters, then the lowest regret.
Laws that cannot fit the table (too few runs, a missing optional extra, ...) or whose CV fails are
skipped. `scaling` is never an auto candidate, even on a table with num_params: auto compares
decision regret among runs of one size, while scaling exists to extrapolate to an untrained size
(its check is a held-out size, laws/scaling_mixing.py); fit it by name. The decision and every candidate's metrics go to `report["auto"]`.

Laws: bimix (own weight x step, separable), exp (Ye et al.), loglinear (ridge regression in
log space), transfer (bimix on an effective proportion with shrunk cross-domain transfer), ridge
(regularised regression on the whole mixture with pairwise terms, laws/surrogate.py) and
lightgbm (RegMix's gradient-boosted trees, optional extra `mixtrain[surrogate]`, laws/trees.py) and
scaling (Shukor et al.'s additive law across model size N and tokens D, laws/scaling_mixing.py;
needs the table's num_params and tokens columns).
The separable laws (bimix, transfer's own-weight core) cannot represent transfer between domains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixtrain.laws.base import MixingLaw
from mixtrain.laws.cross_validation import TOP_K, cross_validate, spearman
from mixtrain.laws.law_registry import LAWS, discover_laws, load_law, make_law, register_law
from mixtrain.laws.simplex import project_box_simplex
from mixtrain.laws.support import Optimum
from mixtrain.laws.table import ObservationTable

# convenience re-exports of the built-in law classes (not the registry: a new law needs no line here)
from mixtrain.laws.bimix import BiMixLaw
from mixtrain.laws.exp import ExpLaw
from mixtrain.laws.loglinear import LogLinearLaw
from mixtrain.laws.scaling_mixing import ScalingMixingLaw
from mixtrain.laws.surrogate import RidgeLaw
from mixtrain.laws.transfer import TransferLaw
from mixtrain.laws.trees import LightGBMLaw

AUTO_REGRET_TOLERANCE = 0.10

__all__ = [
    "AUTO_REGRET_TOLERANCE", "LAWS", "BiMixLaw", "ExpLaw", "LightGBMLaw", "LogLinearLaw", "MixingLaw",
    "Optimum", "RidgeLaw", "ScalingMixingLaw", "TransferLaw", "cross_validate", "discover_laws", "fit_law",
    "load_law", "make_law", "project_box_simplex", "register_law", "spearman",
]


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
        if not getattr(cls, "auto_candidate", True):
            candidates[name] = {"error": "not an auto candidate (it extrapolates across model sizes; "
                                "fit it by name: --law scaling)"}
            continue
        try:
            candidate = cls().fit(table, cv_folds=max(cv_folds, 2), seed=seed, importance=importance)
        except ValueError as e:
            candidates[name] = {"error": str(e)}
            continue
        cv = candidate.report.get("cv", {})
        candidates[name] = {key: cv.get(key) for key in (
            "regret_top1", "regret_topk", "regret_random", "baseline_regret_top1", "mean_loss_spearman",
            "mean_spearman", "mean_mre", "error")}
        candidates[name]["n_params"] = candidate.n_params()
        if cv.get("regret_top1") is not None and not cv.get("error"):
            candidates[name]["regret"] = 0.5 * (cv["regret_top1"] + cv["regret_topk"])
            fitted[name] = candidate
    if not fitted:
        raise ValueError("auto: no law could be fitted and cross-validated on this table: "
                         + "; ".join(f"{n}: {c.get('error')}" for n, c in candidates.items()))
    best_regret = min(candidates[n]["regret"] for n in fitted)
    scale = max(candidates[n]["regret_random"] for n in fitted)
    tied = [n for n in fitted if candidates[n]["regret"] <= best_regret + AUTO_REGRET_TOLERANCE * scale]
    chosen = min(tied, key=lambda n: (candidates[n]["n_params"], candidates[n]["regret"]))
    law_obj = fitted[chosen]
    law_obj.report["auto"] = {
        "chosen": chosen,
        "criterion": f"lowest CV decision regret (mean of top-1 and top-{TOP_K} regret; ties within "
        f"{AUTO_REGRET_TOLERANCE:.0%} of the random-pick regret), then fewest parameters",
        "candidates": candidates,
    }
    return law_obj


discover_laws()  # every law module's @register_law has run once `mixtrain.laws` is imported
