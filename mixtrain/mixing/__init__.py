"""Mixing strategies: where the sampler's weights come from, and the registry train.py builds them by.

Place in the flow: shards.py/entropy.py/laws/ produce domain statistics and fitted laws ->
**mixing/** turns them into `dict[domain, float]` -> sampler/ draws by those weights; the
controller (mixing/refit.py, the one Lightning part) feeds training history back into
`update()` of the online strategies and schedules their weights in the sampler.

    base.py          DataContext, MixHistory, MixingStrategy (the interface), max_epochs cap
    static.py        uniform, natural, temperature, manual (+ the online strategies' prior)
    entropy.py       entropy (BiMix, training-free)
    law.py           law (optimum of a fitted law.json)
    ado.py odm.py doremi.py online_bimix.py   one online algorithm each
    schedule.py      schedule: stages of fixed weights or of any strategy, switched at given steps
    groups.py        domain groups by glob/prefix; a group's weight split among its domains (pure)
    grouped.py       Grouped: any strategy over groups (`mixing.groups`, `mixing.within`)
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
from mixtrain.mixing.grouped import Grouped, within_strategy
from mixtrain.mixing.law import Law
from mixtrain.mixing.odm import ODM
from mixtrain.mixing.online_bimix import OnlineBiMix
from mixtrain.mixing.schedule import Schedule
from mixtrain.mixing.static import Manual, Natural, Temperature, Uniform

STRATEGIES: dict[str, type[MixingStrategy]] = {
    cls.name: cls
    for cls in (Uniform, Natural, Temperature, Manual, Entropy, Law, ADO, ODM, DoReMi, OnlineBiMix, Schedule)
}


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


__all__ = ["STRATEGIES", "DataContext", "MixHistory", "Mixing", "MixingStrategy", "build_mixing"]
