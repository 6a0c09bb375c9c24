"""Law strategy: the mixture a fitted mixing law (law.json) proposes for a target step, by the same
optimiser and defaults as `python -m mixtrain.fitting.fit --optimize` (sampled + bootstrap, laws/optim/sampled.py;
`optimizer: slsqp` for the former gradient optimum), so weights.yaml and mixing=law agree.

Place in the flow: `python -m mixtrain.fitting.fit` -> law.json (mixtrain/laws/) -> **fitted_law.py** ->
sampler/, once per run. Pure: no torch, Lightning or Hydra.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mixtrain.mixing.base import DataContext, MixingStrategy
from mixtrain.mixing.strategy_registry import register_strategy

log = logging.getLogger(__name__)


@register_strategy
class Law(MixingStrategy):
    """The optimum of a fitted mixing law (law.json from `python -m mixtrain.fitting.fit`) at a target step."""

    name = "law"

    def __init__(
        self,
        law_file: str | None = None,
        step: int | None = None,
        importance: Mapping[str, float] | None = None,
        min_weight: float = 0.0,
        max_epochs: float | None = None,
        support_margin: float | None = 0.05,
        trust_radius: float | None = None,
        seed: int = 0,
        optimizer: str = "sampled",
        candidates: int | None = None,
        bootstrap: int | None = None,
        support_cap: float | None = None,
        support_floor: float | None = None,
        force_proposal: bool = False,
        force_optimize: bool = False,
        repetition: bool = True,
    ):
        super().__init__(max_epochs)
        if not law_file:
            raise ValueError("mixing=law needs mixing.law_file=law.json (from `python -m mixtrain.fitting.fit ... --out law.json`)")
        self.law_file = law_file
        self.step = step
        self.importance = dict(importance) if importance else None
        self.min_weight = float(min_weight)
        # the optimum stays inside the proxies' support unless these are null (mixtrain/laws/support.py)
        self.support_margin = None if support_margin is None else float(support_margin)
        self.trust_radius = None if trust_radius is None else float(trust_radius)
        self.seed = int(seed)
        if optimizer not in ("sampled", "slsqp"):
            raise ValueError(f"mixing.optimizer={optimizer!r}: use 'sampled' (default) or 'slsqp'")
        self.optimizer = optimizer
        # None: the fit CLI's defaults (laws/optim/sampled.py)
        self.sampled = {k: v for k, v in dict(candidates=candidates, bootstrap=bootstrap, support_cap=support_cap,
                                               support_floor=support_floor).items() if v is not None}
        self.sampled.update(force_proposal=bool(force_proposal), force_optimize=bool(force_optimize))
        self.repetition = bool(repetition)

    def compute(self, ctx: DataContext) -> dict[str, float]:
        from mixtrain.laws import load_law

        law = load_law(self.law_file)
        step = self.step if self.step is not None else ctx.max_steps
        if step is None:
            raise ValueError("mixing=law needs mixing.step (the target step) or trainer.max_steps")
        law_domains = list(law.train_domains)
        if sorted(law_domains) != sorted(ctx.domains):
            raise ValueError(
                f"law {self.law_file} was fitted on domains {law_domains} but this run trains on {ctx.domains}; "
                "fit the law on runs over the same domains"
            )
        if self.optimizer == "slsqp":
            from mixtrain.laws.optim.slsqp import solve

            radius = 0.25 if self.trust_radius is None else self.trust_radius
            opt = solve(law, step, importance=self.importance, min_weight=self.min_weight,
                        support_margin=self.support_margin, trust_radius=radius, seed=self.seed)
        else:
            from mixtrain.laws.optim.sampled import propose
            from mixtrain.laws.repetition import Repetition

            # what `mixtrain.fitting.fit --optimize --data-dir DIR` also uses: the prepared data's unique tokens are the
            # natural mixture (a comparator and candidate) and, with this run's budget at the target step, how often
            # each domain would be repeated (laws/repetition.py)
            counts = {d: float(n) for d, n in ctx.num_train_tokens().items()}
            natural = counts if all(v > 0 for v in counts.values()) else None
            budget = step * ctx.global_batch_tokens if ctx.global_batch_tokens else None
            rep = Repetition.build(law_domains, counts, budget) if self.repetition and natural and budget else None
            opt = propose(law, step, self.importance, self.min_weight, trust_radius=self.trust_radius, seed=self.seed,
                          natural=natural, repetition=rep, **self.sampled)
            if rep is not None:
                log.info("mixing=law: %s", "; ".join(rep.lines(opt.weights)))
        log.info("mixing=law: %s optimum of %s at step %s; %s", self.optimizer, self.law_file, step, "; ".join(opt.lines()))
        return opt.weights

