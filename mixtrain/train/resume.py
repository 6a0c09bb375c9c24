"""Resume planning: from the run folder and the config, one answer before anything is written: a
fresh run (out_dir claimed: refused if it holds another run, a failed start's leftovers cleared),
an exact resume (which checkpoint, its step, the mixing history and global batch to carry on), or
a refusal that names the fix.

Place in the flow: mixtrain/train/run.py calls `plan_start` first, on every rank of a launch (each
reads the same files and gets the same answer, so a refusal stops them all and no rank waits for a
rank 0 that left), then `plan_mixing` and `resumed_accumulation` once the strategy and world size
are known. Plain values in: no Hydra; checkpoint files are read through
mixtrain/store/checkpoint_files.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mixtrain.store.checkpoint_files import checked_checkpoint, resume_checkpoint
from mixtrain.train.checkpoints import MIXING_KEY, mixing_mismatch
from mixtrain.train.config import RESUME_MIXING_OPTIONS
from mixtrain.train.summary import claim_run_dir


def resume_mode(value: Any) -> str:
    """`resume`: false (a new run), true (continue; a checkpoint must exist) or auto (continue when
    out_dir holds a checkpoint, else start a new run: the launch scripts' default, so one sbatch line
    serves the first submission and every requeue)."""
    if isinstance(value, bool) or value is None:
        return "true" if value else "false"
    if str(value).lower() in ("auto", "true", "false"):
        return str(value).lower()
    raise ValueError(f"resume={value}: use false (a new run), true (continue out_dir) or auto (continue when "
                     "out_dir holds a checkpoint, else start a new run)")


@dataclass
class Start:
    """Where a run starts: a checkpoint (path + its contents, a sharded folder's metadata) or step 0."""

    ckpt_path: str | None = None
    ckpt: dict[str, Any] | None = None

    @property
    def step(self) -> int | None:
        return int(self.ckpt["global_step"]) if self.ckpt is not None else None


def plan_start(out_dir: str, *, resume: Any, ckpt_path: str | None, overwrite: bool, rank_zero: bool,
               restart_count: int = 0) -> Start:
    """The checkpoint this run continues from, or a fresh start with out_dir claimed (only rank 0
    deletes: `overwrite=true`, a failed start's leftovers, or a SLURM requeue (`restart_count` > 0)
    of a resume=auto job whose first attempt stopped before its first checkpoint: its files are this
    run's). Raises naming the fix when the folder and the config disagree."""
    if ckpt_path:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
        return Start(str(ckpt_path), checked_checkpoint(str(ckpt_path)))
    mode = resume_mode(resume)
    found = None
    if mode == "true" or (mode == "auto" and not overwrite):
        found = resume_checkpoint(os.path.join(out_dir, "checkpoints"), run_dir=out_dir)
    if found is None and mode == "true":
        last = os.path.join(out_dir, "checkpoints", "last.ckpt")
        raise FileNotFoundError(
            f"resume=true but {last} does not exist; train without resume=true first (same out_dir), "
            "or pass resume=auto (continue when there is a checkpoint, else start)"
        )
    if mode == "auto" and rank_zero:
        where = f" (SLURM_RESTART_COUNT={restart_count})" if restart_count else ""
        print(f"[mixtrain] resume=auto{where}: " + (
            f"no checkpoint in {out_dir}: starting a new run" if found is None else
            f"continuing from {found[0]} (step {int(found[1]['global_step'])})"), flush=True)
    if found is not None:
        return Start(*found)
    claim_run_dir(out_dir, overwrite=overwrite or (mode == "auto" and restart_count > 0), delete=rank_zero)
    return Start()


@dataclass
class MixingPlan:
    """How the mixing history continues: a switch (resume_mixing=switch) from `switch_from`, the
    earlier switches, step 0's weights, and the step up to which metrics.csv rows are kept."""

    run_initial_weights: dict[str, float]
    switch_from: str | None = None
    switches: list[dict[str, Any]] = field(default_factory=list)
    keep_until_step: int | None = None


def plan_mixing(start: Start, name: str, config: dict[str, Any], initial_weights: dict[str, float],
                resume_mixing: str) -> MixingPlan:
    """The checkpoint's strategy against this run's: the same (continue), another one (refused
    unless `resume_mixing=switch`), or none recorded (an old checkpoint: continue)."""
    if resume_mixing not in RESUME_MIXING_OPTIONS:  # also checked when the config is built (train/config.py)
        raise ValueError(f"resume_mixing={resume_mixing}: use refuse (default) or switch")
    if start.ckpt is None:
        return MixingPlan(dict(initial_weights))
    saved = start.ckpt.get(MIXING_KEY)
    why = mixing_mismatch(saved, name, config)
    if why and resume_mixing != "switch":
        raise ValueError(
            f"{start.ckpt_path} was trained with another mixing strategy ({why}); resume with the checkpoint's "
            f"mixing, pass resume_mixing=switch to use the new one from step {start.step} on, or start a new out_dir"
        )
    return MixingPlan(run_initial_weights=(saved or {}).get("initial_weights", dict(initial_weights)),
                      switch_from=saved["name"] if why else None, switches=list((saved or {}).get("switches", [])),
                      keep_until_step=start.step)


def resumed_accumulation(saved: dict[str, Any] | None, batch_size: int, seq_len: int, world_size: int | None,
                         accumulate: int, *, change: bool, where: str, rank_zero: bool = True) -> int:
    """Gradient accumulation for a resume: the checkpoint's global batch (tokens per optimizer step),
    whatever changed (world size, batch_size, seq_len, accumulation); refused when it does not divide,
    unless `change` (resume_global_batch=change) accepts the new global batch. Printed either way."""
    if not saved or not saved.get("global_batch_tokens") or not world_size:
        return accumulate
    tokens = int(saved["global_batch_tokens"])
    per_micro = batch_size * seq_len * world_size
    now = per_micro * accumulate
    if now == tokens and saved["world_size"] == world_size:
        return accumulate
    what = _shape_change(saved, batch_size, seq_len, world_size)
    head = (f"resume on {world_size} processes ({where} ran on {saved['world_size']})" if saved["world_size"] != world_size
            else f"resume with {what} ({where})")
    if change:
        if rank_zero:
            print(f"[mixtrain] {head}: resume_global_batch=change: {tokens:,} -> {now:,} "
                  "tokens per step", flush=True)
        return accumulate
    if tokens % per_micro:
        ran_on = f" on {saved['world_size']} processes" if saved["world_size"] != world_size else ""
        raise ValueError(
            f"{where} ran{ran_on} with {tokens:,} tokens per step; now {what}, and batch_size*seq_len*world_size={per_micro:,} "
            f"does not divide it, so the global batch cannot be kept: choose a batch_size that divides it, or pass "
            f"resume_global_batch=change to go on with {now:,} tokens per step")
    kept = tokens // per_micro
    if rank_zero:
        print(f"[mixtrain] {head}: gradient accumulation {saved['accumulate_grad_batches']} -> "
              f"{kept} keeps the global batch at {tokens:,} tokens per step (resume_global_batch=change would use "
              "this run's settings)", flush=True)
    return kept


def _shape_change(saved: dict[str, Any], batch_size: int, seq_len: int, world_size: int) -> str:
    """What differs from the checkpoint's batch shape, e.g. "batch_size 16 -> 8" (old checkpoints
    record only the world size and accumulation)."""
    parts = [f"{name} {saved[key]} -> {value}" for name, key, value in (
        ("world size", "world_size", world_size), ("batch_size", "batch_size", batch_size),
        ("seq_len", "seq_len", seq_len)) if saved.get(key) is not None and saved[key] != value]
    return ", ".join(parts) or "another batch shape"
