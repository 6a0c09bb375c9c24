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

`law="auto"` criterion (laws/law_choice.py): every law in LAWS is cross-validated (group k-fold over
runs, nested tuning) under 3 fold seeds; a law's score per seed averages its decision regret (normalised
by the random pick) with its mean-loss rank error; flexible laws (lightgbm) are candidates only from
`auto_min_runs` runs on; among the laws whose mean score is within a tolerance of the lowest, a fixed order decides.
Laws that cannot fit the table are skipped with the reason. `scaling` is never an auto candidate, even on
a table with num_params: auto compares decision regret among runs of one size, while scaling exists to
extrapolate to an untrained size (its check is a held-out size, laws/scaling_mixing.py); fit it by name.
The decision and every candidate's metrics go to `report["auto"]`.

Laws: bimix (own weight x step, separable), exp (Ye et al.), loglinear (ridge regression in
log space), transfer (bimix on an effective proportion with shrunk cross-domain transfer), ridge
(regularised regression on the whole mixture with pairwise terms, laws/surrogate.py) and
lightgbm (RegMix's gradient-boosted trees, optional extra `mixtrain[surrogate]`, laws/trees.py) and
scaling (Shukor et al.'s additive law across model size N and tokens D, laws/scaling_mixing.py;
needs the table's num_params and tokens columns) and ensemble (the auto candidates averaged with weights
from their cross-validated scores, laws/ensemble.py; never an auto candidate itself).
The separable laws (bimix, transfer's own-weight core) cannot represent transfer between domains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixtrain.laws.base import MixingLaw
from mixtrain.laws.cross_validation import cross_validate, spearman
from mixtrain.laws.law_choice import AUTO_REPEATS, AUTO_TOLERANCE, choose_law
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

__all__ = [
    "AUTO_REPEATS", "AUTO_TOLERANCE", "LAWS", "BiMixLaw", "ExpLaw", "LightGBMLaw", "LogLinearLaw", "MixingLaw",
    "Optimum", "RidgeLaw", "ScalingMixingLaw", "TransferLaw", "cross_validate", "discover_laws", "fit_law",
    "load_law", "make_law", "project_box_simplex", "register_law", "spearman",
]


def fit_law(table: ObservationTable, law: str = "auto", *, cv_folds: int = 5, seed: int = 0,
            importance: Mapping[str, float] | None = None, **config: Any) -> MixingLaw:
    """Fit one law by name, or 'auto' (laws/law_choice.py: the criterion)."""
    if law != "auto":
        return make_law(law, **config).fit(table, cv_folds=cv_folds, seed=seed, importance=importance)
    if config:
        raise ValueError(f"law='auto' takes no law options, got {sorted(config)}")
    return choose_law(LAWS, table, cv_folds=cv_folds, seed=seed, importance=importance)


discover_laws()  # every law module's @register_law has run once `mixtrain.laws` is imported
