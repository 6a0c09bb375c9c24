"""Mixing strategies: where the sampler's weights come from, and the registry train.py builds them by.

Place in the flow: shards.py/entropy.py/laws/ produce domain statistics and fitted laws ->
**mixing/** turns them into `dict[domain, float]` -> sampler.py draws by those weights; the
controller (mixing/refit.py, the one Lightning part) feeds training history back into
`update()` of the online strategies and schedules their weights in the sampler.

    base.py          DataContext, MixHistory, MixingStrategy (the interface), max_epochs cap
    static.py        uniform, natural, temperature, manual (+ the online strategies' prior)
    entropy.py       entropy (BiMix, training-free)
    law.py           law (optimum of a fitted law.json)
    ado.py odm.py doremi.py online_bimix.py   one online algorithm each
    schedule.py      schedule: stages of fixed weights or of any strategy, switched at given steps
    refit.py         MixingController: sampler accounting + refits (Lightning callback)
    outputs.py       StepOutput: the training step's typed outputs the controller reads

A strategy is chosen by the Hydra group `conf/mixing/`: the yaml's `strategy` is a key of
`STRATEGIES` (the class's own `name`), `name` is the run's label for it (e.g. law-bimix), the
other keys are the class's arguments (`refit:` is the controller's). Adding one touches four
places: a class, its entry below, a `conf/mixing/<strategy>.yaml`, a test. A class outside this
package can be named with `_target_: package.module.Class` instead of `strategy`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixtrain.mixing.ado import ADO
from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.doremi import DoReMi
from mixtrain.mixing.entropy import Entropy
from mixtrain.mixing.law import Law
from mixtrain.mixing.odm import ODM
from mixtrain.mixing.online_bimix import OnlineBiMix
from mixtrain.mixing.schedule import Schedule
from mixtrain.mixing.static import Manual, Natural, Temperature, Uniform

STRATEGIES: dict[str, type[MixingStrategy]] = {
    cls.name: cls
    for cls in (Uniform, Natural, Temperature, Manual, Entropy, Law, ADO, ODM, DoReMi, OnlineBiMix, Schedule)
}


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


__all__ = ["STRATEGIES", "DataContext", "MixHistory", "Mixing", "MixingStrategy", "build_mixing"]
