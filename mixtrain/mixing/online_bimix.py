"""Online BiMix (ours): refit the BiMix law on the run's own history, re-solve for the rest of the run.

Place in the flow: like every online strategy, between the prepared data and the sampler:
`compute(ctx)` (the prior) -> sampler/; then every `refit_every_n_steps` the controller
(mixtrain/train/mixing_controller.py) hands a `MixHistory` to `update()`, which fits mixtrain/laws/ on it. Pure:
numpy and mixtrain.laws, no torch, Lightning or Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.static import prior_weights
from mixtrain.mixing.strategy_registry import register_strategy
from mixtrain.weights import normalize_weights


def remaining_budget_weights(
    target: Mapping[str, float], tokens_seen: Mapping[str, float], remaining_tokens: float
) -> dict[str, float]:
    """Weights for the rest of a run so that its cumulative mixture ends as close to `target` as possible.

    With n_d tokens seen (N in all) and R tokens left, weights w give the final cumulative share
    c_d = (n_d + w_d R) / (N + R). c = target needs w_d = (target_d (N + R) - n_d) / R, which
    leaves the simplex when a domain is already over-represented. c is affine in w, so the w on
    the simplex with c closest to target (Euclidean) is the Euclidean projection of that
    unconstrained w onto the simplex: negative entries clipped to 0, the rest shifted equally.
    """
    domains = list(target)
    if remaining_tokens <= 0:
        return normalize_weights(target, domains)
    import numpy as np

    from mixtrain.laws.simplex import project_box_simplex

    seen = np.array([float(tokens_seen.get(d, 0.0)) for d in domains])
    r = np.array([float(target[d]) for d in domains])
    ideal = (r * (seen.sum() + remaining_tokens) - seen) / remaining_tokens
    w = project_box_simplex(ideal, np.zeros(len(domains)), np.ones(len(domains)))
    return normalize_weights(dict(zip(domains, w.tolist())), domains, what="online_bimix remaining-budget weights")


@register_strategy
class OnlineBiMix(MixingStrategy):
    """Ours: refit the BiMix law on the run's own history and re-solve for the remaining budget.

    Observations (one per refit): the cumulative token share of every domain so far (the
    mixture the model has actually seen, which moves as weights change) and the latest
    per-domain validation loss (training loss when no validation ran since the last refit),
    at the current step. Until `min_records` observations exist the strategy explores:
    Dirichlet draws around the prior (seeded by refit index), which vary the shares so the
    proportion exponents become identifiable. `min_records` must exceed the law's parameters
    per domain (bimix: 4), so that no fit merely interpolates its observations; None (default)
    is that count + 1. Then every refit fits `law` (bimix by default)
    on all observations and solves for its optimum r* at the final step (trainer.max_steps).
    r* is a cumulative proportion (BiMix's r is the share of the tokens seen), so the weights
    returned are those for the *rest* of the run that bring the cumulative share at the end
    closest to r* given the tokens already seen (`remaining_budget_weights`; remaining tokens
    = steps left x tokens per step so far). The refit callback's floor/max_change/smoothing and
    the sampler's planning window still move the realised shares; every refit re-compensates.
    A failed fit raises; the refit callback keeps the previous weights and logs why.
    """

    name = "online_bimix"

    def __init__(
        self,
        refit_every_n_steps: int = 200,
        prior: str = "natural",
        prior_temperature: float = 3.0,
        law: str = "bimix",
        min_records: int | None = None,
        explore_concentration: float = 20.0,
        min_weight: float = 0.02,
        seed: int = 0,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if prior not in ("uniform", "natural", "temperature"):
            raise ValueError(f"mixing.prior must be uniform, natural or temperature, got {prior!r}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.prior, self.prior_temperature, self.law = prior, float(prior_temperature), law
        self.min_records = None if min_records is None else int(min_records)
        self.explore_concentration = float(explore_concentration)
        self.min_weight, self.seed = float(min_weight), int(seed)
        self._prior_weights: dict[str, float] | None = None
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        self._required_records(ctx.domains)  # a bad min_records fails at start-up, not at every refit
        self._prior_weights = prior_weights(self.prior, self.prior_temperature, ctx)
        return self._prior_weights

    def _required_records(self, domains: list[str]) -> int:
        """Observations before the first fit: more than the law's parameters per domain."""
        per_domain = law_params_per_domain(self.law, domains)
        if self.min_records is None:
            return per_domain + 1
        if self.min_records <= per_domain:
            raise ValueError(
                f"mixing.min_records={self.min_records}: law {self.law!r} has {per_domain} parameters per domain, "
                f"so a fit on {self.min_records} observations would interpolate them; set mixing.min_records >= "
                f"{per_domain + 1} or null (= {per_domain + 1})")
        return self.min_records

    def _observations(self, history: MixHistory) -> list[dict[str, Any]]:
        rows = []
        for rec in [*history.records, {"step": history.step, "tokens_seen": history.tokens_seen,
                                       "train_loss": history.train_loss, "val_loss": history.val_loss}]:
            losses = rec.get("val_loss") or rec.get("train_loss")
            total = sum(rec["tokens_seen"].values())
            if not losses or total <= 0 or not all(math.isfinite(v) and v > 0 for v in losses.values()):
                continue
            rows.append({"step": rec["step"], "share": {d: n / total for d, n in rec["tokens_seen"].items()},
                         "loss": dict(losses)})
        return rows

    def update(self, history: MixHistory) -> dict[str, float] | None:
        import numpy as np

        from mixtrain.laws import make_law
        from mixtrain.laws.optim.slsqp import optimize
        from mixtrain.laws.table import make_table

        domains = list(history.weights)
        rows = self._observations(history)
        required = self._required_records(domains)
        if len(rows) < required:
            prior = np.array([(self._prior_weights or history.weights)[d] for d in domains], dtype=float)
            prior = prior / prior.sum()
            rng = np.random.default_rng([self.seed, len(history.records)])
            draw = rng.dirichlet(self.explore_concentration * prior + 1e-3)
            self.last_fit_report = {"phase": "explore", "observations": len(rows), "required": required}
            return dict(zip(domains, draw.tolist()))
        # every observation is its own "run": its mixture (the cumulative share) differs from
        # the others', which is what identifies the proportion exponents; equal weight per refit
        table = make_table(
            domains, domains, [f"refit-{i}" for i in range(len(rows))], [r["step"] for r in rows],
            [[r["share"][d] for d in domains] for r in rows], [[r["loss"][d] for d in domains] for r in rows],
            source="online_bimix history",
        )
        law = make_law(self.law).fit(table, cv_folds=0)  # one run: nothing to cross-validate over
        target = history.max_steps or history.step
        optimum = optimize(law, target, min_weight=self.min_weight)
        seen_total = float(sum(history.tokens_seen.values()))
        remaining = seen_total / history.step * (target - history.step) if history.step > 0 else 0.0
        weights = remaining_budget_weights(optimum, history.tokens_seen, remaining)
        self.last_fit_report = {"phase": "fit", "observations": len(rows), "target_step": target,
                                "optimum": {d: round(v, 5) for d, v in optimum.items()},
                                "remaining_tokens": round(remaining), "report": _short_report(law)}
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {"prior_weights": self._prior_weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("prior_weights"):
            self._prior_weights = dict(state["prior_weights"])


def law_params_per_domain(law: str, domains: list[str]) -> int:
    """Parameters the law `law` fits per evaluated domain when every domain is trained and evaluated
    (bimix: 4; laws with cross-domain terms grow with the number of domains)."""
    from mixtrain.laws import make_law

    probe = make_law(law)
    probe.train_domains = probe.eval_domains = tuple(domains)
    return -(-int(probe.n_params()) // len(domains))


def _short_report(law) -> dict[str, Any]:
    report = getattr(law, "report", None) or {}
    return {k: report[k] for k in ("law", "mean_r2", "mean_mre", "notes") if k in report}
