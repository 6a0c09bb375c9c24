"""Typed training-step outputs: what the LightningModule returns and the mixing controller reads.

Place in the flow: module.py `training_step` -> **StepOutput** -> Lightning (backward on
"loss") -> mixing/refit.py `MixingController.on_train_batch_end` (per-domain losses for the
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
