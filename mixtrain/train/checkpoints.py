"""Crash-safe checkpoints: atomic files in the run directory, published after the metrics rows
(the Lightning callbacks; the file names and reading them are mixtrain/store/checkpoint_files.py).

Place in the flow: mixtrain/train/run.py wires these into the Trainer; mixtrain/train/resume.py
picks a checkpoint with `store.checkpoint_files.resume_checkpoint()` before anything is written.

* `AtomicCheckpointIO` (a Lightning CheckpointIO plugin): writes `<path>.partial` in the
  checkpoint's own directory, fsyncs it and `os.replace`s it onto `<path>`. Lightning's default
  writes through a temp folder that may be on another filesystem, so a kill during the final
  copy left a 0-byte `last.ckpt`.
* `RunCheckpoint` (a ModelCheckpoint): a checkpoint of step N is staged (`.staged-<name>`) when
  Lightning saves it, and published (renamed to its name) only at the start of step N+1 or at
  the end of training, right after `metrics.csv` was flushed through step N. So every visible
  checkpoint has every metrics row up to its step on disk (a kill loses no row on resume).
  A checkpoint of non-finite parameters is never written; at the NaN stop `keep_finite` sets
  aside the ones whose (finite but diverged) weights gave the non-finite loss.
  A write that runs out of disk raises an OSError naming the path and the free space.
* `Preemption`: SIGTERM/SIGUSR1 stop every rank at the next optimizer step, so last.ckpt is of
  that step. `BatchShape` and `MixingIdentity` record the world size / global batch and the
  strategy in every checkpoint (`BATCH_KEY`, `MIXING_KEY`; `mixing_mismatch` compares them on resume).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from mixtrain.store.checkpoint_digest import digest_path, digest_problem, publish, write_digest, write_folder_digest
from mixtrain.store.checkpoint_files import (NONFINITE_SUFFIX, PARTIAL_SUFFIX, STAGED_PREFIX, STEP_FILE,
                                             disk_full_error, load_checkpoint_meta)
from mixtrain.store.runfiles import atomic_write
from mixtrain.train.launch import is_rank_zero


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temp file next to the target, fsync, os.replace: never a partial file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        part = path + PARTIAL_SUFFIX  # remove_partial_files clears any a kill left (and its digest)
        try:
            atomic_write(part, lambda f: torch.save(checkpoint, f), tmp=part, fsync=True)
        except BaseException as e:
            full = disk_full_error(e, path)
            if full is not None:
                raise full from e
            raise
        # the digest describes the complete file before it takes the name; `publish` moves both so that
        # a kill never leaves a checkpoint its digest rejects (store/checkpoint_digest.py)
        write_digest(part)
        publish(part, path)
        _fsync_dir(os.path.dirname(path) or ".")


def parameters_finite(module: torch.nn.Module) -> bool:
    for p in module.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p  # FSDP2 DTensor: this rank's shard
        if not bool(torch.isfinite(local.detach()).all()):
            return False
    return True


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose files appear only once metrics.csv holds every row up to their step."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("enable_version_counter", False)  # never last-v1.ckpt after a fallback resume
        super().__init__(*args, **kwargs)
        self._staged: dict[str, str] = {}  # final path -> staged path

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        finite = parameters_finite(trainer.lightning_module)
        if trainer.world_size > 1:
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:  # a NaN/inf model must never replace a good checkpoint
            self._last_global_step_saved = trainer.global_step
            if is_rank_zero(trainer):
                print(f"[mixtrain] step {trainer.global_step}: parameters are not finite; checkpoint "
                      f"{os.path.basename(filepath)} not written", flush=True)
            return
        staged = os.path.join(os.path.dirname(filepath), STAGED_PREFIX + os.path.basename(filepath))
        trainer.save_checkpoint(staged, self.save_weights_only)
        self._staged[filepath] = staged
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    def _publish(self, trainer) -> None:
        if not self._staged:
            return
        if trainer.world_size > 1:
            trainer.strategy.barrier()  # every rank's shard of a distributed checkpoint is written
        if is_rank_zero(trainer):
            for logger in trainer.loggers:  # the rows of steps <= the checkpoint's first
                if hasattr(logger, "flush_through"):
                    logger.flush_through(trainer.global_step)
            for final, staged in self._staged.items():
                if os.path.isdir(staged):  # every rank's shards are written (the barrier above)
                    write_folder_digest(staged)
                    if os.path.isdir(final):
                        shutil.rmtree(final)
                    os.replace(staged, final)
                else:  # the file and its digest, so that a kill between the two leaves an accepted pair
                    publish(staged, final)
            _fsync_dir(self.dirpath)
        self._staged.clear()
        if trainer.world_size > 1:
            trainer.strategy.barrier()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._publish(trainer)  # the previous step is complete: its row (train + val) is logged

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))  # last.ckpt = the final step
        self._publish(trainer)

    def keep_finite(self, trainer, first_bad_step: int) -> str | None:
        """After a NaN/inf stop: the checkpoints of step >= first_bad_step hold the weights that gave
        the first non-finite loss (finite, but diverged); they get a `.nonfinite` suffix and
        last.ckpt becomes a copy of the newest earlier one, whose path is returned (None: none)."""
        ckpt_dir = self.dirpath
        steps = sorted((int(m.group(1)), os.path.join(ckpt_dir, name)) for name in
                       (os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []) if (m := STEP_FILE.match(name)))
        good = max((path for step, path in steps if step < first_bad_step), default=None)
        if trainer.world_size > 1:
            trainer.strategy.barrier()  # every rank listed the same files before rank 0 renames them
        if is_rank_zero(trainer):
            for step, path in steps:
                if step >= first_bad_step:
                    os.replace(path, path + NONFINITE_SUFFIX)
                    if os.path.isfile(digest_path(path)):
                        os.replace(digest_path(path), digest_path(path + NONFINITE_SUFFIX))
            last = os.path.join(ckpt_dir, "last.ckpt")
            if os.path.isfile(last) and int(load_checkpoint_meta(last)["global_step"]) >= first_bad_step:
                if good is None:
                    os.replace(last, last + NONFINITE_SUFFIX)
                    if os.path.isfile(digest_path(last)):
                        os.replace(digest_path(last), digest_path(last + NONFINITE_SUFFIX))
                else:
                    shutil.copyfile(good, last + PARTIAL_SUFFIX)
                    publish(last + PARTIAL_SUFFIX, last)
            if os.path.isdir(ckpt_dir):
                _fsync_dir(ckpt_dir)
        return good

    def on_disk(self) -> str:
        """What the checkpoint folder holds now, read back from disk (the NaN stop's message states
        this, not what it meant to write): last.ckpt's step and digest, the step files, the set-aside ones."""
        return checkpoints_on_disk(self.dirpath)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # unpublished checkpoints may be ahead of metrics.csv: drop them, resume uses the last published
        if is_rank_zero(trainer):
            for staged in self._staged.values():
                if os.path.exists(staged):
                    shutil.rmtree(staged) if os.path.isdir(staged) else os.remove(staged)
        self._staged.clear()


