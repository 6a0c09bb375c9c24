"""The prepare lock: one writer at a time per prepared folder (DIR or a URL's staging folder).

Place in the flow: below mixtrain/prepare/pipeline.py (one prepare per DIR) and remote.py (one pull
per staging folder on a node); both import it from here, so neither imports the other.

An exclusive flock on DIR/.prepare.lock; a second process (e.g. every job of a SLURM sweep)
waits up to `timeout_s`, naming the holder. Across nodes this needs a filesystem with working
flock (NFSv4 does; Lustre needs the `flock` mount option).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import IO

LOCK_NAME = ".prepare.lock"


@contextlib.contextmanager
def prepare_lock(data_dir: str | os.PathLike, timeout_s: float = 6 * 3600.0, poll_s: float = 0.5,
                 label: str = "prepare") -> Iterator[None]:
    """Exclusive flock on DIR/.prepare.lock (re-entrant within a process); TimeoutError after timeout_s.
    `label` names the stage in its messages (`mixtrain embed` takes the same lock on its work folder)."""
    path = os.path.realpath(os.path.join(data_dir, LOCK_NAME))
    if path in _HELD_LOCKS:  # flock is per open file: a second open() in this process would wait on itself
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "a+")
    try:
        announced = []

        def busy(timed_out: bool) -> None:
            holder = holder_text(path)
            if timed_out:
                raise TimeoutError(
                    f"{data_dir} is still in use by {holder} ({label}) after {timeout_s:g} s (lock {path}); wait for it "
                    "and re-run, raise lock_timeout_s, or delete the lock file if that process is gone")
            if not announced:
                print(f"[{label}] {data_dir} is in use by {holder}; waiting for {path} "
                      f"(up to {timeout_s:g} s)", flush=True)
                announced.append(True)

        wait_for_flock(f, busy, wait_s=timeout_s, poll_s=poll_s)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        _HELD_LOCKS.add(path)
        try:
            yield
        finally:
            _HELD_LOCKS.discard(path)
            f.seek(0)
            f.truncate()  # closing releases the flock; the (empty) file stays so waiters keep their inode
    finally:
        f.close()


_HELD_LOCKS: set[str] = set()


def holder_text(path: str) -> str:
    """Who holds the lock at `path`, as its holder wrote it ("pid N on HOST ...")."""
    try:
        with open(path) as f:
            return f.read().strip() or "another process (it wrote no name yet)"
    except OSError:
        return "another process"


def wait_for_flock(f: IO, busy: Callable[[bool], None], *, wait_s: float, poll_s: float) -> None:
    """Take an exclusive flock on the open file `f`, polling every `poll_s` s while another process
    holds it. Each time it is busy, `busy(timed_out)` runs: it raises to give up (it must once
    `timed_out`, after `wait_s`) and may say once whom it waits for. Shared by the prepare lock and
    store/run_lock.py, which differ only in what they say and whether they wait at all."""
    deadline = time.monotonic() + max(float(wait_s), 0.0)
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass  # busy() runs outside the except: its error is the user's message, not a chained traceback
        busy(time.monotonic() >= deadline)
        time.sleep(poll_s)
