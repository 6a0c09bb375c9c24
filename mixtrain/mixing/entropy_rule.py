"""Entropy strategy (BiMix, training-free): weights from a per-domain entropy of the tokens.

Place in the flow: mixtrain/prepare/domain_entropy.py (SE/CE/JE/VNE, cached in stats.json) -> **entropy_rule.py**
(this strategy) -> sampler/, once per run. Pure: no torch, Lightning, Hydra or rank queries (whether
this process writes the cache is `DataContext.writes_caches`, set by the caller).
"""

from __future__ import annotations

from mixtrain.errors import ConfigError
from mixtrain.mixing.base import DataContext, MixingStrategy
from mixtrain.mixing.strategy_registry import register_strategy


@register_strategy
class Entropy(MixingStrategy):
    """BiMix training-free weights from a per-domain entropy (se, ce, je or vne)."""

    name = "entropy"
    MEASURES = ("se", "ce", "je", "vne")

    def __init__(
        self,
        measure: str = "ce",
        normalization: str = "proportional",
        temperature: float = 1.0,
        sample_tokens: int | None = 2_000_000,
        seed: int = 0,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if measure not in self.MEASURES:
            raise ConfigError(f"mixing.measure={measure!r} is not a measure: use one of {', '.join(self.MEASURES)} "
                              "(e.g. mixing.measure=ce)")
        self.measure = measure
        self.normalization = normalization
        self.temperature = float(temperature)
        self.sample_tokens = sample_tokens
        self.seed = seed
        self.entropies: dict[str, float] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        from mixtrain.prepare.domain_entropy import entropy_weights, load_or_compute_entropies

        # Only one process writes the cache into stats.json (the caller's `writes_caches`: global rank 0);
        # every process gets the same numbers.
        table = load_or_compute_entropies(
            ctx.data_dir, domains=ctx.domains, sample_tokens=self.sample_tokens, seed=self.seed,
            write=ctx.writes_caches,
        )
        self.entropies = {d: float(table[d][self.measure]) for d in ctx.domains}
        return entropy_weights(self.entropies, normalization=self.normalization, temperature=self.temperature)

