"""Test probe for launches through torchrun / srun (tests/train/test_launch.py): on PYTHONPATH, Python
imports it in every process. With MIXTRAIN_PROBE_DIR set it

* records every file write (open for writing, mkdir, rename/replace, remove, rmtree) under
  MIXTRAIN_PROBE_WATCH by a process whose global rank (RANK / SLURM_PROCID) is not 0, into
  PROBE_DIR/writes_rank<r>.txt: a non-zero rank must write nothing in the run directory;
* saves each rank's final model weights after Trainer.fit to PROBE_DIR/weights_rank<r>.pt
  (MIXTRAIN_PROBE_WEIGHTS=1), and with MIXTRAIN_PROBE_STEP_SLEEP_S sleeps that long after every
  training batch and writes PROBE_DIR/step_rank<r>.txt (the step reached), so a test can signal
  a run in the middle.
"""

import os
import sys

PROBE = os.environ.get("MIXTRAIN_PROBE_DIR")
RANK = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))

if PROBE:
    WATCH = os.path.realpath(os.environ.get("MIXTRAIN_PROBE_WATCH", "/nonexistent"))
    _busy = [False]

    def _watched(path) -> bool:
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str):
            return False
        full = os.path.realpath(path)
        return full == WATCH or full.startswith(WATCH + os.sep)

    def _record(event, path):
        _busy[0] = True
        try:
            with open(os.path.join(PROBE, f"writes_rank{RANK}.txt"), "a") as f:
                f.write(f"{event} {path}\n")
        finally:
            _busy[0] = False

    def _hook(event, args):
        if _busy[0] or RANK == "0":
            return
        if event == "open":
            path, mode, flags = args
            writing = (mode and any(c in str(mode) for c in "wax+")) or (flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and _watched(path):
                _record(event, path)
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate", "os.symlink"):
            if _watched(args[0]):
                _record(event, args[0])
        elif event == "os.rename":
            if _watched(args[0]) or _watched(args[1]):
                _record(event, f"{args[0]} -> {args[1]}")

    sys.addaudithook(_hook)

    def _save_weights_after_fit():
        try:
            import lightning.pytorch as pl
            import torch
        except ImportError:  # not a training process (e.g. the stand-in srun under another python)
            return

        fit = pl.Trainer.fit

        sleep_s = float(os.environ.get("MIXTRAIN_PROBE_STEP_SLEEP_S", "0"))

        class Slow(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                import time

                with open(os.path.join(PROBE, f"step_rank{trainer.global_rank}.txt"), "w") as f:
                    f.write(str(trainer.global_step))
                time.sleep(sleep_s)

        def fit_and_save(self, model, *args, **kwargs):
            if sleep_s:
                self.callbacks.append(Slow())
            out = fit(self, model, *args, **kwargs)
            # FSDP2: each rank holds a shard (DTensor); full_tensor() gathers it (every rank, same order)
            state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu().clone()
                     for k, v in model.state_dict().items()}
            torch.save(state, os.path.join(PROBE, f"weights_rank{self.global_rank}.pt"))
            return out

        pl.Trainer.fit = fit_and_save

    if os.environ.get("MIXTRAIN_PROBE_WEIGHTS") == "1":
        _save_weights_after_fit()
