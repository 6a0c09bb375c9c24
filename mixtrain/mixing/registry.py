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

STRATEGIES: dict[str, type[MixingStrategy]] = {}  # filled by mixing/__init__.py (the one list of classes)


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
    controller's safety rules; every other key is an argument of the class.
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
    arguments = {k: v for k, v in config.items() if k not in ("name", "strategy", "refit", "_target_")}
    try:
        strategy = cls(**arguments)
    except TypeError as e:
        raise ValueError(f"mixing={name}: {e}; the keys of conf/mixing/<strategy>.yaml (but name, strategy, refit) "
                         f"are the arguments of {cls.__module__}.{cls.__qualname__}") from None
    identity = {k: v for k, v in config.items() if k != "name"}
    return Mixing(name=name, strategy=strategy, refit=dict(config.get("refit") or {}), config=identity)