def checkpoints_on_disk(ckpt_dir: str) -> str:
    """One line: last.ckpt's step and digest state, the step checkpoints, the `.nonfinite` ones."""
    names = sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []
    parts = []
    if "last.ckpt" in names:
        last = os.path.join(ckpt_dir, "last.ckpt")
        try:
            step = int(load_checkpoint_meta(last)["global_step"])
            problem = digest_problem(last)
            parts.append(f"last.ckpt holds step {step}" + (f" but is damaged ({problem})" if problem else ""))
        except Exception as e:  # unreadable: say so rather than guess
            parts.append(f"last.ckpt is unreadable ({type(e).__name__})")
    else:
        parts.append("no last.ckpt")
    steps = [n for n in names if STEP_FILE.match(n)]
    parts.append(f"step checkpoints: {', '.join(steps) if steps else 'none'}")
    aside = [n for n in names if n.endswith(NONFINITE_SUFFIX)]
    if aside:
        parts.append(f"set aside (diverged weights, never resumed from): {', '.join(aside)}")
    return f"{ckpt_dir} now holds: " + "; ".join(parts)


BATCH_KEY = "mixtrain_batch"


class BatchShape(pl.Callback):
    """Records the run's batch shape (world size, accumulation, tokens per optimizer step) in every
    checkpoint, so a resume on another number of processes can keep the global batch."""

    def __init__(self, accumulate: int, batch_size: int, seq_len: int):
        self.accumulate, self.tokens_per_rank = accumulate, batch_size * seq_len * accumulate
        self.batch_size, self.seq_len = batch_size, seq_len

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[BATCH_KEY] = {"world_size": trainer.world_size, "accumulate_grad_batches": self.accumulate,
                                 "global_batch_tokens": self.tokens_per_rank * trainer.world_size,
                                 "batch_size": self.batch_size, "seq_len": self.seq_len}


