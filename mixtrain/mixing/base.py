"""Mixing base types: the strategy interface, what it is told, and the epoch cap.

Place in the flow: mixtrain/prepare/shards.py (stats.json) and laws/ -> `DataContext` -> a strategy
in this package (`initial_weights`) -> sampler/; during training the controller
(mixtrain/train/mixing_controller.py) hands a `MixHistory` to `update()` of online strategies.
Pure: no torch, Lightning, Hydra or rank queries (the caller says which process writes caches:
`DataContext.writes_caches`).

Interface:
    initial_weights(ctx: DataContext) -> weights      called once per run (every rank, same result)
    refit_every_n_steps: int | None                   None: static, never updated
    refit_due(step) -> bool                           refit after this optimizer step? (every n steps)
    update(history: MixHistory) -> weights | None     new weights, or None to keep the current ones
    state_dict() / load_state_dict()                  saved in the checkpoint (online strategies)
    reference_model: str | None                       a frozen model the training step must also run
                                                      (DoReMi per-token excess); None: none (default)
    gradient_probe: ProbeSpec | None                  sketched gradient inner products at each refit
                                                      (MixHistory.probe; mixing/gradient_probe.py)
Every strategy may cap epochs per domain (`max_epochs`): no domain is planned to be read more
than that many times over the run's token budget; the surplus goes to the other domains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mixtrain.weights import normalize_weights


@dataclass(frozen=True)
class DataContext:
    """What a strategy may know about the prepared data and the run's budget."""

    data_dir: str
    domains: list[str]
    stats: dict[str, dict[str, Any]]  # DIR/<domain>/stats.json per domain
    budget_tokens: int | None = None  # planned training tokens of the whole run (all ranks)
    global_batch_tokens: int | None = None
    max_steps: int | None = None
    # this process may write shared caches (the entropy measures in stats.json); False on every rank
    # but global rank 0, which the caller (mixtrain/train/run.py) decides: a strategy asks no rank
    writes_caches: bool = True

    def num_train_tokens(self) -> dict[str, int]:
        return {d: int(self.stats[d]["num_train_tokens"]) for d in self.domains}


@dataclass
class MixHistory:
    """What the controller (mixtrain/train/mixing_controller.py) hands an online strategy: all inputs
    identical on every rank."""

    step: int
    max_steps: int | None
    # realised per-domain shares of the samples since the last refit (counted from the stream):
    # the mixture the losses below were actually drawn under, not what was scheduled (a change
    # takes effect `weight_lag_batches` later, and may be replaced before it does)
    weights: dict[str, float]
    tokens_seen: dict[str, int]  # training tokens consumed per domain, all ranks
    train_loss: dict[str, float]  # mean per-domain training loss since the last refit (nan: no sample)
    val_loss: dict[str, float] | None = None  # latest per-domain validation loss, if any
    # full record since the start of the run: one dict per earlier refit, {"step", "old_weights",
    # "new_weights" (None if kept), "tokens_seen", "train_loss", "val_loss"}; laws refit on it
    records: list[dict[str, Any]] = field(default_factory=list)
    # the latest scheduled weights (what the sampler will draw by once pending changes land);
    # the base for a strategy's next proposal. None when the caller has no sampler (tests).
    scheduled_weights: dict[str, float] | None = None
    # mean over the domain's training tokens since the last refit of max(loss - reference model's
    # loss, 0) on the same token (nan: no token of d); None unless the strategy declared a
    # `reference_model` (the LightningModule runs it next to the trained model)
    excess_loss: dict[str, float] | None = None
    # inner products of sketched per-domain and target gradients at this step (mixing/gradient_probe.py
    # ProbeResult); None unless the strategy declared a `gradient_probe` (train/grad_probe.py measures it)
    probe: Any = None


def cap_epochs(
    weights: Mapping[str, float], num_tokens: Mapping[str, int], budget_tokens: int, max_epochs: float
) -> dict[str, float]:
    """Lower any weight that would read a domain more than `max_epochs` times over the budget.

    The cap of domain d is max_epochs * num_tokens[d] / budget_tokens; the removed mass is
    given to the uncapped domains in proportion to their weights (repeated until stable).
    Raises ValueError if even reading every domain `max_epochs` times cannot fill the budget.
    """
    w = normalize_weights(weights, list(weights))
    caps = {d: max_epochs * num_tokens[d] / budget_tokens for d in w}
    if sum(min(1.0, c) for c in caps.values()) < 1.0 - 1e-12:
        raise ValueError(
            f"max_epochs={max_epochs}: the data holds {sum(num_tokens.values()):,} tokens, less than the budget "
            f"{budget_tokens:,} / {max_epochs} epochs; raise max_epochs or train for fewer steps"
        )
    fixed: dict[str, float] = {}
    for _ in range(len(w) + 1):
        free = {d: v for d, v in w.items() if d not in fixed}
        mass = 1.0 - sum(fixed.values())
        total = sum(free.values())
        scaled = {d: (v / total * mass if total > 0 else mass / len(free)) for d, v in free.items()}
        over = {d for d, v in scaled.items() if v > caps[d] + 1e-15}
        if not over:
            return normalize_weights({**fixed, **scaled}, list(w))
        for d in over:
            fixed[d] = caps[d]
    raise AssertionError("unreachable: every pass fixes at least one domain")


