"""The LightningModule: next-token loss, per-domain losses, optimiser (its LR schedule: lr_schedule.py), throughput.

Place in the flow: datamodule.py batches {"input_ids", "domain", ...} -> **module.py** -> Trainer.
Per-domain training loss comes from the sampler's domain ids on the same forward pass
(per-sample mean of the per-token loss, summed per domain with index_add), all-reduced
across ranks (2 x num_domains numbers per step) and returned as the step's `StepOutput`
for the mixing controller (train/mixing_controller.py). Validation loss per domain is a token-weighted
mean over that domain's fixed val blocks, summed across ranks before logging (exact, no
DistributedSampler padding); `val/target` is mixtrain/train/target.py's `target_loss` of them.
With a `reference_model` (a strategy's, e.g. DoReMi's) a frozen copy of that model runs on the
same batch (no grad, eval mode, outside `self.model`: never optimised, sharded or checkpointed)
and the step also returns per-domain sums of max(loss - reference loss, 0) over tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import lightning.pytorch as pl
import torch

from mixtrain.train.config import OptimConfig, TrainConfig
from mixtrain.train.lr_schedule import lr_multiplier
from mixtrain.train.step_output import StepOutput, declare_columns, log_to_loggers, logs_due
from mixtrain.model.config import GPTConfig
from mixtrain.model.gpt import GPT, per_token_loss
from mixtrain.train.target import target_loss


def domain_excess(
    token_loss: torch.Tensor, reference_loss: torch.Tensor, domain: torch.Tensor, num_domains: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-domain sum over tokens of max(loss - reference loss, 0), and tokens per domain.

    token_loss, reference_loss [B, T] (float32), domain [B] -> ([num_domains], [num_domains]) for
    this micro-batch; sums (not means) so that micro-batches, ranks and steps add up exactly
    (DoReMi's lambda_d = excess sum / token count; numpy twin: mixing/doremi.py per_token_excess).
    """
    excess = (token_loss.detach().float() - reference_loss.float()).clamp_min(0.0).sum(dim=1)  # [B]
    sums = torch.zeros(num_domains, device=excess.device, dtype=torch.float32).index_add_(0, domain, excess)
    tokens = torch.bincount(domain, minlength=num_domains).float() * token_loss.shape[1]
    return sums, tokens


def identity_differences(saved: Mapping[str, Any], mine: Mapping[str, Any]) -> list[str]:
    """What differs between a checkpoint's run identity and this run's: only the differing model
    keys (`model.n_layer: 4 in the checkpoint, 2 now`) and domains, never the whole dicts."""
    out = []
    if list(saved["domains"]) != list(mine["domains"]):
        old, new = list(saved["domains"]), list(mine["domains"])
        gone, added = [d for d in old if d not in new], [d for d in new if d not in old]
        out.append("domains " + (", ".join(([f"{gone} only in the checkpoint"] if gone else [])
                                           + ([f"{added} only in this run"] if added else []))
                                 or f"in another order ({old} in the checkpoint, {new} now)"))
    old, new = model_identity(saved["model"]), model_identity(mine["model"])
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"model.{key}: {old.get(key)!r} in the checkpoint, {new.get(key)!r} now")
    return out


def model_identity(model: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's model settings with every derived default filled in (n_kv_head, mlp_hidden,
    norm_eps, ...), so that a checkpoint written before the typed config (which kept `null` for
    derived values and no `norm_eps`) and one written now compare equal when the model is the same."""
    known = {f.name for f in fields(GPTConfig)}
    try:
        return asdict(GPTConfig(**{k: v for k, v in model.items() if k in known}))
    except (TypeError, ValueError):  # not a valid model config: compare the raw settings
        return dict(model)


def check_reference_model(config: GPTConfig, path: str) -> None:
    """Refuse a reference model whose vocabulary or architecture differs from `config` (cheap:
    no weights read), naming the field; the error says mixing.reference_model, not init_from."""
    from mixtrain.model.init_weights import check_initial_weights

    try:
        check_initial_weights(config, path)
    except (ValueError, FileNotFoundError) as e:
        raise type(e)(_as_reference(e, path)) from None


def load_reference_model(config: GPTConfig, path: str) -> GPT:
    """A frozen GPT of `config` with `path`'s weights: eval mode, no gradients."""
    from mixtrain.model.init_weights import load_initial_weights

    gpt = GPT(config)
    try:
        load_initial_weights(gpt, path)
    except (ValueError, FileNotFoundError) as e:
        raise type(e)(_as_reference(e, path)) from None
    gpt.eval().requires_grad_(False)
    return gpt


