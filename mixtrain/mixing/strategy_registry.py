"""The strategy registry: `STRATEGIES` (strategy name -> class), the `@register_strategy` class
decorator that fills it, and `build_mixing(config)`.

Place in the flow: below every strategy module. Each strategy class registers itself in its own
module (`@register_strategy`, under its `name`); importing the package (mixing/__init__.py)
imports every module in it, so STRATEGIES holds them all before anyone reads it. This module
imports only base.py and grouped.py, so a strategy module (and stages.py, which builds its
stages' strategies here) imports the decorator and the builder without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mixtrain.mixing.base import MixingStrategy
from mixtrain.mixing.grouped import WITHIN_RULES, Grouped

STRATEGIES: dict[str, type[MixingStrategy]] = {}  # filled by @register_strategy as the package's modules import
GROUP_KEYS = ("groups", "within", "within_args")  # the hierarchical-weights keys any mixing config may carry

Strategy = TypeVar("Strategy", bound=type)


def register_strategy(cls: Strategy) -> Strategy:
    """Class decorator: `cls` becomes `mixing.strategy=<cls.name>` (conf/mixing/<name>.yaml).

    The class must subclass MixingStrategy and set its own `name`; a second class under a name
    already taken is refused (re-importing the same class, e.g. a module reload, is not).
    """
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, MixingStrategy)):
        raise TypeError(f"@register_strategy on {where}: a mixing strategy subclasses "
                        "mixtrain.mixing.base.MixingStrategy")
    name = vars(cls).get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"@register_strategy on {where}: give the class its own `name = \"...\"` "
                        "(the `strategy` key of conf/mixing/<name>.yaml)")
    held = STRATEGIES.get(name)
    if held is not None and (held.__module__, held.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"@register_strategy on {where}: mixing strategy {name!r} is already "
                         f"{held.__module__}.{held.__qualname__}; give the class another name")
    STRATEGIES[name] = cls
    return cls


def within_strategy(rule: str, **arguments: Any) -> MixingStrategy:
    """The static strategy that splits a group's weight among its domains (grouped.py's `within`)."""
    if rule not in WITHIN_RULES:
        raise ValueError(f"mixing.within={rule!r}: use one of {list(WITHIN_RULES)}")
    try:
        return STRATEGIES[rule](**arguments)
    except TypeError as e:
        raise ValueError(f"mixing.within_args for within={rule}: {e}") from None


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
    # manual weights keyed by glob patterns (the registered manual class, not a subclass)
    if not groups and cls is STRATEGIES.get("manual") and isinstance(weights, Mapping) and any(
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
