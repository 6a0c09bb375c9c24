"""`ensemble`: the candidate laws averaged, each weighted by its cross-validated score (issue 32).

Place in the flow: observation table -> every `law="auto"` candidate fitted and cross-validated under the
fold seeds (laws/law_choice.py `cross_validated`, the same numbers auto reads) -> **ensemble** (member
weights from those scores) -> predict / laws/optim/ (`propose`) -> weights. `--law ensemble` fits it by
name; laws/law_choice.py builds it from auto's own CV when auto's rule asks for it. Pure: numpy.

    L_i(r, s) = sum_l v_l L_i^(l)(r, s),   v_l ∝ exp(-(score_l - min score) / temperature)

score_l is laws/law_choice.py `cv_score` (0.5 x normalised decision regret + 0.5 x (1 - mean-loss
Spearman)) averaged over `repeats` fold seeds (seed, seed+1, ...); members whose weight is below
`MIN_WEIGHT` of the total are dropped and the rest renormalised. Why weights that are smooth in the scores:
auto's pick among near-equal laws (exp vs transfer) flips when fold reseeding moves their scores across
each other or across the band's edge; a softmax moves the weights by a little instead, and a law far
outside the band (score + 5 x temperature) gets < 1% weight. Why averaged, not stacked (a regression of
the held-out losses on the members' held-out predictions): with 16 runs a stacking regression over 5-6
highly correlated members is itself one more noisy fit; the issue lists both. Flexible laws keep their
run-count rule (lightgbm is a member only from `auto_min_runs` runs on).

Refits: the weights, once computed, are stored in `config["weights"]`, so the law's own cross-validation
(laws/cross_validation.py clones `type(law)(**law.config)`) and the optimiser's bootstrap refits
(laws/optim/bootstrap.py) refit the members under fixed weights. Why: recomputing the weights inside every
refit runs the whole repeated CV again (15 fits per member per refit: minutes per proposal at 17 domains).
What it costs: the ensemble's own CV (`report["cv"]`) is not nested over the weights, so it is slightly
optimistic; the bootstrap sees the members' parameter spread, not the weights'. `make_law("ensemble",
weights={...})` fixes the weights by hand; a member that cannot be refitted on a subset is dropped there
(the report's notes say so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.laws.base import MixingLaw
from mixtrain.laws.law_choice import AUTO_REPEATS, cross_validated
from mixtrain.laws.law_registry import LAWS, discover_laws, load_law, make_law, register_law

ENSEMBLE_TEMPERATURE = 0.04  # set on development worlds (bench/law_choice.py --seed0 800; docs/law_choice.md)
MIN_WEIGHT = 1e-3

__all__ = ["ENSEMBLE_TEMPERATURE", "EnsembleLaw", "ensemble_weights"]


def ensemble_weights(scores: Mapping[str, list[float]], temperature: float = ENSEMBLE_TEMPERATURE) -> dict[str, float]:
    """Member weights from each law's per-fold-seed CV scores (lower is better): softmax of -mean/temperature."""
    if not scores:
        raise ValueError("ensemble: no candidate law has cross-validation scores")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"ensemble: temperature must be > 0, got {temperature}")
    mean = {n: float(np.mean(v)) for n, v in scores.items()}
    best = min(mean.values())
    raw = {n: float(np.exp(-(m - best) / temperature)) for n, m in mean.items()}
    total = sum(raw.values())
    kept = {n: x for n, x in raw.items() if x >= MIN_WEIGHT * total}
    total = sum(kept.values())
    return {n: x / total for n, x in kept.items()}


