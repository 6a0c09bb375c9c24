"""Run directories on disk: their file names, finding them, reading metrics.csv, atomic writes.

Place in the flow: `mixtrain.train` writes RUN/ (metrics.csv, refits.jsonl, summary.json;
formats in docs/formats.md) -> **runfiles.py** -> mixtrain/fitting/collect.py (observation table),
the DoReMi strategy (mixtrain/mixing/doremi.py, its reference run) and mixtrain/report/ (tables,
plots). The writers (mixtrain/train/summary.py, mixtrain/train/mixing_controller.py, the
checkpoint writer mixtrain/train/checkpoints.py) use its one atomic writer. Pure: no torch,
Lightning, Hydra or pandas.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

METRICS = "metrics.csv"
REFITS = "refits.jsonl"
SUMMARY = "summary.json"
SKIP_DIRS = ("checkpoints", "wandb")  # never searched for runs (Lightning/wandb keep their own files there)


def find_run_dirs(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """[(run_dir, root)] for every directory at or under each root in `paths` holding metrics.csv.

    Sorted per root; a run reached from two roots is listed once (the first). Raises ValueError
    naming the root when it is not a directory or holds no run.
    """
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for p in paths:
        root = Path(p)
        if not root.is_dir():
            raise ValueError(f"{root}: not a directory (expected a run directory or a folder of runs)")
        hits = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
            if METRICS in filenames:
                hits.append(Path(dirpath))
        if not hits:
            raise ValueError(f"{root}: no {METRICS} in it or below it (is it a run directory?)")
        for hit in sorted(hits):
            if hit.resolve() not in seen:
                seen.add(hit.resolve())
                found.append((hit, root))
    return found


def run_names(found: list[tuple[Path, Path]]) -> list[str]:
    """A run's name is its directory's name; if two collide, every run is `<root name>/<path below it>`."""
    names = [run_dir.resolve().name for run_dir, _ in found]
    if len(set(names)) < len(names):
        names = [(Path(root.resolve().name) / os.path.relpath(run_dir, root)).as_posix().removesuffix("/.")
                 for run_dir, root in found]
    return names


def num(cell: str | None) -> float | None:
    """A metrics.csv cell as a float; None when empty or not a number."""
    if cell is None or cell.strip() == "":
        return None
    try:
        return float(cell)
    except ValueError:
        return None


class DamagedRowWarning(UserWarning):
    """A metrics.csv row skipped because it is damaged (named by file and line)."""


def read_metrics_rows(run_dir: str | os.PathLike) -> tuple[Path, list[str], list[dict[str, str]]]:
    """(file, header, rows as {column: cell}) of RUN/metrics.csv, cells as written (strings).

    Raises FileNotFoundError when the file is missing and ValueError when it is empty or has no
    `step` column, each naming the file. A header without rows is returned as it is (a run that
    has logged nothing yet): the caller decides whether that is an error. A damaged row
    (fewer cells than the header, a cell that is not a number, or a last line without its newline:
    a write cut short, whose last number may be cut inside, 7.0 for 7.0182) is skipped with a
    `DamagedRowWarning` naming the file and line, never read as a value.
    """
    file = Path(run_dir) / METRICS
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no {METRICS} (is {run_dir} a run directory written by mixtrain.train?)")
    text = file.read_text()
    lines = csv.reader(io.StringIO(text, newline=""))
    header = next(lines, [])
    if not header:
        raise ValueError(f"{file}: empty file (the run logged nothing yet?)")
    if "step" not in header:
        raise ValueError(f"{file}: no 'step' column; columns are {header} (format: docs/formats.md)")
    rows = []
    cut_short = not text.endswith("\n")  # every row the logger writes ends with a newline
    for cells in lines:
        line = lines.line_num  # the file's line (a quoted cell may span lines)
        problem = _row_problem(cells, header, last=cut_short and line == text.count("\n") + 1)
        if problem:
            warnings.warn(f"{file}:{line}: {problem}; row skipped", DamagedRowWarning, stacklevel=2)
            continue
        rows.append(dict(zip(header, cells)))
    return file, header, rows


def _row_problem(cells: list[str], header: list[str], *, last: bool) -> str | None:
    if not cells:
        return "empty line"
    if last:
        return "the last line has no newline (a write cut short: its last cell may be cut inside a number)"
    if len(cells) < len(header):  # cells past the header are dropped, as before (zip)
        return f"{len(cells)} cells, the header has {len(header)}"
    for name, cell in zip(header, cells):
        if cell.strip() and num(cell) is None:
            return f"column {name!r} holds {cell[:40]!r}, not a number"
    return None


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[BinaryIO], None], *,
                 tmp: str | os.PathLike | None = None, fsync: bool = False) -> None:
    """The one temp-file-then-rename writer: readers (and a kill) see the old file or the new one,
    never half of one. `data` is text (UTF-8), bytes, or a function that writes into the open
    binary temp file (torch.save, a streaming writer). The default temp name holds the pid, so two
    processes writing the same file never share a temp file; `tmp` names another (checkpoints use
    a suffix their cleanup knows). `fsync` flushes the bytes to disk before the rename (what a
    crash must not lose: checkpoints). A failed write removes the temp file and re-raises."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, *, indent: int | None = 2, sort_keys: bool = False,
                      allow_nan: bool = False) -> None:
    """JSON through `atomic_write`. NaN/inf are refused by default (JSON has no NaN)."""
    atomic_write(path, json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan))
