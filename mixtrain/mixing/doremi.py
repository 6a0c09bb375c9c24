"""DoReMi (Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up Language Model
Pretraining"), online: the run being trained is the proxy; the reference is either a frozen
reference model (per-token excess, as in the paper) or a finished run's loss curve.

Place in the flow: `reference_model=PATH` -> mixtrain/train/run.py hands the path to
mixtrain/train/module.py, which runs the frozen model on every training batch and returns
per-domain clipped excess sums (mixtrain/train/step_output.py) -> the controller
(mixtrain/train/mixing_controller.py) averages them into
`MixHistory.excess_loss`; or `reference_run=RUN` -> that run's metrics.csv (read with
mixtrain/store/runfiles.py) gives the reference losses. `compute(ctx)` (uniform) -> sampler/; every
`refit_every_n_steps` the controller hands a `MixHistory` to `update()` (contract: mixing/ado.py).
Pure Python/numpy: no torch, no Lightning.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy, finite_or_nan
from mixtrain.mixing.strategy_registry import register_strategy
from mixtrain.store.runfiles import METRICS, num, read_metrics_rows
from mixtrain.weights import normalize_weights


def read_reference_losses(run_dir: str | os.PathLike, kind: str = "train") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{domain: (steps, losses)} from a finished run's metrics.csv, columns `<kind>/<domain>/loss`.

    Empty cells (a domain not in that step's batch, rows without validation) are skipped; a
    step logged twice (a resumed run) keeps its last row, as mixtrain/fitting/collect.py does.
    Raises ValueError naming the file when it or its `step` column is missing.
    """
    try:
        file, header, rows = read_metrics_rows(run_dir)
    except FileNotFoundError:
        raise ValueError(f"mixing.reference_run: {os.path.join(str(run_dir), METRICS)} does not exist; reference_run "
                         "must be a finished mixtrain run directory (it holds metrics.csv)") from None
    prefix = f"{kind}/"
    domains = [c[len(prefix):-len("/loss")] for c in header
               if c.startswith(prefix) and c.endswith("/loss") and c != f"{kind}/loss"]
    out = {}
    for d in domains:
        by_step: dict[float, float] = {}
        for row in rows:
            step, v = num(row.get("step")), num(row.get(f"{kind}/{d}/loss"))
            if step is not None and v is not None and math.isfinite(v):
                by_step[step] = v
        steps = sorted(by_step)
        out[d] = (np.array(steps, dtype=float), np.array([by_step[s] for s in steps], dtype=float))
    return out


def per_token_excess(token_loss: Sequence[float], reference_loss: Sequence[float]) -> float:
    """The paper's lambda_d for one domain: mean over its tokens of max(loss - reference loss, 0).

    Pure numpy twin of what mixtrain/train/module.py computes in torch on every batch (a sum and a token count
    per domain, so that micro-batches, ranks and steps add up exactly); nan for no tokens.
    """
    loss, ref = np.asarray(token_loss, dtype=float), np.asarray(reference_loss, dtype=float)
    if loss.shape != ref.shape:
        raise ValueError(f"token losses {loss.shape} and reference losses {ref.shape} differ in shape")
    return float(np.maximum(loss - ref, 0.0).mean()) if loss.size else math.nan


