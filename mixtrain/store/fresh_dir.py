"""A folder a command is about to create: remembered before the start, removed again if the start fails.

Place in the flow: below every stage (pure os; no other mixtrain import). mixtrain/hydra_app.py takes a
`FreshDir(out_dir)` before `train` runs; if the run is refused or fails before it produced anything
(no checkpoint, no summary.json, no metrics row), `undo()` removes the run directory and the parent
folders this start created, so a refused run leaves no empty `out_dir` and no `.hydra/` behind.
A folder that existed before the start is never touched.
"""

from __future__ import annotations

import os
import shutil

PRODUCTS = ("summary.json",)  # a file that makes a run directory worth keeping
CHECKPOINT_SUFFIXES = (".ckpt",)


def _first_missing(path: str) -> str | None:
    """The outermost folder of `path` that does not exist yet (None if `path` exists)."""
    path = os.path.abspath(path)
    missing = None
    while not os.path.lexists(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _metrics_rows(run_dir: str) -> int:
    try:
        with open(os.path.join(run_dir, "metrics.csv")) as f:
            return max(sum(1 for _ in f) - 1, 0)  # minus the header
    except OSError:
        return 0


def holds_results(run_dir: str) -> bool:
    """True when `run_dir` holds something a person would want: a checkpoint, summary.json or metrics rows."""
    if any(os.path.exists(os.path.join(run_dir, name)) for name in PRODUCTS) or _metrics_rows(run_dir):
        return True
    for _root, _dirs, files in os.walk(os.path.join(run_dir, "checkpoints")):
        if any(f.endswith(CHECKPOINT_SUFFIXES) or f == "meta.pt" for f in files):
            return True
    return False


class FreshDir:
    """`FreshDir(out_dir)` before a start; `undo()` after a failed one (see the module docstring)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.created_from = _first_missing(self.path)  # None: the folder was there already

    def undo(self, _exc: BaseException | None = None) -> bool:
        """Remove what this start created, unless it holds results; True if something was removed."""
        if self.created_from is None or not os.path.isdir(self.path) or holds_results(self.path):
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        parent = os.path.dirname(self.path)  # then the empty parents this start created (runs/ of a fresh clone)
        while len(parent) >= len(self.created_from) and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
            if parent == self.created_from:
                break
            parent = os.path.dirname(parent)
        return not os.path.exists(self.path)
