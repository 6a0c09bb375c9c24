"""Static mixing rules: uniform, natural, temperature and manual weights.

Place in the flow: mixtrain/prepare/shards.py's stats.json (`DataContext`) -> **static.py** -> `dict[domain,
float]` -> sampler/, once per run (never refitted). `prior_weights` is the start of the
online strategies (ado.py, online_bimix.py). Pure: no torch, Lightning or Hydra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mixtrain.errors import ConfigError, MissingPathError
from mixtrain.mixing.base import DataContext, MixingStrategy
from mixtrain.mixing.strategy_registry import register_strategy
from mixtrain.weights import normalize_weights


@register_strategy
class Uniform(MixingStrategy):
    name = "uniform"

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: 1.0 for d in ctx.domains}


@register_strategy
class Natural(MixingStrategy):
    """Proportional to each domain's training tokens."""

    name = "natural"

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: float(n) for d, n in ctx.num_train_tokens().items()}


@register_strategy
class Temperature(MixingStrategy):
    """r_i ∝ n_i^(1/T): T=1 is natural, T→∞ uniform (mT5/UniMax style)."""

    name = "temperature"

    def __init__(self, temperature: float = 3.0, max_epochs: float | None = None):
        super().__init__(max_epochs)
        if not temperature > 0:
            raise ConfigError(f"mixing.temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: float(n) ** (1.0 / self.temperature) for d, n in ctx.num_train_tokens().items()}


@register_strategy
class Manual(MixingStrategy):
    """Weights from the config (`weights: {domain: w}`) or from a YAML file with a `weights` key."""

    name = "manual"

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        weights_file: str | None = None,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if (weights is None) == (weights_file is None):
            raise ConfigError(
                "mixing=manual needs exactly one of mixing.weights={domain: w, ...} or mixing.weights_file=FILE.yaml"
            )
        self.weights = dict(weights) if weights is not None else None
        self.weights_file = weights_file

    def compute(self, ctx: DataContext) -> dict[str, float]:
        if self.weights is not None:
            return self.weights
        return read_weights_file(self.weights_file)


def read_weights_file(path: str | os.PathLike) -> dict[str, float]:
    """Read a weights.yaml: `weights: {domain: w}` (as `python -m mixtrain.fitting.fit --optimize` writes it,
    other top-level keys ignored) or a plain `{domain: w}` mapping (every value a number)."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise MissingPathError(f"mixing.weights_file={path} does not exist; check the path (relative paths are "
                               "read from the directory you run the command in)") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"mixing.weights_file={path} cannot be read as YAML: {' '.join(str(e).split())}") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]
    elif not (isinstance(data, dict) and data and all(isinstance(v, (int, float)) for v in data.values())):
        raise ConfigError(f"mixing.weights_file={path} must hold `weights: {{domain: weight, ...}}` or a plain "
                          "`{domain: weight, ...}` mapping (see README, 'The weights file')")
    return {str(k): v for k, v in data.items()}


def prior_weights(kind: str, temperature: float, ctx: DataContext) -> dict[str, float]:
    """The static rule an online strategy starts from: uniform, natural or temperature."""
    rule = {"uniform": Uniform(), "natural": Natural(), "temperature": Temperature(temperature)}
    if kind not in rule:
        raise ConfigError(f"mixing.prior must be uniform, natural or temperature, got {kind!r}")
    return normalize_weights(rule[kind].compute(ctx), ctx.domains, what="prior weights")