@register_strategy
class DoReMi(MixingStrategy):
    """DoReMi online: exponentiated-gradient weights on the excess loss over a reference.

    DoReMi trains a proxy model with Group DRO against a reference model and averages the
    weights; here the run itself is the proxy. Two references:
    - `reference_model=PATH` (as in the paper): a frozen model (a finished mixtrain run dir or
      .ckpt, or an HF Llama folder from mixtrain.model.export; same architecture and vocabulary as
      this run's model) evaluated on the same tokens of every training batch; the excess of
      domain d is `MixHistory.excess_loss[d]` = mean over d's tokens since the last refit of
      max(l_theta(x_t) - l_ref(x_t), 0) (Algorithm 1's per-token clipping). Costs about one
      extra forward pass per training step (no backward) and the reference's weights in memory
      on every rank (a full replica, not sharded under FSDP).
    - `reference_run=RUN` (no extra compute): a finished mixtrain run, typically uniform, same
      domains, gives the reference loss of domain d at the current step:
      * reference_loss=train (default): the reference's per-domain training loss averaged over
        the steps of the current refit interval (the same window as the run's own mean training
        loss), interpolated linearly when the reference logged no row in that window;
      * reference_loss=val: the reference's validation loss interpolated at the step, against
        the run's latest validation loss (falls back to training losses when none is known yet).
      Steps beyond the reference's last row use its last value (reported as "extrapolated").
    Then, as the paper's Algorithm 1 (eta = 1, c = 1e-3):
        excess_d = max(loss_d - ref_d, 0)        (reference_run; reference_model: the per-token
                                                 mean above; NaN: domain not sampled, excess 0)
        alpha'   = alpha * exp(eta * k * excess) (in log space), normalised; k = steps since the
                                                 last refit: eta is per training step as in the paper,
                                                 so the dynamics do not depend on the refit interval
        alpha    = (1 - c) alpha' + c / K        (stored smoothed, so no domain dies for good)
    and returns alpha, or with `average: true` the running mean of alpha over refits (the
    paper's final output, for when this run is a proxy).

    Where `reference_run` differs from the paper (use `reference_model` for the paper's form):
    - Clipping per domain mean, not per token. The paper's excess of domain d is the mean over
      its tokens x of max(l_theta(x) - l_ref(x), 0); ours is max(mean l_theta - mean l_ref, 0).
      By Jensen the paper's value is >= ours; they agree only when every token's excess has
      the same sign. Ours lets tokens the model already predicts better than the reference
      cancel tokens it predicts worse, so a domain with a mix of both gains less weight here.
    - The reference is a finished run's loss curve, not a reference model: l_ref comes from
      other batches (the reference run's, at the same steps) rather than the same tokens, and
      from the reference at the same point of training rather than a fully trained model.
    """

    name = "doremi"
    KINDS = ("train", "val")

    def __init__(
        self,
        reference_run: str | None = None,
        reference_model: str | None = None,
        reference_loss: str = "train",
        step_size: float = 1.0,
        smoothing: float = 1e-3,
        average: bool = False,
        refit_every_n_steps: int = 10,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if not reference_run and not reference_model:
            raise ValueError("mixing=doremi needs a reference: mixing.reference_model=PATH (a finished run dir, "
                             ".ckpt or HF folder of the same model config: per-token excess as in the paper, one "
                             "extra forward per step) or mixing.reference_run=RUN_DIR (a finished mixtrain run over "
                             "the same domains whose metrics.csv gives the reference loss per domain)")
        if reference_run and reference_model:
            raise ValueError(f"mixing=doremi: set one of mixing.reference_model ({reference_model}) and "
                             f"mixing.reference_run ({reference_run}), not both (reference_run=null to use the model)")
        if reference_loss not in self.KINDS:
            raise ValueError(f"mixing.reference_loss must be one of {self.KINDS}, got {reference_loss!r}")
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"mixing.smoothing must be in [0, 1], got {smoothing}")
        self.reference_run = str(reference_run) if reference_run else None
        self.reference_model = str(reference_model) if reference_model else None  # the module runs it
        self.reference_loss = reference_loss
        self.step_size, self.smoothing, self.average = float(step_size), float(smoothing), bool(average)
        self.refit_every_n_steps = int(refit_every_n_steps)
        self._reference: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._alpha: dict[str, float] | None = None
        self._alpha_sum: dict[str, float] | None = None
        self._updates = 0
        self._last_step = 0
        self.last_fit_report: dict[str, Any] | None = None

    def _table(self, kind: str, domains: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The reference's losses of `kind` for exactly `domains` (read once, checked)."""
        if kind not in self._reference:
            table = read_reference_losses(self.reference_run, kind)
            file = os.path.join(self.reference_run, METRICS)
            missing = [d for d in domains if d not in table]
            if missing:
                raise ValueError(f"{file}: no column '{kind}/{missing[0]}/loss' for domain {missing[0]!r}; the "
                                 f"reference run holds {kind} losses of {sorted(table)} but this run trains on "
                                 f"{list(domains)}; use a reference run over the same domains")
            extra = [d for d in table if d not in domains]
            if extra:
                raise ValueError(f"{file}: reference run has domain(s) {extra} that this run does not train on "
                                 f"({list(domains)}); use a reference run over the same domains")
            empty = [d for d in domains if len(table[d][0]) == 0]
            if empty:
                raise ValueError(f"{file}: column '{kind}/{empty[0]}/loss' holds no values")
            self._reference[kind] = table
        return self._reference[kind]

    def compute(self, ctx: DataContext) -> dict[str, float]:
        if self.reference_run:  # (a reference model is checked by mixtrain/train/module.py when it is built)
            self._table(self.reference_loss, ctx.domains)  # fail at start-up, not at the first refit
        return {d: 1.0 for d in ctx.domains}  # DoReMi starts from uniform

    def _reference_at(self, table, d: str, first: float, last: float, window: bool) -> float:
        steps, losses = table[d]
        if window:
            inside = (steps > first) & (steps <= last)
            if inside.any():
                return float(losses[inside].mean())
        return float(np.interp(last, steps, losses))

    def _model_excess(self, history: MixHistory) -> dict[str, float] | None:
        """Per-token clipped excess of the reference model, or None (and a report saying why)."""
        if history.excess_loss is None:
            self.last_fit_report = {"phase": "skipped", "reason": "no per-token excess in the history: the "
                                    "training step ran no reference model"}
            return None
        if not finite_or_nan(history.excess_loss):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite excess"}
            return None
        excess = {d: float(history.excess_loss.get(d, math.nan)) for d in history.weights}
        if all(math.isnan(v) for v in excess.values()):
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        return {d: (0.0 if math.isnan(v) else max(v, 0.0)) for d, v in excess.items()}

    def update(self, history: MixHistory) -> dict[str, float] | None:
        domains = list(history.weights)
        if self.reference_model:
            excess = self._model_excess(history)
            if excess is None:
                return None
            return self._step(history, excess, {"phase": "eg", "kind": "token",
                                                "excess": {d: round(excess[d], 5) for d in domains}})
        kind = self.reference_loss
        current = history.train_loss
        if kind == "val" and history.val_loss is not None:
            current = history.val_loss
        elif kind == "val":
            kind = "train"  # no validation yet in this run: compare like with like
        if not finite_or_nan(current):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite losses"}
            return None
        current = {d: float(current[d]) for d in domains}
        if all(math.isnan(v) for v in current.values()):
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        table = self._table(kind, domains)
        ref = {d: self._reference_at(table, d, self._last_step, history.step, window=(kind == "train"))
               for d in domains}
        excess = {d: (0.0 if math.isnan(current[d]) else max(current[d] - ref[d], 0.0)) for d in domains}
        if not all(math.isfinite(v) for v in [*ref.values(), *excess.values()]):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite reference or excess"}
            return None
        last_ref_step = max(float(table[d][0][-1]) for d in domains)
        return self._step(history, excess, {"phase": "eg", "kind": kind,
                                            "excess": {d: round(excess[d], 5) for d in domains},
                                            "reference": {d: round(ref[d], 5) for d in domains},
                                            "extrapolated": bool(history.step > last_ref_step)})

    def _step(self, history: MixHistory, excess: Mapping[str, float], report: dict[str, Any]) -> dict[str, float]:
        """One exponentiated-gradient step on the clipped excess (Algorithm 1), whatever the reference."""
        domains = list(history.weights)
        k = len(domains)
        alpha = self._alpha or {d: 1.0 / k for d in domains}
        # DoReMi takes one step of size eta per training step; one refit stands for all the steps since the last
        eta = self.step_size * max(history.step - self._last_step, 1)
        logits = np.array([math.log(max(alpha[d], 1e-300)) + eta * excess[d] for d in domains])
        p = np.exp(logits - logits.max())
        p = (1.0 - self.smoothing) * p / p.sum() + self.smoothing / k
        new_alpha = dict(zip(domains, p.tolist()))
        alpha_sum = {d: (self._alpha_sum or {}).get(d, 0.0) + new_alpha[d] for d in domains}

        self._alpha, self._alpha_sum = new_alpha, alpha_sum
        self._updates += 1
        self._last_step = int(history.step)
        self.last_fit_report = report
        out = {d: alpha_sum[d] / self._updates for d in domains} if self.average else new_alpha
        return normalize_weights(out, domains, what="doremi weights")

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self._alpha, "alpha_sum": self._alpha_sum, "updates": self._updates,
                "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._alpha = dict(state["alpha"]) if state.get("alpha") else None
        self._alpha_sum = dict(state["alpha_sum"]) if state.get("alpha_sum") else None
        self._updates = int(state.get("updates", 0))
        self._last_step = int(state.get("last_step", 0))
