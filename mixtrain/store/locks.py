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
from collections.abc import Iterator

LOCK_NAME = ".prepare.lock"


@contextlib.contextmanager
def prepare_lock(data_dir: str | os.PathLike, timeout_s: float = 6 * 3600.0, poll_s: float = 0.5) -> Iterator[None]:
    """Exclusive flock on DIR/.prepare.lock (re-entrant within a process); TimeoutError after timeout_s."""
    path = os.path.realpath(os.path.join(data_dir, LOCK_NAME))
    if path in _HELD_LOCKS:  # flock is per open file: a second open() in this process would wait on itself
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "a+")
    try:
        deadline = time.monotonic() + float(timeout_s)
        announced = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{data_dir} is still being prepared by {holder} after {timeout_s:g} s (lock {path}); wait for it "
                        "and re-run, raise lock_timeout_s, or delete the lock file if that process is gone"
                    ) from None
                if not announced:
                    print(f"[prepare] {data_dir} is being prepared by {holder}; waiting for {path} "
                          f"(up to {timeout_s:g} s)", flush=True)
                    announced = True
                time.sleep(poll_s)
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