def _as_reference(error: Exception, path: str) -> str:
    text = str(error).replace(f"init_from={path}", f"mixing.reference_model={path}")
    return text if text.startswith("mixing.reference_model") else f"mixing.reference_model={path}: {text}"


class MixtureLM(pl.LightningModule):
    """The GPT of the `model` section, trained with the `optim` section over `domains` for `max_steps`."""

    def __init__(
        self,
        model: GPTConfig,
        optim: OptimConfig,
        domains: list[str],
        *,
        max_steps: int,
        max_nonfinite_steps: int = TrainConfig.max_nonfinite_steps,
        compile: bool = TrainConfig.compile,
        peak_flops_per_s: float | None = None,
        val_domains: list[str] | None = None,
        target_importance: Mapping[str, float] | None = None,
        init_from: str | None = None,
        reference_model: str | None = None,
    ):
        super().__init__()
        if model.vocab_size is None:
            raise ValueError("model.vocab_size is not set: build the module with the prepared data's vocabulary")
        # plain types only: checkpoints stay loadable with weights_only=True
        self.save_hyperparameters({
            "model": asdict(model), "optim": asdict(optim), "domains": list(domains), "max_steps": int(max_steps),
            "compile": bool(compile), "val_domains": list(val_domains or domains),
            "target_importance": dict(target_importance) if target_importance else None,
            "reference_model": str(reference_model) if reference_model else None,
        })
        self.optim = optim
        self.max_steps = int(max_steps)
        self._lr_multiplier(0)  # bad schedule settings fail before training
        self.config = model
        self.domains = list(domains)  # training domains (the sampler's domain ids)
        # validated domains: the training ones, then eval-only ones (datamodule.py's val loader order)
        self.val_domains = list(val_domains or domains)
        self.target_importance = dict(target_importance) if target_importance else None
        self.model: torch.nn.Module | None = None
        # a new run's initial weights (HF Llama folder or mixtrain run/ckpt); None on resume, whose
        # checkpoint restores the weights itself
        self.init_from = str(init_from) if init_from else None
        # a frozen model run on every training batch (DoReMi's per-token excess); reloaded from its
        # path on resume too. Kept in a plain list, not as a submodule: not in state_dict() (never in a
        # checkpoint), not in parameters() (never optimised, never wrapped by DDP), not sharded by FSDP
        self.reference_model = str(reference_model) if reference_model else None
        if self.reference_model:
            check_reference_model(self.config, self.reference_model)  # a misfit names the field, at build time
        self._reference: list[GPT] = []
        self._peak_flops_per_s = peak_flops_per_s
        self._val_sum: torch.Tensor | None = None
        self._val_count: torch.Tensor | None = None
        # per-domain training loss sums / sample counts since the last logged step (see `_log_domain_losses`)
        self._train_sum: torch.Tensor | None = None
        self._train_count: torch.Tensor | None = None
        self._last_step_time: float | None = None
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self._nonfinite_streak = 0  # consecutive steps whose global loss was NaN/inf
        self._first_nonfinite_step = 0  # global_step of the streak's first (its weights gave the loss)

    # -------------------------------------------------------------------- model
    def configure_model(self) -> None:
        if self.model is not None:
            return
        model = GPT(self.config)
        if self.init_from:  # every rank loads the full weights before FSDP shards them
            from mixtrain.model.init_weights import load_initial_weights

            load_initial_weights(model, self.init_from)
        mesh = getattr(self, "device_mesh", None)
        if mesh is not None:  # ModelParallelStrategy (FSDP2): shard each block, then the whole model
            from torch.distributed.fsdp import fully_shard

            dp_mesh = mesh["data_parallel"] if "data_parallel" in (mesh.mesh_dim_names or ()) else mesh
            for block in model.blocks:
                fully_shard(block, mesh=dp_mesh)
            fully_shard(model, mesh=dp_mesh)
        if self.hparams["compile"]:
            model = torch.compile(model)
        self.model = model
        if self.reference_model and not self._reference:
            self._reference.append(load_reference_model(self.config, self.reference_model))

    def _reference_losses(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The frozen reference model's per-token loss [B, T] on the same tokens, float32."""
        ref = self._reference[0]
        param = next(self.model.parameters())
        first = next(ref.parameters())
        if first.device != inputs.device or first.dtype != param.dtype:
            ref.to(device=inputs.device, dtype=param.dtype)  # once: the trained model's device and dtype
        with torch.no_grad():
            return per_token_loss(ref(inputs), targets)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    # ----------------------------------------------------------------- training
    def _domain_sums(self, sample_loss: torch.Tensor, domain: torch.Tensor,
                     *extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-domain loss sums and sample counts (+ any `extra` [D] sums), all-reduced in one call."""
        D = len(self.domains)
        sums = torch.zeros(D, device=sample_loss.device, dtype=torch.float32).index_add_(0, domain, sample_loss.float())
        counts = torch.bincount(domain, minlength=D).float()
        both = self.trainer.strategy.reduce(torch.cat([sums, counts, *extra]), reduce_op="sum")
        return tuple(both[i * D:(i + 1) * D] for i in range(2 + len(extra)))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> StepOutput | None:
        ids = batch["input_ids"].long()  # [B, T+1]
        inputs, targets = ids[:, :-1], ids[:, 1:]  # [B, T] each
        logits = self(inputs)  # [B, T, V]
        token_loss = per_token_loss(logits, targets)  # [B, T] float32
        loss = token_loss.mean()
        excess = ()
        if self._reference:  # DoReMi: clipped excess per token over the frozen reference, same tokens
            excess = domain_excess(token_loss, self._reference_losses(inputs, targets), batch["domain"],
                                   len(self.domains))
        sums, counts, *excess = self._domain_sums(token_loss.detach().mean(dim=1), batch["domain"], *excess)
        global_loss = sums.sum() / counts.sum()
        # "step" = optimizer steps completed once this step is done (Lightning uses it as the x-axis)
        metrics = {"train/loss": global_loss, "step": float(self.global_step + 1)}
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False)
        # train/<d>/loss: accumulated on device (no sync, O(1) calls per step), written at the logging interval
        if self._train_sum is None:
            self._train_sum, self._train_count = torch.zeros_like(sums), torch.zeros_like(counts)
        self._train_sum += sums
        self._train_count += counts
        self.log("loss", global_loss, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        # decided on the all-reduced loss, so every rank skips (or steps) together
        if not bool(torch.isfinite(global_loss)):
            if self._nonfinite_streak == 0:
                self._first_nonfinite_step = int(self.global_step)  # the weights of this step gave it
            self._nonfinite_streak += 1
            if self._nonfinite_streak >= self.max_nonfinite_steps:
                raise FloatingPointError(self._nonfinite_stop_message(float(global_loss)))
            return None  # Lightning skips backward: no gradient, the optimizer leaves the weights alone
        self._nonfinite_streak = 0
        out = StepOutput(loss=loss, domain_loss_sum=sums, domain_count=counts)
        if excess:
            out["domain_excess_sum"], out["domain_token_count"] = excess
        return out

    def _nonfinite_stop_message(self, loss: float) -> str:
        """The NaN stop's message: the newest checkpoint whose weights gave a finite loss
        (checkpoints.RunCheckpoint.keep_finite sets the diverged ones aside and copies it to
        last.ckpt), then what the checkpoint folder holds, read back from disk after that."""
        first = self._first_nonfinite_step
        callback = self.trainer.checkpoint_callback
        keep = getattr(callback, "keep_finite", None)
        good = keep(self.trainer, first) if keep else None
        where = (f"the last checkpoint whose loss was finite is {good}: lower optim.lr (or raise optim.warmup_steps) "
                 "and resume=true" if good else
                 f"no checkpoint before step {first} holds finite-loss weights: lower optim.lr (or raise "
                 "optim.warmup_steps) and start again (overwrite=true)")
        on_disk = callback.on_disk() if hasattr(callback, "on_disk") else ""
        return (f"train/loss is {loss} for {self._nonfinite_streak} consecutive steps (steps {first + 1} to "
                f"{self.global_step + 1}; max_nonfinite_steps={self.max_nonfinite_steps}); these steps did not update "
                f"the weights; {where}" + (f". {on_disk}" if on_disk else ""))

    def on_train_start(self) -> None:
        declare_columns(self.trainer, [f"train/{d}/loss" for d in self.domains])

    def _log_domain_losses(self) -> None:
        """train/<d>/loss = mean per-sample loss of domain d over the steps since the last logged
        row (with log_every_n_steps=1: that step's value), for every domain that had a sample.
        One device->host copy and one dict to the loggers, whatever the number of domains."""
        if self._train_sum is None:
            return
        sums, counts = self._train_sum.tolist(), self._train_count.tolist()
        self._train_sum, self._train_count = None, None
        metrics = {f"train/{d}/loss": s / c for d, s, c in zip(self.domains, sums, counts) if c > 0}
        log_to_loggers(self.trainer, metrics)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if logs_due(self.trainer):
            self._log_domain_losses()
        if self.global_step >= self.trainer.max_steps > 0:
            # the last step always validates (Lightning stops right after it validates when asked
            # to stop), so summary.json and the final table have final val losses even when
            # max_steps is not a multiple of trainer.val_check_interval
            self.trainer.should_stop = True
        now = time.perf_counter()
        if self._last_step_time is not None:
            dt = now - self._last_step_time
            tokens = batch["input_ids"].shape[0] * (batch["input_ids"].shape[1] - 1) * self.trainer.world_size
            tokens_per_s = tokens / max(dt, 1e-9)
            perf = {"perf/tokens_per_s": tokens_per_s}
            peak = self._peak_flops_per_s
            if peak:
                flops = self._flops_per_token() * tokens_per_s
                perf["perf/mfu"] = flops / (peak * self.trainer.world_size)
            self.log_dict(perf, on_step=True, on_epoch=False, rank_zero_only=True)
        self._last_step_time = now

    def _flops_per_token(self) -> float:
        model = self.model._orig_mod if hasattr(self.model, "_orig_mod") else self.model
        return float(model.flops_per_token(self.config.seq_len))

    # --------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        D = len(self.val_domains)
        self._val_sum = torch.zeros(D, device=self.device, dtype=torch.float64)
        self._val_count = torch.zeros(D, device=self.device, dtype=torch.float64)

    def validation_step(self, batch: torch.Tensor, batch_idx: int, dataloader_idx: int = 0) -> None:
        ids = batch.long()
        token_loss = per_token_loss(self(ids[:, :-1]), ids[:, 1:])  # [b, T]
        self._val_sum[dataloader_idx] += token_loss.sum().double()
        self._val_count[dataloader_idx] += token_loss.numel()

    def on_validation_epoch_end(self) -> None:
        both = self.trainer.strategy.reduce(torch.cat([self._val_sum, self._val_count]), reduce_op="sum")
        D = len(self.val_domains)
        sums, counts = both[:D], both[D:]
        metrics = {}
        for i, d in enumerate(self.val_domains):
            if counts[i] > 0:
                metrics[f"val/{d}/loss"] = (sums[i] / counts[i]).float()
        trained = [metrics[f"val/{d}/loss"] for d in self.domains if f"val/{d}/loss" in metrics]
        if trained:  # the unweighted mean over training domains (eval-only ones are in val/target)
            metrics["val/loss"] = torch.stack(trained).mean()
        if self.target_importance is not None:  # the importance-weighted mean, on the loss tensors
            target = target_loss({d: metrics.get(f"val/{d}/loss") for d in self.val_domains}, self.target_importance)
            if target is not None:
                metrics["val/target"] = target
        metrics["step"] = float(self.global_step)  # the row of the step validation followed
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=False)
        if "val/loss" in metrics:
            self.log("val", metrics["val/loss"], prog_bar=True, logger=False, on_epoch=True)

    # ---------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        optim = self.optim
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)  # no decay on norms and biases
        groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = self.device.type == "cuda"
        optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), fused=fused)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_multiplier)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _lr_multiplier(self, step: int) -> float:
        """The `optim` section's schedule at optimizer step `step` (train/lr_schedule.py)."""
        o = self.optim
        return lr_multiplier(step, o.schedule, warmup_steps=o.warmup_steps, max_steps=self.max_steps,
                             min_lr_ratio=o.min_lr_ratio, decay_fraction=o.decay_fraction, decay_shape=o.decay_shape)

    # --------------------------------------------------------------- checkpoint
    def run_identity(self) -> dict[str, Any]:
        return {"domains": list(self.domains), "model": asdict(self.config)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mixtrain"] = self.run_identity()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("mixtrain")
        if saved is None:
            raise ValueError("this checkpoint was not written by mixtrain.train (no 'mixtrain' section); refusing it")
        differences = identity_differences(saved, self.run_identity())
        if differences:
            raise ValueError(
                f"checkpoint does not match this run: {'; '.join(differences)}; "
                "resume with the same data_dir and model config, or start a new out_dir"
            )
