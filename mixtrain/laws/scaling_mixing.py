"""The law across model sizes (laws/scaling.py) as a registry law: `mixtrain.fitting.fit --law scaling`.

Place in the flow: runs of several model sizes -> `mixtrain.fitting.collect` (table.csv with `tokens` = D and
`num_params` = N on every row) -> **ScalingMixingLaw.fit** (the additive law of Shukor et al. 2025,
fitted by laws/scaling.py) -> law.json -> `mixtrain.fitting.fit --optimize --params N --tokens D` (the sampled
optimiser of laws/optim/sampled.py, at a size and budget nobody trained).

The MixingLaw interface predicts from (weights, step): here the step is turned into tokens with the
fitting table's median tokens per step (the proxies' global batch), and the model size is
`config["target_params"]` (`--params`; default: the largest fitted size). Under the additive form
the mixture term 1 / sum_j C_ij h_j^gamma_ij is the only one that depends on h, so the optimal
mixture does not depend on N or D; N and D set the predicted loss, and D sets the repetition
(laws/repetition.py). Not an `auto` candidate: auto compares laws by cross-validated decision
regret among runs of one size, while this law's job is extrapolating to an untrained size; its
check is the held-out size (report["held_out_size"]: refit without the largest size, MRE on it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mixtrain.laws.base import MixingLaw
from mixtrain.laws.law_registry import register_law
from mixtrain.laws.scaling import FORMULA, ScalingLaw
from mixtrain.laws.table import ObservationTable

KEYS = ("E", "A", "alpha", "B", "beta")


@register_law(order=70)
class ScalingMixingLaw(MixingLaw):
    name = "scaling"
    formula = FORMULA + "   [N = num_params, D = tokens]"
    defaults = {"target_params": None, "huber_delta": 1e-3, "max_nfev": 2000}
    auto_candidate = False  # see module docstring
    auto_note = "not an auto candidate (it extrapolates across model sizes; fit it by name: --law scaling)"
    _fit_rows: ObservationTable | None = None

    def n_params(self) -> int:
        return len(self.eval_domains) * (5 + 2 * len(self.train_domains))

    def mixture_params(self) -> int:
        return 2 * len(self.train_domains)

    def _check(self, table: ObservationTable) -> None:
        if table.num_params is None or table.tokens is None:
            missing = [c for c, v in (("num_params", table.num_params), ("tokens", table.tokens)) if v is None]
            raise ValueError(f"scaling: the table {table.source} has no {' or '.join(missing)} column; the law across "
                             "model sizes needs N (num_params) and D (tokens) on every row: `mixtrain.fitting.collect` writes "
                             "both from runs with a config.yaml")
        if np.any(table.tokens <= 0):
            raise ValueError(f"scaling: the table {table.source} has rows with tokens 0; D must be > 0")

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        law = ScalingLaw(huber_delta=self.config["huber_delta"], max_nfev=self.config["max_nfev"])
        law.fit(table.train_domains, table.eval_domains, table.num_params, table.tokens, table.W, table.L)
        p = law.params
        self.params = {key: np.array([p[d][key] for d in table.eval_domains]) for key in KEYS}
        self.params["C"] = np.array([p[d]["C"] for d in table.eval_domains])
        self.params["gamma"] = np.array([p[d]["gamma"] for d in table.eval_domains])
        self.params["ref"] = np.array([law.n_ref, law.d_ref])
        self.params["sizes"] = np.array(sorted(set(table.num_params.tolist())))
        self.params["tokens_per_step"] = np.array([float(np.median(table.tokens / table.steps))])
        notes.append("model sizes " + ", ".join(f"{n:.4g}" for n in self.params["sizes"])
                     + f"; tokens per step {self.params['tokens_per_step'][0]:.4g}")

    def predict_at(self, num_params, num_tokens, W) -> np.ndarray:
        """Losses [n, m] at model sizes and token budgets (broadcast) for weights W [n, k]."""
        self._require_fitted()
        p = self.params
        W = np.atleast_2d(np.asarray(W, dtype=float))
        n = np.broadcast_to(np.asarray(num_params, float), (W.shape[0],)) / p["ref"][0]
        d = np.broadcast_to(np.asarray(num_tokens, float), (W.shape[0],)) / p["ref"][1]
        mix = np.einsum("mk,nmk->nm", p["C"], W[:, None, :] ** p["gamma"][None])
        return (p["E"][None] + 1.0 / np.maximum(mix, 1e-300) + p["A"][None] * n[:, None] ** -p["alpha"][None]
                + p["B"][None] * d[:, None] ** -p["beta"][None])

    def target_params(self) -> float:
        t = self.config.get("target_params")
        return float(t) if t else float(self.params["sizes"].max())

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        rows = self._fit_rows  # base fit's in-sample report: each row at its own model size
        N = rows.num_params if rows is not None and W is rows.W else self.target_params()
        return self.predict_at(N, np.asarray(steps, float) * self.params["tokens_per_step"][0], W)

    def fit(self, table: ObservationTable, *, cv_folds: int = 5, seed: int = 0,
            importance: Mapping[str, float] | None = None) -> MixingLaw:
        """The base fit (in-sample R^2/MRE at each row's own size), no run-level CV (module docstring),
        and the held-out-size check when there are >= 4 sizes."""
        self._fit_rows = table
        try:
            super().fit(table, cv_folds=0, seed=seed, importance=importance)
        finally:
            self._fit_rows = None
        if cv_folds:
            self.report["cv"] = {"error": "not cross-validated over runs (its check is a held-out model size: "
                                 "report held_out_size, docs/scaling.md)"}
            self.report["held_out_size"] = self._held_out_size(table)
        return self

    def _held_out_size(self, table: ObservationTable) -> dict:
        sizes = np.unique(table.num_params)
        if sizes.size < 4:
            return {"error": f"{sizes.size} model sizes: a held-out size needs >= 4 (3 to fit)"}
        keep = table.num_params < sizes.max()
        try:
            law = type(self)(**self.config).fit(table.subset(keep), cv_folds=0)
        except ValueError as e:
            return {"error": str(e)}
        held = table.subset(~keep)
        pred = law.predict_at(held.num_params, held.tokens, held.W)
        mre = np.mean(np.abs(pred - held.L) / held.L, axis=0)
        return {"size": float(sizes.max()), "rows": int(held.n_rows),
                "mre": dict(zip(table.eval_domains, mre.tolist())), "mean_mre": float(mre.mean())}
