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
    registry.py      STRATEGIES and build_mixing (below every strategy: schedule.py builds its stages)
    schedule.py      schedule: stages of fixed weights or of any strategy, switched at given steps
    groups.py        domain groups by glob/prefix; a group's weight split among its domains (pure)
    grouped.py       Grouped: any strategy over groups (`mixing.groups`, `mixing.within`)
    refit.py         MixingController: sampler accounting + refits (Lightning callback)
    outputs.py       StepOutput: the training step's typed outputs the controller reads

A strategy is chosen by the Hydra group `conf/mixing/`: the yaml's `strategy` is a key of
`STRATEGIES` (the class's own `name`), `name` is the run's label for it (e.g. law-bimix), the
other keys are the class's arguments (`refit:` is the controller's). Adding one touches four
places: a class, its entry below (it fills registry.py's STRATEGIES), a `conf/mixing/<strategy>.yaml`,
a test. A class outside this package can be named with `_target_: package.module.Class` instead of `strategy`.
"""

from __future__ import annotations

from mixtrain.mixing.ado import ADO
from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.doremi import DoReMi
from mixtrain.mixing.entropy_rule import Entropy
from mixtrain.mixing.grouped import Grouped, within_strategy
from mixtrain.mixing.fitted_law import Law
from mixtrain.mixing.odm import ODM
from mixtrain.mixing.online_bimix import OnlineBiMix
from mixtrain.mixing.strategy_registry import STRATEGIES, Mixing, build_mixing
from mixtrain.mixing.stages import Schedule
from mixtrain.mixing.static import Manual, Natural, Temperature, Uniform

STRATEGIES.update({
    cls.name: cls
    for cls in (Uniform, Natural, Temperature, Manual, Entropy, Law, ADO, ODM, DoReMi, OnlineBiMix, Schedule)
})


__all__ = ["STRATEGIES", "DataContext", "MixHistory", "Mixing", "MixingStrategy", "build_mixing"]
