"""Any strategy at the level of domain groups: hundreds of domains, weights per group.

Place in the flow: conf `mixing.groups` / `mixing.within` -> build_mixing (strategy_registry.py)
wraps the configured strategy in **Grouped** -> per-domain weights for the sampler. Pure.

The inner strategy sees one pseudo-domain per group (named by its pattern): a DataContext whose
stats are the members' summed token counts, and a MixHistory whose weights and tokens are the
members' sums and whose losses are the members' means weighted by their realised shares. Its
group weights are split inside each group by the `within` rule (uniform, natural, temperature or
entropy, computed once on the real domains). `max_epochs` caps the per-domain weights (no domain
is read more than that many times), after the split. The resolved per-domain weights are logged
once, when the run's initial weights are made. Strategies that read per-domain shards or laws
themselves (entropy, law) cannot see a group: use them as the `within` rule or without groups.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.groups import expand, group_means, group_sums, resolve_groups
from mixtrain.weights import format_weights, normalize_weights

log = logging.getLogger(__name__)

WITHIN_RULES = ("uniform", "natural", "temperature", "entropy")  # registered names (strategy_registry.within_strategy)
PER_DOMAIN_ONLY = ("entropy", "law")  # strategies that read what only a real domain has
_SUMMED = ("weights", "old_weights", "new_weights", "realised_weights", "scheduled_weights", "tokens_seen")
_AVERAGED = ("train_loss", "val_loss", "excess_loss")


class Grouped(MixingStrategy):
    """Wraps `inner` so it weighs groups of domains (see the module docstring)."""

    def __init__(self, inner: MixingStrategy, groups: Sequence[str], within: MixingStrategy):
        if inner.name in PER_DOMAIN_ONLY:
            raise ValueError(
                f"mixing.groups with mixing={inner.name}: it reads per-domain shards or a per-domain law, which a "
                f"group does not have; use mixing.within={inner.name if inner.name == 'entropy' else 'natural'} "
                "inside groups weighed by another strategy, or drop mixing.groups")
        super().__init__(getattr(inner, "max_epochs", None))
        inner.max_epochs = None  # capped per domain here, after the split
        self.inner, self.patterns, self.within = inner, [str(p) for p in groups], within
        self.name = inner.name
        self.refit_every_n_steps = inner.refit_every_n_steps
        self.reference_model = inner.reference_model
        self.groups: dict[str, list[str]] = {}
        self.within_weights: dict[str, float] = {}

    def _resolve(self, ctx: DataContext) -> None:
        self.groups = resolve_groups(self.patterns, ctx.domains)
        self.within_weights = self.within.compute(ctx)

    def _group_context(self, ctx: DataContext) -> DataContext:
        tokens = ctx.num_train_tokens()
        stats = {g: {"num_train_tokens": sum(tokens[d] for d in members), "domains": list(members)}
                 for g, members in self.groups.items()}
        return DataContext(ctx.data_dir, list(self.groups), stats, ctx.budget_tokens, ctx.global_batch_tokens,
                           ctx.max_steps, ctx.writes_caches)

    def _expand(self, group_weights: Mapping[str, float]) -> dict[str, float]:
        g = normalize_weights(group_weights, list(self.groups), what=f"{self.name} group weights")
        return normalize_weights(expand(g, self.groups, self.within_weights))

    def initial_weights(self, ctx: DataContext) -> dict[str, float]:
        self._resolve(ctx)
        weights = self.apply_cap(self._expand(self.inner.initial_weights(self._group_context(ctx))), ctx)
        sizes = ", ".join(f"{g}: {len(m)}" for g, m in self.groups.items())
        log.info("mixing %s over groups (%s), split within by %s; per-domain weights: %s", self.name, sizes,
                 self.within.name, format_weights(weights))
        return weights

    def _group_values(self, key: str, values: Any, shares: Mapping[str, float]) -> Any:
        if not isinstance(values, Mapping) or not self.groups:
            return values
        if key in _SUMMED:
            return group_sums({d: float(values.get(d, 0.0)) for g in self.groups.values() for d in g}, self.groups)
        if key in _AVERAGED:
            return group_means(values, self.groups, shares)
        return values

    def group_history(self, history: MixHistory) -> MixHistory:
        shares = history.weights

        def grouped(key: str, values: Any) -> Any:
            return None if values is None else self._group_values(key, values, shares)

        records = [{k: grouped(k, v) for k, v in r.items()} for r in history.records]
        return MixHistory(
            step=history.step, max_steps=history.max_steps, weights=grouped("weights", history.weights),
            tokens_seen={g: int(round(v)) for g, v in grouped("tokens_seen", history.tokens_seen).items()},
            train_loss=grouped("train_loss", history.train_loss), val_loss=grouped("val_loss", history.val_loss),
            records=records, scheduled_weights=grouped("scheduled_weights", history.scheduled_weights),
            excess_loss=grouped("excess_loss", history.excess_loss),
        )

    def update(self, history: MixHistory) -> dict[str, float] | None:
        proposal = self.inner.update(self.group_history(history))
        if proposal is None:
            return None
        if not all(math.isfinite(float(v)) for v in proposal.values()):
            raise ValueError(f"non-finite group weights {proposal}")
        return self._expand(proposal)

    @property
    def last_fit_report(self) -> Any:
        """The inner strategy's report of its last update (refits.jsonl "fit")."""
        return getattr(self.inner, "last_fit_report", None)

    def refit_due(self, step: int) -> bool:
        return self.inner.refit_due(step)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "groups": self.patterns, "within": self.within.name}
