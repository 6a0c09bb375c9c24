"""Stage schedules / curricula: fixed weights or any strategy per stage, switched at given steps.

Place in the flow: like every strategy, between the prepared data and the sampler: `compute(ctx)`
computes every stage's starting weights (stage 0's go to the sampler); the controller
(mixtrain/train/mixing_controller.py) asks `refit_due(step)` after every optimizer step and calls
`update()` at each stage's step (the switch) and at the refit steps of an online strategy wrapped
by the current stage. Pure: no torch, Lightning or Hydra.

    mixing=schedule mixing.stages='[{step: 0, weights: {code: 0.7, prose: 0.3}},
                                    {step: 500, mixing: {strategy: natural}},
                                    {step: 800, mixing: {strategy: odm, refit_every_n_steps: 10}}]'

A stage is `step` (optimizer steps done when it starts; the first stage starts at 0, steps
strictly increase) and exactly one of `weights` ({domain: weight}) or `mixing` (a mixing config
built through the registry: `strategy` + the class's arguments, defaults of the class, not of
its yaml). A stage's weights are scheduled in the sampler at its step and govern batches from
the sampler's weight lag on, like every refit (`effective_batch` in refits.jsonl). An online
strategy wrapped by a stage is refitted at its own `refit_every_n_steps` (absolute steps) while
its stage lasts, with its state kept in the checkpoint. The yaml's `refit:` rules (floor,
max_change, smoothing) apply to every change, stage switches included; `max_epochs` caps them.
Exact resume: the stage in force, every stage's weights and the wrapped strategies' states are
in `state_dict()`, so a resume before or after a stage boundary replays the same schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.strategy_registry import build_mixing, register_strategy  # builds its stages' strategies
from mixtrain.weights import normalize_weights


@register_strategy
class Schedule(MixingStrategy):
    """A list of (step, weights | strategy) stages; see the module docstring."""

    name = "schedule"

    def __init__(self, stages: Sequence[Mapping[str, Any]] | None = None, max_epochs: float | None = None):
        super().__init__(max_epochs)
        if not stages:
            raise ValueError("mixing=schedule needs mixing.stages=[{step: 0, weights: {...}} or {step: 0, mixing: "
                             "{strategy: natural}}, {step: N, ...}, ...]")
        self.stages: list[dict[str, Any]] = []
        self._inner: list[MixingStrategy | None] = []
        for i, stage in enumerate(stages):
            if not isinstance(stage, Mapping) or "step" not in stage:
                raise ValueError(f"mixing.stages[{i}] must be a mapping with a `step`, got {stage!r}")
            unknown = sorted(set(stage) - {"step", "weights", "mixing"})
            if unknown:
                raise ValueError(f"mixing.stages[{i}]: unknown key(s) {unknown}; a stage has step and weights or mixing")
            if (stage.get("weights") is None) == (stage.get("mixing") is None):
                raise ValueError(f"mixing.stages[{i}] needs exactly one of weights={{domain: w}} or mixing={{strategy: ...}}")
            step = stage["step"]
            if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                raise ValueError(f"mixing.stages[{i}].step must be an integer >= 0, got {step!r}")
            if i == 0 and step != 0:
                raise ValueError(f"mixing.stages[0].step must be 0 (the weights the run starts with), got {step}")
            if i > 0 and step <= self.stages[-1]["step"]:
                raise ValueError(f"mixing.stages[{i}].step={step} must be after stages[{i - 1}].step="
                                 f"{self.stages[-1]['step']} (stages in increasing step order)")
            weights = None if stage.get("weights") is None else {str(k): float(v) for k, v in stage["weights"].items()}
            mixing = None if stage.get("mixing") is None else dict(stage["mixing"])
            if mixing is not None and (mixing.get("strategy") == self.name or mixing.get("stages") is not None):
                raise ValueError(f"mixing.stages[{i}].mixing: a schedule cannot wrap a schedule; list its stages here")
            self.stages.append({"step": step, "weights": weights, "mixing": mixing})
            self._inner.append(None if mixing is None else build_mixing(mixing).strategy)
        # a wrapped strategy's frozen reference model (DoReMi per token) runs for the whole run:
        # the module is built once, before any stage starts
        references = sorted({inner.reference_model for inner in self._inner if inner is not None and inner.reference_model})
        if len(references) > 1:
            raise ValueError(f"mixing.stages: stages name different reference models {references}; one run holds one "
                             "frozen reference model: give every stage the same mixing.reference_model")
        self.reference_model = references[0] if references else None
        intervals = [s["step"] for s in self.stages[1:]] + [
            int(inner.refit_every_n_steps) for inner in self._inner if inner is not None and inner.refit_every_n_steps]
        self.refit_every_n_steps = math.gcd(*intervals) if intervals else None  # None: one static stage
        self._stage = 0  # the stage whose weights were scheduled last
        self._stage_weights: list[dict[str, float]] | None = None
        self.last_fit_report: dict[str, Any] | None = None

    def horizon_problems(self, max_steps: int | None) -> list[str]:
        if not (max_steps and max_steps > 0):
            return []
        late = [(i, s["step"]) for i, s in enumerate(self.stages) if i > 0 and s["step"] >= max_steps]
        out = [f"mixing.stages[{i}].step={step} is not below trainer.max_steps={max_steps}: that stage never runs; "
               f"move it before step {max_steps} or raise trainer.max_steps" for i, step in late]
        for i, inner in enumerate(self._inner):
            end = next((s["step"] for s in self.stages[i + 1:]), max_steps)  # the stage lasts until here
            every = int(getattr(inner, "refit_every_n_steps", 0) or 0)
            if inner is not None and every > 0 and self.stages[i]["step"] < max_steps and not any(
                    step % every == 0 for step in range(self.stages[i]["step"] + 1, min(end, max_steps))):
                out.append(f"mixing.stages[{i}].mixing.refit_every_n_steps={every}: no refit falls inside the stage "
                           f"(steps {self.stages[i]['step']} to {min(end, max_steps)}), so {inner.name} is never "
                           "refitted; lower its refit_every_n_steps")
        return out

    def stage_at(self, step: int) -> int:
        """The stage in force after `step` optimizer steps."""
        return max(i for i, s in enumerate(self.stages) if s["step"] <= step)

    def compute(self, ctx: DataContext) -> dict[str, float]:
        # every stage's weights now: a bad domain name, law file or reference run fails at start-up
        weights = []
        for i, (stage, inner) in enumerate(zip(self.stages, self._inner)):
            what = f"mixing.stages[{i}] weights"
            weights.append(normalize_weights(stage["weights"], ctx.domains, what=what) if inner is None
                           else inner.initial_weights(ctx))
        self._stage_weights = weights  # a resume then loads the checkpoint's (load_state_dict)
        return dict(weights[0])

    def refit_due(self, step: int) -> bool:
        if step <= 0:
            return False
        current = self.stage_at(step)
        if current != self._stage:  # a stage starts (or a missed switch is caught up)
            return True
        inner = self._inner[current]
        return inner is not None and inner.refit_due(step)

    def update(self, history: MixHistory) -> dict[str, float] | None:
        current = self.stage_at(history.step)
        if current != self._stage:
            weights = dict(self._stage_weights[current])
            self._stage = current
            self.last_fit_report = {"phase": "stage", "stage": current, "stage_step": self.stages[current]["step"]}
            return weights
        inner = self._inner[current]
        if inner is None or not inner.refit_due(history.step):
            self.last_fit_report = {"phase": "stage", "stage": current, "kept": True}
            return None
        proposal = inner.update(history)
        self.last_fit_report = {"stage": current, **(getattr(inner, "last_fit_report", None) or {})}
        return proposal

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self._stage, "stage_weights": self._stage_weights,
                "inner": [None if inner is None else inner.state_dict() for inner in self._inner]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        self._stage = int(state.get("stage", 0))
        if state.get("stage_weights"):
            self._stage_weights = [dict(w) for w in state["stage_weights"]]
        for inner, inner_state in zip(self._inner, state.get("inner") or []):
            if inner is not None and inner_state is not None:
                inner.load_state_dict(inner_state)
