"""`lightgbm`: gradient-boosted trees on the mixture weights, as RegMix (Liu et al. 2024) does,
with the step factor of the other surrogate laws (laws/surrogate.py).

    log L_i(r, s) = GBT_i(r) + log(1 + b_i s^-beta_i)

Place in the flow: observation table -> **trees** fit -> predict / laws/optim/sampled.py -> weights.
Needs the optional extra `mixtrain[surrogate]` (lightgbm); without it the fit says so.

Choices made here: one booster per eval domain on the raw weights (RegMix's features), trained on
one row per distinct mixture weighted by its run count; small-data settings (`num_leaves` 8,
`min_data_in_leaf` 2, 100 rounds at learning rate 0.1), single-threaded and deterministic, so a
fit is reproducible. Trees are piecewise constant: they cannot extrapolate beyond the observed
weights, and their optimum is a plateau (RegMix averages the top-k candidates for that reason;
laws/optim/sampled.py averages over bootstrap refits). The boosters are saved in the law JSON as
LightGBM model strings (`models`). Refusal count: `num_leaves` (one tree's values) must be below
the number of runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.laws.law_registry import register_law
from mixtrain.laws.surrogate import SurrogateLaw

MISSING = ("lightgbm: this law needs the optional extra 'surrogate' (LightGBM): "
           "pip install 'mixtrain[surrogate]' (or pip install lightgbm), or choose another law (e.g. ridge)")


def _lgb():
    try:
        import lightgbm
    except ImportError:
        raise ValueError(MISSING) from None
    return lightgbm


@register_law(order=60)
class LightGBMLaw(SurrogateLaw):
    name = "lightgbm"
    formula = "log L_i = GBT_i(r) + log(1 + b_i s^-beta_i)   [LightGBM on the weights, as RegMix]"
    auto_min_runs = 64  # law="auto" trusts trees only from 64 runs (laws/law_choice.py: they lose at 16)
    refit_pool = 5_000  # bootstrap refits score only the best 5,000 candidates: 17 boosters x 100k rows is slow
    defaults = {"num_leaves": 8, "rounds": 100, "learning_rate": 0.1, "min_data_in_leaf": 2, "seed": 0}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._boosters: list[Any] = []

    def mixture_params(self) -> int:
        return int(self.config["num_leaves"])

    def _check(self, table) -> None:
        _lgb()
        super()._check(table)

    def _fit_mixture(self, U, Y, counts, n_runs, notes) -> None:
        lgb = _lgb()
        c = self.config
        params = {"objective": "regression", "learning_rate": float(c["learning_rate"]),
                  "num_leaves": int(c["num_leaves"]), "min_data_in_leaf": int(c["min_data_in_leaf"]),
                  "min_data_in_bin": 1, "min_sum_hessian_in_leaf": 1e-6, "feature_pre_filter": False,
                  "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": int(c["seed"]),
                  "verbose": -1}
        self._boosters = []
        for j in range(Y.shape[1]):
            data = lgb.Dataset(U, label=Y[:, j], weight=counts, params={"verbose": -1})
            self._boosters.append(lgb.train(params, data, num_boost_round=int(c["rounds"])))

    def _mixture(self, W: np.ndarray) -> np.ndarray:
        return np.stack([b.predict(W, num_threads=1) for b in self._boosters], axis=1)

    def _extra_json(self) -> dict[str, Any]:
        return {"models": [b.model_to_string() for b in self._boosters]}

    def _load_extra(self, d: Mapping[str, Any], where: str) -> None:
        models = d.get("models")
        if not isinstance(models, list) or len(models) != len(self.eval_domains):
            raise ValueError(f"{where}: a lightgbm law file needs 'models', one LightGBM model string per eval domain")
        lgb = _lgb()
        self._boosters = [lgb.Booster(model_str=s) for s in models]
