"""Checkpoint files on disk: their names in RUN/checkpoints, which one a run continues from, and
reading one (a file, or a sharded FSDP folder) without Lightning.

Place in the flow: the training stage's callbacks (mixtrain/train/checkpoints.py) write these
files -> **checkpoint_files.py** -> mixtrain/train/resume.py (the resume plan) and
mixtrain/model/export.py (an HF export; init_weights.py's `init_from=RUN` reads through it).
Layout: docs/formats.md. Pure file handling: torch to read, no Lightning or Hydra.

* Names: `last.ckpt`, `stepNNNNNNN.ckpt` and Lightning's SLURM `RUN/hpc_ckpt_N.ckpt`; a write in
  progress is `<name>.partial` (the atomic writer's temp file) or `.staged-<name>` (written, not
  yet published after metrics.csv); a checkpoint whose weights gave a NaN/inf loss is set aside as
  `<name>.nonfinite` (kept, never resumed from). `remove_partial_files()` clears what a kill left.
* `resume_checkpoint()`: the readable checkpoint of the highest step whose digest accepts it
  (store/checkpoint_digest.py), naming unreadable and damaged ones; `checked_checkpoint()`: an
  explicit ckpt_path, refused when its digest rejects it;
  `load_checkpoint_meta()`: a file, or a sharded folder's `meta.pt` (enough to plan a resume);
  `consolidated_checkpoint()`: a sharded folder as one full dict (torch.distributed.checkpoint,
  on this one process), as Lightning's own consolidation reads it.
* `disk_full_error()`: a checkpoint write that ran out of disk, as an OSError naming the path
  and the free space.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
from typing import Any

import torch

from mixtrain.errors import RunDirError
from mixtrain.store.checkpoint_digest import digest_problem

STAGED_PREFIX = ".staged-"
PARTIAL_SUFFIX = ".partial"
NONFINITE_SUFFIX = ".nonfinite"  # a checkpoint whose weights gave a NaN/inf loss (kept, never resumed from)
STEP_FILE = re.compile(r"^step(\d+)\.ckpt$")
HPC_FILE = re.compile(r"^hpc_ckpt_(\d+)\.ckpt$")  # Lightning's SLURM requeue checkpoint, in the run dir
SHARDED_META = "meta.pt"  # a sharded folder's non-tensor part (Lightning's ModelParallelStrategy writes it)


def disk_full_error(error: BaseException, path: str) -> OSError | None:
    """A clear OSError for a checkpoint write that ran out of disk (torch reports it as an opaque
    `inline_container.cc` RuntimeError, or ENOSPC/EDQUOT/EFBIG); None for any other error."""
    cause = error if isinstance(error, OSError) else error.__context__
    no_space = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if not (no_space or (isinstance(error, RuntimeError) and
                         any(s in str(error) for s in ("inline_container", "file write failed")))):
        return None
    folder = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(folder).free
    return OSError(errno.ENOSPC, f"no space left to write checkpoint {path} ({free / 2**20:,.1f} MiB free on the "
                   f"filesystem of {folder}; {type(error).__name__}: {error}); the checkpoints written before it "
                   "(last.ckpt included) are unchanged: free disk space or use an out_dir on a larger disk, then "
                   "resume=true")


def remove_partial_files(ckpt_dir: str) -> list[str]:
    """Delete what a killed run left half-done (unpublished or half-written checkpoints)."""
    leftovers = glob.glob(os.path.join(ckpt_dir, STAGED_PREFIX + "*")) + glob.glob(
        os.path.join(ckpt_dir, "*" + PARTIAL_SUFFIX)) + glob.glob(os.path.join(ckpt_dir, f"*{PARTIAL_SUFFIX}.sha256"))
    for path in leftovers:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return leftovers


def _load(path: str) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def resume_checkpoint(ckpt_dir: str, run_dir: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """(path, loaded checkpoint) to resume from: the readable checkpoint of the highest step among
    last.ckpt, stepN.ckpt and Lightning's `run_dir/hpc_ckpt_N.ckpt` (a SLURM requeue of an older
    version or of Lightning's own handler); last.ckpt wins a tie. Unreadable ones are skipped (and
    named); a sharded (FSDP) checkpoint is a folder, read through its metadata file."""
    names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
    candidates = [os.path.join(ckpt_dir, "last.ckpt")] if "last.ckpt" in names else []
    candidates += [os.path.join(ckpt_dir, n) for n in sorted(names, reverse=True) if STEP_FILE.match(n)]
    if run_dir and os.path.isdir(run_dir):
        candidates += [os.path.join(run_dir, n) for n in sorted(os.listdir(run_dir), reverse=True) if HPC_FILE.match(n)]
    problems, readable = [], []
    for path in candidates:
        try:
            ckpt = load_checkpoint_meta(path)
            readable.append((int(ckpt["global_step"]), -len(readable), path, ckpt))
        except Exception as e:  # truncated / 0-byte / foreign file: try the next one
            problems.append(f"{os.path.basename(path)} ({type(e).__name__}: {str(e)[:80] or 'unreadable'})")
    chosen = None
    for step, _, path, ckpt in sorted(readable, key=lambda r: r[:2], reverse=True):  # newest first: one hash
        problem = digest_problem(path)  # loadable is not intact: flipped bytes load without a word
        if problem is None:
            chosen = step, path, ckpt
            break
        problems.append(f"{os.path.basename(path)} (damaged: {problem})")
    if chosen is None:
        if problems:
            raise RunDirError(f"no readable checkpoint in {ckpt_dir} that its digest accepts: {', '.join(problems)}; "
                              "start a new out_dir (or overwrite=true)")
        aside = sorted(n for n in names if n.endswith(NONFINITE_SUFFIX))
        if aside:  # the NaN stop set every checkpoint aside: neither resume=true nor resume=auto can continue
            raise RunDirError(f"{ckpt_dir} holds only checkpoints set aside after a NaN/inf stop ({', '.join(aside)}: "
                              "their weights gave a non-finite loss, never resumed from); start again with "
                              "overwrite=true and a lower optim.lr (or a higher optim.warmup_steps)")
        return None
    step, path, ckpt = chosen
    if problems:
        print(f"[mixtrain] unreadable or damaged checkpoint(s) {', '.join(problems)}; resuming from "
              f"{os.path.basename(path)} (step {step}) instead", flush=True)
    return path, ckpt


def checked_checkpoint(path: str) -> dict[str, Any]:
    """An explicit ckpt_path, loaded once its digest (if it has one) accepts it."""
    problem = digest_problem(path)
    if problem:
        raise RunDirError(f"ckpt_path={path} is damaged ({problem}); pass another checkpoint (the run's "
                          "checkpoints/stepNNNNNNN.ckpt), or resume=true to use the newest intact one")
    return load_checkpoint_meta(path)


def load_checkpoint_meta(path: str) -> dict[str, Any]:
    """A checkpoint file, or a sharded checkpoint folder's non-tensor part (Lightning's
    ModelParallelStrategy writes `meta.pt` next to the shards): enough to plan a resume."""
    if os.path.isdir(path):
        return _load(os.path.join(path, SHARDED_META))
    return _load(path)


def consolidated_checkpoint(path: str) -> dict[str, Any]:
    """A sharded (FSDP2 / ModelParallelStrategy) checkpoint folder as one full checkpoint dict, in
    memory (every shard read on this one process, full tensors; what Lightning's consolidation
    `_load_distributed_checkpoint` does, here with torch alone); a file is read as it is.
    mixtrain/model/export.py calls it, so exporting an FSDP run needs no manual step."""
    if not os.path.isdir(path):
        return _load(path)
    if not os.path.isfile(os.path.join(path, ".metadata")):
        raise ValueError(f"{path} is a folder but not a sharded checkpoint (no .metadata in it); pass a checkpoint "
                         "file, or a folder mixtrain.train wrote with trainer=fsdp")
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    checkpoint: dict[str, Any] = {}  # filled with every saved entry, full tensors (the empty planner)
    _load_state_dict(checkpoint, storage_reader=FileSystemReader(path), planner=_EmptyStateDictLoadPlanner(),
                     no_dist=True)
    meta = os.path.join(path, SHARDED_META)  # the non-tensor part, as Lightning merges it
    checkpoint.update(torch.load(meta, map_location="cpu") if os.path.isfile(meta) else {})
    return checkpoint