def cap_remaining_epochs(
    weights: Mapping[str, float], num_tokens: Mapping[str, int], tokens_seen: Mapping[str, int],
    budget_tokens: int, max_epochs: float,
) -> dict[str, float]:
    """`cap_epochs` for the rest of a run: what is left of each domain's `max_epochs` allowance
    (max_epochs * num_tokens - tokens already seen) over what is left of the budget."""
    remaining = budget_tokens - sum(int(tokens_seen[d]) for d in weights)
    if remaining <= 0:
        return normalize_weights(weights, list(weights))  # the budget is spent: nothing left to cap
    allowance = {d: max(max_epochs * num_tokens[d] - int(tokens_seen[d]), 0.0) for d in weights}
    return cap_epochs(weights, allowance, remaining, 1.0)


class MixingStrategy:
    """Base class: a static strategy only implements `compute(ctx)`."""

    name = "base"
    refit_every_n_steps: int | None = None
    # path of a frozen model whose per-token losses the training step computes next to the trained
    # model's (MixHistory.excess_loss); mixtrain/train/run.py hands it to the LightningModule at construction
    reference_model: str | None = None
    # a mixing/gradient_probe.py ProbeSpec: the controller measures per-domain and target gradients at every
    # refit (train/grad_probe.py) and hands their inner products over as MixHistory.probe (DoGE, TiKMiX)
    gradient_probe: Any = None

    def __init__(self, max_epochs: float | None = None):
        self.max_epochs = max_epochs

    def compute(self, ctx: DataContext) -> dict[str, float]:
        raise NotImplementedError

    def initial_weights(self, ctx: DataContext) -> dict[str, float]:
        weights = normalize_weights(self.compute(ctx), ctx.domains, what=f"{self.name} weights")
        return self.apply_cap(weights, ctx)

    def apply_cap(self, weights: dict[str, float], ctx: DataContext) -> dict[str, float]:
        if self.max_epochs is None:
            return weights
        if not ctx.budget_tokens:
            raise ValueError(f"mixing.max_epochs needs a token budget: set trainer.max_steps ({self.name})")
        return cap_epochs(weights, ctx.num_train_tokens(), ctx.budget_tokens, self.max_epochs)

    def refit_due(self, step: int) -> bool:
        """Whether the controller refits after optimizer step `step`: every `refit_every_n_steps`."""
        every = int(self.refit_every_n_steps or 0)
        return every > 0 and step > 0 and step % every == 0

    def horizon_problems(self, max_steps: int | None) -> list[str]:
        """What of this strategy's plan lies at or beyond the run's last step (and so never happens):
        mixtrain/train/run.py prints these as warnings before training."""
        every = int(self.refit_every_n_steps or 0)
        if not (max_steps and max_steps > 0) or every <= 0 or every < max_steps:
            return []
        return [f"mixing.refit_every_n_steps={every} is not below trainer.max_steps={max_steps}: {self.name} is never "
                f"refitted and trains on its initial weights; lower mixing.refit_every_n_steps or raise trainer.max_steps"]

    def update(self, history: MixHistory) -> dict[str, float] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """Settings for logs and reports."""
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}


def domain_stats_context(
    data_dir: str, domains: Sequence[str], stats: Mapping[str, Mapping[str, Any]], *,
    max_steps: int | None, global_batch_tokens: int | None, writes_caches: bool = True,
) -> DataContext:
    """The DataContext of a run: its training domains' stats and its planned token budget.
    `writes_caches`: this process may write shared caches (False on every rank but global rank 0)."""
    budget = max_steps * global_batch_tokens if (max_steps and global_batch_tokens) else None
    return DataContext(
        data_dir=str(data_dir), domains=list(domains), stats={d: dict(stats[d]) for d in domains},
        budget_tokens=budget, global_batch_tokens=global_batch_tokens, max_steps=max_steps,
        writes_caches=bool(writes_caches),
    )


# input checks shared by the online strategies (a refit on bad inputs keeps the weights)
def finite_or_nan(values: Mapping[str, float] | None) -> bool:
    """True if every value is finite or NaN ("not sampled"); False on +-inf or a non-number."""
    if values is None:
        return True
    for v in values.values():
        try:
            f = float(v)
        except (TypeError, ValueError):
            return False
        if math.isinf(f):
            return False
    return True


def tokens_ok(tokens: Mapping[str, float], domains: Sequence[str]) -> bool:
    try:
        return all(math.isfinite(float(tokens[d])) and float(tokens[d]) >= 0 for d in domains)
    except (KeyError, TypeError, ValueError):
        return False