class Preemption(pl.Callback):
    """SIGTERM (SLURM preemption or time limit, torchrun's stop) or SIGUSR1 (slurm.sbatch's warning
    before the limit): stop at the next optimizer-step boundary, on every rank at once (the request is
    reduced across ranks each step), so RunCheckpoint writes last.ckpt of that step on train end and
    resume continues exactly. Replaces Lightning's SIGTERM handler, which exited 0 (SIGTERMException
    is a bare SystemExit) and its SLURM handler, which saved from inside the signal handler mid-step."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: int | None = None
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}
        self._step: int | None = None

    def _handler(self, signum, frame) -> None:
        self.received = signum

    def on_train_start(self, trainer, pl_module) -> None:
        self._step = trainer.global_step
        if threading.current_thread() is threading.main_thread():  # after Lightning registered its own
            for sig in self.SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._step:  # inside a gradient accumulation: not a step boundary
            return
        self._step = trainer.global_step
        received = self.received or 0
        if trainer.world_size > 1:  # one small all-reduce per step: every rank stops at the same step
            flag = torch.tensor([received], device=trainer.strategy.root_device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            received = int(flag.item())
        if received:
            self.signal_name = signal.Signals(received).name
            trainer.should_stop = True
            # Lightning validates when asked to stop; a validation that was not due would add val/
            # values to this step's metrics row that the uninterrupted run does not have
            if isinstance(trainer.val_check_batch, int) and (batch_idx + 1) % trainer.val_check_batch:
                trainer.limit_val_batches = 0

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    # Restored when training ends or fails, before Lightning's own teardown puts back the handlers it
    # found: a restore in `teardown` (which runs after Lightning's) left Lightning's handler installed
    # for good, and a process forked later (prepare's tokenizer pool) then outlived SIGTERM.
    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()


MIXING_KEY = "mixtrain_mixing"


def mixing_mismatch(saved: dict[str, Any] | None, name: str, config: dict[str, Any]) -> str | None:
    """Why a checkpoint's mixing strategy differs from this run's (None if it does not)."""
    if saved is None:
        return None  # written before strategies were recorded: nothing to compare
    if saved["name"] != name:
        return f"mixing={saved['name']} in the checkpoint, mixing={name} now"
    # checkpoints written before the mixing registry name the class by `_target_` (a module path
    # that has moved), not by `strategy`; the name and settings still say whether it is the same
    legacy = "strategy" not in saved["config"]
    changed = sorted(k for k in set(saved["config"]) | set(config)
                     if k != "_target_" and not (legacy and k == "strategy") and saved["config"].get(k) != config.get(k))
    if changed:
        return f"mixing={name} with other settings: " + ", ".join(
            f"mixing.{k}: {saved['config'].get(k)!r} -> {config.get(k)!r}" for k in changed)
    return None


class MixingIdentity(pl.Callback):
    """Records the strategy (name + config, and any switches) in every checkpoint; applies a switch.

    On `resume_mixing=switch` the new strategy's initial weights govern the stream from the resume
    step on (sampler.set_weights, so the schedule keeps the old weights before it) and the switch
    is recorded here, in the checkpoint and in summary.json.
    """

    def __init__(self, name: str, config: dict[str, Any], initial_weights: dict[str, float],
                 run_initial_weights: dict[str, float] | None = None,
                 switches: list[dict[str, Any]] | None = None, switch_from: str | None = None):
        self.name, self.config, self.initial_weights = name, config, initial_weights
        self.run_initial_weights = dict(run_initial_weights or initial_weights)  # the weights of step 0
        self.switches = list(switches or [])
        self._switch_from = switch_from

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[MIXING_KEY] = {"name": self.name, "config": self.config, "switches": self.switches,
                                  "initial_weights": self.run_initial_weights}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self._switch_from is not None:  # the old strategy's refit state is not the new one's
            # "Refit": the MixingController's state key (mixtrain/train/mixing_controller.py)
            for key in [k for k in checkpoint.get("callbacks", {}) if k.startswith("Refit")]:
                del checkpoint["callbacks"][key]

    def on_train_start(self, trainer, pl_module) -> None:
        if self._switch_from is None:
            return
        stream = trainer.datamodule.stream
        first_batch = stream.set_weights(self.initial_weights)
        self.switches.append({"step": int(trainer.global_step), "first_batch": int(first_batch),
                              "from": self._switch_from, "to": self.name, "weights": dict(self.initial_weights)})
        self._switch_from = None
        if is_rank_zero(trainer):
            print(f"[mixtrain] resume_mixing=switch: {self.switches[-1]['from']} -> {self.name} from step "
                  f"{trainer.global_step} (batch {first_batch} on)", flush=True)
