"""The mixing controller: the one path between the strategy and the sampler during training.

Place in the flow: module.py (`StepOutput`: per-domain losses, all-reduced) + datamodule.py (the
`MixtureStream`) -> **MixingController** (a Lightning callback) -> strategy.update(history) ->
sampler.set_weights().

After every training batch it tells the sampler the batch was consumed (exact accounting, exact
resume) and logs `mix/<domain>`, `mix/tokens/<domain>`, `tokens`. For an online strategy, after
every optimizer step the strategy says is due (`refit_due`: every `refit_every_n_steps`; a
schedule also at its stages' steps) it builds a `MixHistory` from inputs that are identical on
every rank (per-domain training-loss sums were all-reduced in the step; token counts are global
by construction; validation losses are all-reduced; with a strategy's `reference_model`, the
step's per-token clipped excess sums give `MixHistory.excess_loss`), asks the strategy for new
weights on rank 0, broadcasts them, applies the safety rules and the strategy's `max_epochs` cap over the
remaining budget, and schedules them in the sampler. A refit that sees NaN/inf, or whose
strategy raises, keeps the previous weights and logs a warning; the run never crashes because of
a refit. One line per refit goes to `RUN/refits.jsonl`; a change replaced by a newer one before
it took effect is rewritten there as status "replaced". State (strategy, accumulators, records)
is saved in the checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from mixtrain.train.launch import is_rank_zero
from mixtrain.mixing.base import MixHistory, MixingStrategy, cap_remaining_epochs
from mixtrain.train.step_output import (StepOutput, declare_columns, has_excess, is_step_output, log_to_loggers,
                                     logs_due)
from mixtrain.store.runfiles import REFITS, atomic_write
from mixtrain.weights import normalize_weights

log = logging.getLogger(__name__)


def mixture_metrics(stream) -> dict[str, float]:
    """The mixture's state as logged: tokens consumed, current weight and tokens per domain."""
    tokens = stream.domain_tokens()
    metrics = {"tokens": float(sum(tokens.values()))}
    metrics.update({f"mix/{d}": w for d, w in stream.current_weights().items()})
    metrics.update({f"mix/tokens/{d}": float(n) for d, n in tokens.items()})
    return metrics


def safe_weights(
    new: Mapping[str, float], old: Mapping[str, float], *, floor: float, max_change: float | None, smoothing: float
) -> dict[str, float]:
    """Smooth toward the old weights, bound the change per domain, then apply a floor.

    smoothing s: w = (1 - s) * new + s * old. max_change: |w_i - old_i| <= max_change (before
    the floor and renormalisation). floor: every domain keeps at least `floor` weight.
    `new` is validated once (normalize_weights); the arithmetic after it keeps weights finite and
    >= 0, so it renormalises on arrays: O(N) for N domains.
    """
    domains = list(old)
    if floor > 0 and floor * len(domains) > 1:
        raise ValueError(f"refit floor {floor} x {len(domains)} domains exceeds 1")
    w_new = np.fromiter(normalize_weights(new, domains, what="refit weights").values(), np.float64, len(domains))
    w_old = np.fromiter((float(old[d]) for d in domains), np.float64, len(domains))
    w = (1.0 - smoothing) * w_new + smoothing * w_old
    if max_change is not None:
        w = np.minimum(w_old + max_change, np.maximum(w_old - max_change, w))
    w = w / w.sum()
    if floor > 0:
        w = floor + (1.0 - floor * len(domains)) * w
    w = w / w.sum()
    return dict(zip(domains, w.tolist()))


