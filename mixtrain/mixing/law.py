"""Law strategy: the optimum of a fitted mixing law (law.json) at a target step.

Place in the flow: `python -m mixtrain.fit` -> law.json (mixtrain/laws/) -> **law.py** ->
sampler/, once per run. Pure: no torch, Lightning or Hydra.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mixtrain.mixing.base import DataContext, MixingStrategy

log = logging.getLogger(__name__)


class Law(MixingStrategy):
    """The optimum of a fitted mixing law (law.json from `python -m mixtrain.fit`) at a target step."""

    name = "law"

    def __init__(
        self,
        law_file: str | None = None,
        step: int | None = None,
        importance: Mapping[str, float] | None = None,
        min_weight: float = 0.0,
        max_epochs: float | None = None,
        support_margin: float | None = 0.05,
        trust_radius: float | None = 0.25,
        seed: int = 0,
    ):
        super().__init__(max_epochs)
        if not law_file:
            raise ValueError("mixing=law needs mixing.law_file=law.json (from `python -m mixtrain.fit ... --out law.json`)")
        self.law_file = law_file
        self.step = step
        self.importance = dict(importance) if importance else None
        self.min_weight = float(min_weight)
        # the optimum stays inside the proxies' support unless these are null (mixtrain/laws/support.py)
        self.support_margin = None if support_margin is None else float(support_margin)
        self.trust_radius = None if trust_radius is None else float(trust_radius)
        self.seed = int(seed)

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
        opt = law.solve(step, importance=self.importance, min_weight=self.min_weight,
                        support_margin=self.support_margin, trust_radius=self.trust_radius, seed=self.seed)
        log.info("mixing=law: optimum of %s at step %s; %s", self.law_file, step, "; ".join(opt.lines()))
        return opt.weights

