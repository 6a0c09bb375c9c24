"""The strategy registry: `STRATEGIES` (strategy name -> class) and `build_mixing(config)`.

Place in the flow: below every strategy module and the package (mixing/__init__.py fills
STRATEGIES with the package's classes), so a strategy that builds other strategies (schedule.py's
stages) imports the builder from here without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixtrain.mixing.base import MixingStrategy
from mixtrain.mixing.grouped import Grouped, within_strategy
from mixtrain.mixing.static import Manual

STRATEGIES: dict[str, type[MixingStrategy]] = {}  # filled by mixing/__init__.py (the one list of classes)
GROUP_KEYS = ("groups", "within", "within_args")  # the hierarchical-weights keys any mixing config may carry


def _import_class(target: str) -> type:
    module, _, attr = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"mixing._target_={target}: cannot import it ({e}); give package.module.Class") from None


@dataclass(frozen=True)
class Mixing:
    """A built `mixing` config: the one place the run's strategy name comes from."""

    name: str  # the run's label for its strategy (conf `name`): run_name, summary.json, checkpoints
    strategy: MixingStrategy
    refit: dict[str, Any]  # the controller's safety rules (conf `refit:` block; empty for static rules)
    config: dict[str, Any]  # every key but `name`: the mixing identity recorded in checkpoints


def build_mixing(config: Mapping[str, Any]) -> Mixing:
    """Build a `mixing` config (conf/mixing/<option>.yaml, resolved to plain Python).

    `strategy` picks the class from STRATEGIES (or `_target_: package.module.Class` names one
    outside the package); `name` is the run's label (default: the strategy); `refit` holds the
    controller's safety rules; `groups` (glob/prefix patterns), `within` (uniform | natural |
    temperature | entropy) and `within_args` make the strategy weigh groups of domains
    (grouped.py); every other key is an argument of the class.
    """
    config = dict(config)
    target = config.get("_target_")
    key = config.get("strategy")
    if target is not None:
        cls = _import_class(target)
    elif key in STRATEGIES:
        cls = STRATEGIES[key]
    else:
        raise ValueError(f"mixing.strategy={key!r} is not a mixing strategy; use one of {sorted(STRATEGIES)} "
                         "(conf/mixing/<strategy>.yaml) or name a class with mixing._target_")
    name = str(config.get("name") or getattr(cls, "name", key))
    arguments = {k: v for k, v in config.items() if k not in ("name", "strategy", "refit", "_target_", *GROUP_KEYS)}
    try:
        strategy = cls(**arguments)
    except TypeError as e:
        raise ValueError(f"mixing={name}: {e}; the keys of conf/mixing/<strategy>.yaml (but name, strategy, refit) "
                         f"are the arguments of {cls.__module__}.{cls.__qualname__}") from None
    groups = config.get("groups")
    weights = config.get("weights")
    if not groups and cls is Manual and isinstance(weights, Mapping) and any(
            c in str(k) for k in weights for c in "*?["):
        groups = list(weights)  # manual weights given per glob pattern: those are the groups
    if groups:  # hierarchical weights: the strategy weighs groups, `within` splits each among its domains
        if isinstance(groups, (str, bytes)) or not isinstance(groups, (list, tuple)):
            raise ValueError(f"mixing.groups must be a list of glob/prefix patterns, got {groups!r}")
        within = within_strategy(str(config.get("within") or "natural"), **dict(config.get("within_args") or {}))
        strategy = Grouped(strategy, list(groups), within)
    # without groups the group keys are defaults, not part of the identity (older checkpoints have none)
    identity = {k: v for k, v in config.items() if k != "name" and (groups or k not in GROUP_KEYS)}
    if groups:
        identity["groups"] = list(groups)
    return Mixing(name=name, strategy=strategy, refit=dict(config.get("refit") or {}), config=identity)
