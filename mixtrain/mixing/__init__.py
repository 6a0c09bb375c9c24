"""Mixing strategies: where the sampler's weights come from, and the registry mixtrain/train/run.py
builds them by.

Place in the flow: mixtrain/prepare/ (shards.py, domain_entropy.py) and laws/ produce domain
statistics and fitted laws -> **mixing/** turns them into `dict[domain, float]` -> sampler/ draws by
those weights; the controller (mixtrain/train/mixing_controller.py, a Lightning callback outside
this package) feeds training history back into `update()` of the online strategies and schedules
their weights in the sampler, reading the training step's typed outputs (mixtrain/train/step_output.py).
Pure strategies: no torch, Lightning, Hydra or rank queries (the caller says which process writes
caches: `DataContext.writes_caches`).

    base.py              DataContext, MixHistory, MixingStrategy (the interface), max_epochs cap
    static.py            uniform, natural, temperature, manual (+ the online strategies' prior)
    entropy_rule.py      entropy (BiMix, training-free)
    fitted_law.py        law (optimum of a fitted law.json)
    chameleon.py         chameleon (leverage scores of domain embeddings; embed/ writes them)
    domain2vec.py        domain2vec (meta-domain vectors matched to a target's; embed/ + cluster/)
    domain_vectors.py    domain means / meta-domain histograms / target vectors read from embeddings
    ado.py odm.py doremi.py online_bimix.py   one online algorithm each
    doge.py tikmix.py    gradient strategies: DoGE, TiKMiX-D, on the gradient probe's inner products
    gradient_probe.py    ProbeSpec (what a gradient strategy asks for), ProbeResult (what it gets), sketch error bound
    stages.py            schedule: stages of fixed weights or of any strategy, switched at given steps
    strategy_registry.py STRATEGIES, @register_strategy, build_mixing (below every strategy: stages.py
                         builds its stages through it)
    groups.py            domain groups by glob/prefix; a group's weight split among its domains (pure)
    grouped.py           Grouped: any strategy over groups (`mixing.groups`, `mixing.within`)

A strategy is chosen by the Hydra group `conf/mixing/`: the yaml's `strategy` is a key of
`STRATEGIES` (the class's own `name`), `name` is the run's label for it (e.g. law-bimix), the
other keys are the class's arguments (`refit:` is the controller's). A class registers itself
with `@register_strategy` in its own module, and importing this package imports every module in
it, so adding one touches three places: its module, `conf/mixing/<strategy>.yaml`, a test. A
class outside this package can be named with `_target_: package.module.Class` instead of `strategy`.
"""

from __future__ import annotations

import importlib
import pkgutil

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.strategy_registry import STRATEGIES, Mixing, build_mixing, register_strategy

# every module of the package, so each strategy class registers itself (@register_strategy): no list to keep
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

__all__ = ["STRATEGIES", "DataContext", "MixHistory", "Mixing", "MixingStrategy", "build_mixing", "register_strategy"]