@register_law(order=80)
class EnsembleLaw(MixingLaw):
    name = "ensemble"
    formula = "L_i = sum_l v_l L_i^(l)   [auto's candidate laws, v from their cross-validated scores]"
    auto_candidate = False
    auto_note = "the ensemble is built from the auto candidates (laws/law_choice.py), not one of them"
    defaults = {"temperature": ENSEMBLE_TEMPERATURE, "repeats": AUTO_REPEATS, "folds": 5, "weights": None}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._own_weights = self.config["weights"] is None  # computed by the fit (else fixed by the caller)
        self.members: dict[str, MixingLaw] = {}
        self._seed, self._importance, self._folds = 0, None, int(self.config["folds"])
        self._cv: dict[str, Any] | None = None
        self._given: dict[str, MixingLaw] | None = None  # members fitted already (from_candidates)

    @classmethod
    def from_candidates(cls, table, fitted: Mapping[str, MixingLaw], candidates: Mapping[str, Mapping[str, Any]],
                        *, seeds: list[int], temperature: float = ENSEMBLE_TEMPERATURE, cv_folds: int = 5,
                        importance=None) -> EnsembleLaw:
        """The ensemble of laws already fitted and cross-validated (laws/law_choice.py `cross_validated`)."""
        w = ensemble_weights({n: candidates[n]["scores"] for n in fitted}, temperature)
        law = cls(temperature=temperature, repeats=len(seeds), weights=w)
        law._own_weights = True
        law._cv = {"fold_seeds": list(seeds), "candidates": dict(candidates)}
        law._given = {n: fitted[n] for n in w}
        return law.fit(table, cv_folds=cv_folds, seed=seeds[0], importance=importance)

    def fit(self, table, *, cv_folds: int = 5, seed: int = 0, importance: Mapping[str, float] | None = None) -> EnsembleLaw:
        self._seed, self._importance = seed, importance
        self._folds = int(cv_folds) if cv_folds else int(self.config["folds"])  # the weights' CV: the caller's folds
        super().fit(table, cv_folds=cv_folds, seed=seed, importance=importance)
        self.report["ensemble"] = {"weights": dict(self.config["weights"]), "temperature": self.config["temperature"],
                                   **(self._cv or {"fold_seeds": None, "candidates": None})}
        return self

    def _fit(self, table, notes: list[str]) -> None:
        given = self._given
        if given is not None:  # from_candidates: the members are fitted already
            self.members, self._given = dict(given), None
        elif self._own_weights:
            discover_laws()
            seeds = [self._seed + r for r in range(max(1, int(self.config["repeats"])))]
            laws = {n: c for n, c in LAWS.items() if n != self.name}
            fitted, cands = cross_validated(laws, table, cv_folds=self._folds, seeds=seeds,
                                            importance=self._importance)
            w = ensemble_weights({n: cands[n]["scores"] for n in fitted}, float(self.config["temperature"]))
            self.config["weights"] = w
            self.members = {n: fitted[n] for n in w}
            self._cv = {"fold_seeds": seeds, "candidates": cands}
        else:
            self.members = {}
            for n in self.config["weights"]:
                try:
                    self.members[n] = make_law(n).fit(table, cv_folds=0)
                except ValueError as e:
                    notes.append(f"member {n} dropped on this table: {e}")
            if not self.members:
                raise ValueError(f"ensemble: none of the members {sorted(self.config['weights'])} could be fitted "
                                 f"on the table {table.source}")
        self._set_params()

    def _set_params(self) -> None:
        w = np.array([float(self.config["weights"][n]) for n in self.members])
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"ensemble: member weights must be finite, >= 0 and not all 0, got {self.config['weights']}")
        self.params = {"weights": w / w.sum()}

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return sum(v * m._predict(W, steps) for v, m in zip(self.params["weights"], self.members.values()))

    def _predict_grad(self, r: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        parts = [m._predict_grad(r, step) for m in self.members.values()]
        v = self.params["weights"]
        return sum(x * p[0] for x, p in zip(v, parts)), sum(x * p[1] for x, p in zip(v, parts))

    def n_params(self) -> int:
        return int(sum(m.n_params() for m in self.members.values())) or 1

    def mixture_params(self) -> int:
        # every member passed its own runs-vs-parameters refusal on this table; the ensemble adds none
        return max((m.mixture_params() for m in self.members.values()), default=1)

    @property
    def refit_pool(self) -> int | None:
        pools = [getattr(m, "refit_pool", None) for m in self.members.values()]
        pools = [p for p in pools if p is not None]
        return min(pools) if pools else None

    def _extra_json(self) -> dict[str, Any]:
        members = {}
        for n, m in self.members.items():
            d = m.to_dict()
            d["table"] = None  # the ensemble's own table (saved once) is what refits use
            members[n] = d
        return {"members": members}

    def _load_extra(self, d: Mapping[str, Any], where: str) -> None:
        members = d.get("members")
        if not isinstance(members, Mapping) or not members or len(members) != len(self.params["weights"]) \
                or not set(members) <= set(self.config["weights"] or {}):
            raise ValueError(f"{where}: an ensemble law file needs 'members', one saved law per weight "
                             "(names from config.weights)")
        self.members = {n: load_law(d) for n, d in members.items()}
        self._own_weights = False
