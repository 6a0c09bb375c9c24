"""Typed training-step outputs: what the LightningModule returns and the mixing controller reads.

Place in the flow: module.py `training_step` -> **StepOutput** -> Lightning (backward on
"loss") -> train/mixing_controller.py `MixingController.on_train_batch_end` (per-domain losses for the
next refit). Lightning wants a Tensor or a dict with "loss" from training_step; a TypedDict is a
plain dict at run time, so it is both. Holds tensors but imports no torch at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    import torch


class StepOutput(TypedDict):
    loss: torch.Tensor  # mean token loss of this rank's micro-batch (backward runs on it)
    domain_loss_sum: torch.Tensor  # [num_domains] per-sample mean token losses summed per domain, all ranks
    domain_count: torch.Tensor  # [num_domains] samples of each domain in the micro-batch, all ranks
    # only with a reference model (MixingStrategy.reference_model, e.g. DoReMi's per-token excess):
    domain_excess_sum: NotRequired[torch.Tensor]  # [num_domains] sum over d's tokens of max(loss - ref loss, 0), all ranks
    domain_token_count: NotRequired[torch.Tensor]  # [num_domains] target tokens of each domain, all ranks


def has_excess(outputs: Any) -> bool:
    """True when the step also ran the reference model (per-token excess sums present)."""
    return is_step_output(outputs) and "domain_excess_sum" in outputs and "domain_token_count" in outputs


def is_step_output(outputs: Any) -> bool:
    """False for a skipped step (training_step returned None: non-finite loss)."""
    return isinstance(outputs, Mapping) and "domain_loss_sum" in outputs and "domain_count" in outputs


# ---------------------------------------------------------------- per-domain metrics, written at the logging interval
# With hundreds of domains, `LightningModule.log` per domain per step (train/<d>/loss, mix/<d>,
# mix/tokens/<d>: 3N calls, tens of microseconds each) cost more than a tiny model's step. The
# module and the controller instead accumulate per-domain values in tensors and hand them to the
# loggers as one dict, only on the steps Lightning writes its own logged values: the same
# metrics.csv rows and columns, at O(1) per step in between.

def logs_due(trainer: Any) -> bool:
    """True when Lightning writes this training batch's logged metrics (called from on_train_batch_end).

    Lightning's rule (LoggerConnector.should_update_logs, update_train_step_metrics): not inside a
    gradient-accumulation cycle; every `log_every_n_steps` optimizer steps, and when the trainer
    stops. The module asks the trainer to stop at max_steps in its own on_train_batch_end, which
    runs after the callbacks' hooks, so the last step is named here too.
    """
    if trainer.fit_loop._should_accumulate():
        return False
    if trainer.fast_dev_run:
        return True
    every = int(trainer.log_every_n_steps or 0)
    if every <= 0:
        return False
    step = trainer.fit_loop.epoch_loop._batches_that_stepped + 1  # the counter Lightning's rule uses
    last = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
    return step % every == 0 or bool(trainer.should_stop) or last


def log_to_loggers(trainer: Any, metrics: Mapping[str, float]) -> None:
    """Write `metrics` (python floats) to every logger, in the row of the current step, on rank 0.

    The row's step is `trainer.global_step`: the `step` value the module logs for the same batch
    (Lightning uses a logged `step` as the row's step), so the CSV logger merges both into one row.
    The values also go to `trainer.callback_metrics` on every rank, where self.log would have put
    them: the console line and the final summary read the latest values from there.
    """
    if not metrics:
        return
    trainer.callback_metrics.update(metrics)
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=int(trainer.global_step))


def declare_columns(trainer: Any, keys: list[str]) -> None:
    """Tell loggers that can take it (MetricsCSVLogger) which per-domain columns are coming."""
    for logger in trainer.loggers:
        if hasattr(logger, "declare_columns"):
            logger.declare_columns(keys)