class MixingController(pl.Callback):
    """Sampler accounting and logging for every run; refits for online strategies (see the module doc)."""

    def __init__(
        self,
        strategy: MixingStrategy,
        run_dir: str,
        *,
        floor: float = 0.0,
        max_change: float | None = None,
        smoothing: float = 0.0,
    ):
        self.strategy = strategy
        self.every = int(strategy.refit_every_n_steps or 0)  # 0: a static strategy, never refitted
        self.run_dir = run_dir
        self.floor, self.max_change, self.smoothing = float(floor), max_change, float(smoothing)
        self._sum: torch.Tensor | None = None
        self._count: torch.Tensor | None = None
        # per-token clipped excess over the reference model (StepOutput.domain_excess_sum) and tokens
        self._excess_sum: torch.Tensor | None = None
        self._token_count: torch.Tensor | None = None
        self.records: list[dict[str, Any]] = []
        self._trainer: pl.Trainer | None = None
        self._probe = None  # train/grad_probe.py GradientProbe, built at the first refit of a strategy that declares one
        self.last_probe = None  # the latest ProbeResult (identical on every rank)
        self._stepped = False  # the optimizer stepped during the current batch (an accumulation boundary)

    @property
    def state_key(self) -> str:
        return "Refit"  # the key this state had before the controller merged Refit and MixtureProgress

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer  # for the rank check in load_state_dict (Lightning passes no trainer there)

    def on_train_start(self, trainer, pl_module) -> None:
        domains = trainer.datamodule.domains
        declare_columns(trainer, ["tokens"] + [f"mix/{d}" for d in domains] + [f"mix/tokens/{d}" for d in domains])

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # called once per optimizer step, after the last micro-batch's backward: the public
        # signal that this batch ends a gradient-accumulation cycle
        self._stepped = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stream = trainer.datamodule.stream
        stream.mark_consumed(batch)
        # Written only on the steps Lightning writes its logs (one dict, not 2N+1 self.log calls);
        # identical on every rank by construction (global accounting), so no sync needed.
        if logs_due(trainer):
            log_to_loggers(trainer, mixture_metrics(stream))
        stepped, self._stepped = self._stepped, False
        if self.every <= 0 or not is_step_output(outputs):
            return  # static strategy, or a skipped (non-finite) step: nothing to accumulate
        self._accumulate(outputs)
        step = trainer.global_step
        if stepped and self.strategy.refit_due(step):
            self.refit(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        # Validation rows carry the mixture in force too, so a row of val losses is a complete
        # observation (collect.py) even when training rows are logged less often than validation.
        stream = getattr(trainer.datamodule, "stream", None)
        if trainer.sanity_checking or stream is None:
            return
        log_to_loggers(trainer, mixture_metrics(stream))  # the validation row's step (trainer.global_step)

    # accumulate the all-reduced per-domain training loss of every step since the last refit
    def _accumulate(self, outputs: StepOutput) -> None:
        s, c = outputs["domain_loss_sum"].detach().double().cpu(), outputs["domain_count"].detach().double().cpu()
        self._sum = s if self._sum is None else self._sum + s
        self._count = c if self._count is None else self._count + c
        if has_excess(outputs):
            e = outputs["domain_excess_sum"].detach().double().cpu()
            n = outputs["domain_token_count"].detach().double().cpu()
            self._excess_sum = e if self._excess_sum is None else self._excess_sum + e
            self._token_count = n if self._token_count is None else self._token_count + n

    def _excess_loss(self, domains) -> dict[str, float] | None:
        """Mean clipped per-token excess per domain since the last refit (nan: no token), or None
        when no step carried one (no reference model)."""
        if self._excess_sum is None or self._token_count is None:
            return None
        return {d: (float(self._excess_sum[i] / self._token_count[i]) if self._token_count[i] > 0 else math.nan)
                for i, d in enumerate(domains)}

    def _val_loss(self, trainer, domains) -> dict[str, float] | None:
        metrics = trainer.callback_metrics
        if not all(f"val/{d}/loss" in metrics for d in domains):
            return None
        return {d: float(metrics[f"val/{d}/loss"]) for d in domains}

    def refit(self, trainer, pl_module) -> None:
        stream = trainer.datamodule.stream
        domains = stream.domains
        t0 = time.perf_counter()
        old = stream.latest_weights()  # the latest scheduled weights: the base of the next change
        tokens_seen = stream.domain_tokens()
        train_loss = {
            d: (float(self._sum[i] / self._count[i]) if self._count is not None and self._count[i] > 0 else math.nan)
            for i, d in enumerate(domains)
        }
        history = MixHistory(
            step=trainer.global_step,
            max_steps=trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None,
            weights=self._realised_shares(tokens_seen, old),
            tokens_seen=tokens_seen,
            train_loss=train_loss,
            val_loss=self._val_loss(trainer, domains),
            records=self.records,
            scheduled_weights=old,
            excess_loss=self._excess_loss(domains),
            probe=self._measure_probe(trainer, pl_module),
        )
        new, status, error = None, "kept", None
        if is_rank_zero(trainer):
            try:
                proposal = self.strategy.update(history)
                if proposal is not None:
                    if not all(math.isfinite(float(v)) for v in proposal.values()):
                        raise ValueError(f"non-finite weights {proposal}")
                    new = safe_weights(proposal, old, floor=self.floor, max_change=self.max_change,
                                       smoothing=self.smoothing)
                    new = self._cap(new, trainer, tokens_seen)
                    status = "updated"
            except Exception as e:  # a refit never crashes the run: keep the weights, say why
                error = f"{type(e).__name__}: {e}"
                log.warning("refit at step %d failed, keeping previous weights: %s", trainer.global_step, error)
                status = "failed"
        # rank 0 decides; everyone applies the same weights (and the same strategy state)
        new, status, strategy_state = trainer.strategy.broadcast((new, status, self.strategy.state_dict()), src=0)
        self.strategy.load_state_dict(strategy_state)
        start = stream.set_weights(new) if new is not None else None
        if start is not None:
            self._mark_replaced(start, trainer.global_step, is_rank_zero(trainer))
        record = {
            "step": trainer.global_step, "status": status, "effective_batch": start,
            "old_weights": old, "new_weights": new, "realised_weights": history.weights,
            "train_loss": train_loss, "val_loss": history.val_loss,
            "tokens_seen": history.tokens_seen, "error": error, "seconds": time.perf_counter() - t0,
            "fit": getattr(self.strategy, "last_fit_report", None),
        }
        if history.excess_loss is not None:  # only runs with a reference model carry the key
            record["excess_loss"] = history.excess_loss
        if history.probe is not None:  # gradient strategies: norms and target alignment (not the k x k Gram)
            record["probe"] = history.probe.report()
        self.records.append({k: record[k] for k in ("step", "status", "effective_batch", "old_weights", "new_weights",
                                                     "train_loss", "val_loss", "tokens_seen", "excess_loss")
                             if k in record})
        self._sum, self._count = None, None
        self._excess_sum, self._token_count = None, None
        if is_rank_zero(trainer):
            with open(os.path.join(self.run_dir, REFITS), "a") as f:
                f.write(json.dumps(record, default=float) + "\n")
            self._write_output_weights()
        pl_module.log("perf/refit_seconds", record["seconds"], rank_zero_only=True)

    def _measure_probe(self, trainer, pl_module):
        """The strategy's gradient probe at this step (every rank takes part: one all-reduce), or None."""
        spec = getattr(self.strategy, "gradient_probe", None)
        if spec is None:
            return None
        from mixtrain.train.grad_probe import measure_in_fit, probe_for_trainer

        if self._probe is None:
            self._probe = probe_for_trainer(spec, trainer, pl_module)
        self.last_probe = measure_in_fit(self._probe, trainer, pl_module)
        return self.last_probe

    def _write_output_weights(self) -> None:
        """RUN/weights.yaml (for mixing=manual) when the strategy has a run-level output (DoGE: the average
        of its weights over all refits, the paper's output), rewritten after every refit."""
        output = getattr(self.strategy, "output_weights", None)
        weights = output() if output is not None else None
        if weights:
            import yaml

            text = (f"# {self.strategy.name}: {output.__doc__.strip().splitlines()[0]}\n"
                    + yaml.safe_dump({"weights": {d: float(w) for d, w in weights.items()}}, sort_keys=False))
            atomic_write(os.path.join(self.run_dir, "weights.yaml"), text)

    def _realised_shares(self, tokens_seen: Mapping[str, int], scheduled: Mapping[str, float]) -> dict[str, float]:
        """Per-domain shares of the samples consumed since the last refit (what the losses were drawn
        under); the scheduled weights only if nothing was consumed."""
        before = self.records[-1]["tokens_seen"] if self.records else {}
        delta = {d: max(int(n) - int(before.get(d, 0)), 0) for d, n in tokens_seen.items()}
        total = sum(delta.values())
        return {d: n / total for d, n in delta.items()} if total > 0 else dict(scheduled)

    def _cap(self, weights: dict[str, float], trainer, tokens_seen: Mapping[str, int]) -> dict[str, float]:
        """mixing.max_epochs over what is left of the run: the same rule as the initial weights."""
        max_epochs = getattr(self.strategy, "max_epochs", None)
        if max_epochs is None:
            return weights
        if not (trainer.max_steps and trainer.max_steps > 0):
            raise ValueError(f"mixing.max_epochs needs a token budget: set trainer.max_steps ({self.strategy.name})")
        stream, stats = trainer.datamodule.stream, trainer.datamodule.stats
        tokens_per_step = stream.global_batch_size * stream.tokens_per_sample * int(trainer.accumulate_grad_batches)
        num_tokens = {d: int(stats[d]["num_train_tokens"]) for d in weights}
        return cap_remaining_epochs(weights, num_tokens, tokens_seen, trainer.max_steps * tokens_per_step,
                                    float(max_epochs))

    def _mark_replaced(self, start: int, step: int, writer: bool) -> None:
        """The sampler replaced the pending change that was to take effect at `start` (set_weights
        returns the same batch): that earlier refit's weights never governed a batch."""
        for rec in reversed(self.records):
            if rec.get("status") == "updated" and rec.get("effective_batch") == start:
                rec["status"], rec["replaced_by_step"] = "replaced", step
                break
        else:
            return
        path = os.path.join(self.run_dir, REFITS)
        if not writer or not os.path.isfile(path):
            return
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        for line in lines:
            if line["step"] == rec["step"]:
                line["status"], line["replaced_by_step"] = "replaced", step
        atomic_write(path, "".join(json.dumps(line, default=float) + "\n" for line in lines))

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.state_dict(),
            "records": self.records,
            "sum": None if self._sum is None else self._sum.tolist(),
            "count": None if self._count is None else self._count.tolist(),
            "excess_sum": None if self._excess_sum is None else self._excess_sum.tolist(),
            "token_count": None if self._token_count is None else self._token_count.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state.get("strategy", {}))
        self.records = list(state.get("records", []))
        self._sum = None if state.get("sum") is None else torch.tensor(state["sum"], dtype=torch.float64)
        self._count = None if state.get("count") is None else torch.tensor(state["count"], dtype=torch.float64)
        self._excess_sum, self._token_count = (
            (None, None) if state.get("excess_sum") is None or state.get("token_count") is None
            else (torch.tensor(state["excess_sum"], dtype=torch.float64),
                  torch.tensor(state["token_count"], dtype=torch.float64)))
        # refits after the checkpoint will happen again: drop their lines from refits.jsonl
        path = os.path.join(self.run_dir, REFITS)
        if os.path.isfile(path) and is_rank_zero(self._trainer):
            last = self.records[-1]["step"] if self.records else -1
            with open(path) as f:
                lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last]
            atomic_write(path, "".join(lines))
