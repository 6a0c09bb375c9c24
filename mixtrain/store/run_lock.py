"""The run lock: one writer per run directory (out_dir), held by global rank 0 for the whole run.

Place in the flow: mixtrain/train/run.py takes it first, before the resume plan reads or clears
anything in out_dir, and keeps it until summary.json is written; beside store/locks.py (the
prepare lock), in store/ because it guards an on-disk format (the run dir) that every stage reads.

Why: two `train` processes on one out_dir (two jobs with the same name, or a SLURM requeue whose
first instance still runs) both appended to metrics.csv and raced on the staged checkpoints.
An exclusive `flock` on `out_dir/.run.lock` makes the second one wait or refuse:

* a start that is not a requeue refuses at once, naming the holder's host and pid (RunDirError);
* a requeue (`resume=auto`, or SLURM_RESTART_COUNT > 0) waits up to `run_lock_timeout_s` for the
  first instance to stop, then plans its resume from what that instance left.

The lock file is never deleted (a waiter keeps its inode); its text names the current holder.
flock is released by the kernel when the holder dies (kill -9 included), so a stale lock needs no
cleaning. Across nodes it needs a filesystem with working flock: local disks and NFSv4 do;
Lustre needs the `flock` mount option (`localflock` only locks within one node); BeeGFS/GPFS
need their global-lock settings. Where flock is unsupported the lock raises OSError(ENOLCK):
reported, never ignored.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator

from mixtrain.errors import RunDirError
from mixtrain.store.locks import holder_text, wait_for_flock  # noqa: F401 (holder_text: patched in tests)

RUN_LOCK = ".run.lock"


@contextlib.contextmanager
def run_lock(out_dir: str, *, wait_s: float, waiting_reason: str | None, poll_s: float = 0.5) -> Iterator[str]:
    """Hold an exclusive flock on out_dir/.run.lock; yields the lock file's path.

    `waiting_reason` None: refuse at once when another process holds it (a new start or resume=true);
    a text (why this start may wait: "resume=auto", "SLURM requeue"): wait up to `wait_s` seconds,
    printing once whom it waits for, then RunDirError."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, RUN_LOCK)
    f = open(path, "a+")
    try:
        announced = []

        def busy(timed_out: bool) -> None:
            holder = holder_text(path)
            if waiting_reason is None:
                raise RunDirError(
                    f"out_dir={out_dir} is in use by {holder} (lock {path}): a second writer would mix its "
                    "metrics rows and checkpoints with that run's; wait for it to finish, pick another out_dir "
                    "(run_name=...), or, for a requeue of that job, pass resume=auto (waits up to "
                    "run_lock_timeout_s for it to stop, then resumes)")
            if timed_out:
                raise RunDirError(
                    f"out_dir={out_dir} is still in use by {holder} after waiting {wait_s:g} s ({waiting_reason}; "
                    f"lock {path}): stop that process (or wait for it) and submit again, or raise "
                    "run_lock_timeout_s")
            if not announced:
                print(f"[mixtrain] {waiting_reason}: out_dir={out_dir} is in use by {holder}; waiting up to "
                      f"{wait_s:g} s (run_lock_timeout_s) for it to stop, then resuming", file=sys.stderr,
                      flush=True)
                announced.append(True)

        wait_for_flock(f, busy, wait_s=wait_s, poll_s=poll_s)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()  # the file stays (waiters hold its inode); closing releases the flock
    finally:
        f.close()
