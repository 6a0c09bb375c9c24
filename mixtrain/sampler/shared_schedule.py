"""The weight schedule shared by the main process and every DataLoader worker of a rank.

Place in the flow: train/mixing_controller.py -> `MixtureStream.set_weights()` -> **shared_schedule.py** (shared
memory) -> plan.py reads the weights that govern each planned global batch (stream.py).

An entry says "from global batch `start` on, draw with these weights"; the last entry with
start <= g governs g. Every rank appends the same entries at the same batches (the weights
are broadcast, the start follows from the consumed position), so the plan is identical on all.

Storage follows the run, not a fixed maximum:
* The buffer starts small: `default_capacity` is what can be live at once (entries that still
  govern a batch some reader may plan), a few dozen rows of N float64 whatever the run length.
* When it is full, entries that only govern batches below the lowest batch anyone can still
  need are merged away (`compact`): every batch >= that point keeps its governing weights, so
  no stream and no resume (which starts at the consumer's position) changes.
* While no worker process holds the buffer (before the first multi-worker iteration, or with
  num_workers=0) a full buffer that cannot be compacted grows (doubling); a checkpoint's whole
  schedule is loaded that way. Persistent workers keep the tensors they inherited and no channel
  could hand them a new one, so once workers share the buffer it only compacts.
Readers in other processes use a seqlock: `version` is odd while rows move; they retry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mixtrain.weights import normalize_weights

log = logging.getLogger(__name__)


def default_capacity(weight_lag_batches: int, window_batches: int, num_workers: int, prefetch_factor: int) -> int:
    """Entries that can be live at once, doubled for headroom (>= 32).

    A change lands at most lag + window batches past the consumer; readers lag behind it by at
    most what the loader holds (num_workers x prefetch + 2) plus the window a worker is planning.
    Entries have distinct starts, at most one per window except at a rescaled resume.
    """
    span = weight_lag_batches + 2 * window_batches + num_workers * (prefetch_factor + 1) + 2
    return max(32, 2 * (math.ceil(span / max(1, window_batches)) + 2))


class SharedSchedule:
    """Append-only (start, weights) entries in shared memory; O(log n) lookups by global batch."""

    def __init__(self, num_domains: int, capacity: int):
        if capacity < 2:
            raise ValueError(f"max_schedule_entries must be >= 2, got {capacity}")
        self.num_domains = int(num_domains)
        # starts are their own contiguous column, so lookups are a binary search without a copy
        self._starts = torch.zeros(capacity, dtype=torch.int64).share_memory_()
        self._rows = torch.zeros(capacity, num_domains, dtype=torch.float64).share_memory_()
        self._len = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._version = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.shared_with_workers = False  # set by the loader once worker processes hold the buffer

    @property
    def capacity(self) -> int:
        return int(self._starts.shape[0])

    def __len__(self) -> int:
        return int(self._len[0])

    @property
    def nbytes(self) -> int:
        return self._starts.nbytes + self._rows.nbytes

    # ------------------------------------------------------------ main process (the only writer)
    def append(self, start: int, row: np.ndarray, lowest_needed: Callable[[], int]) -> None:
        n = len(self)
        if n >= self.capacity:
            self.compact(lowest_needed())
            n = len(self)
            if n >= self.capacity:
                if self.shared_with_workers:
                    raise RuntimeError(
                        f"weight schedule is full: all {n} entries may still be needed by a worker; "
                        "raise sampler max_schedule_entries"
                    )
                self._grow(2 * self.capacity)
        # Write the row before publishing the new length: a worker never reads a half-written row.
        self._starts[n] = int(start)
        self._rows[n] = torch.from_numpy(np.asarray(row, dtype=np.float64))
        self._len[0] = n + 1

    def replace_last(self, row: np.ndarray) -> None:
        self._rows[len(self) - 1] = torch.from_numpy(np.asarray(row, dtype=np.float64))

    def clear(self) -> None:
        self._len[0] = 0

    def reserve(self, num_entries: int) -> None:
        """Room for `num_entries` without compaction, where growing is allowed (no worker holds it)."""
        if num_entries > self.capacity and not self.shared_with_workers:
            self._grow(num_entries)

    def _grow(self, capacity: int) -> None:
        n = len(self)
        starts = torch.zeros(capacity, dtype=torch.int64).share_memory_()
        rows = torch.zeros(capacity, self.num_domains, dtype=torch.float64).share_memory_()
        starts[:n], rows[:n] = self._starts[:n], self._rows[:n]
        self._starts, self._rows = starts, rows

    def compact(self, lowest_needed: int) -> None:
        """Merge away entries that only govern batches below `lowest_needed` (the last of them
        stays: it governs `lowest_needed`). Rows move down under the seqlock."""
        n = len(self)
        keep_from = int(np.searchsorted(self._starts[:n].numpy(), lowest_needed, side="right")) - 1
        if keep_from <= 0:
            return
        starts, rows = self._starts[keep_from:n].clone(), self._rows[keep_from:n].clone()
        self._version[0] += 1  # odd: rows are moving
        self._starts[: n - keep_from] = starts
        self._rows[: n - keep_from] = rows
        self._len[0] = n - keep_from
        self._version[0] += 1  # even: consistent again
        log.info("weight schedule compacted: %d entries before batch %d merged away", keep_from, int(starts[0]))

    # ------------------------------------------------------------ reads (main process)
    def starts(self) -> np.ndarray:
        return self._starts[: len(self)].numpy()

    def row(self, i: int) -> np.ndarray:
        return self._rows[i].numpy()

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        return self._starts[:n].numpy().copy(), self._rows[:n].numpy().copy()

    def governing(self, batch_index: int) -> int:
        """Index of the entry that governs `batch_index`; -1 if it was compacted away."""
        return int(np.searchsorted(self.starts(), batch_index, side="right")) - 1

    # ------------------------------------------------------------ reads (any process)
    def slice(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, rows) of the entries governing batches first..last: O(log n + their number).

        Safe while the main process appends (rows are written before the length is published)
        or compacts (retry if the version moved or is odd).
        """
        while True:
            version = int(self._version[0])
            if version % 2 == 0:
                n = len(self)
                starts_all = self._starts[:n].numpy()
                lo = max(int(np.searchsorted(starts_all, first, side="right")) - 1, 0)
                hi = max(int(np.searchsorted(starts_all, last, side="right")), lo + 1)
                starts, rows = starts_all[lo:hi].copy(), self._rows[lo:hi].numpy().copy()
                if int(self._version[0]) == version and len(starts) == hi - lo:
                    return starts, rows
            time.sleep(0)  # let the writer finish its compaction


def checked_schedule(schedule: Any, next_batch: int, domains: Sequence[str]) -> list[tuple[int, dict[str, float]]]:
    """A checkpoint's weight schedule, validated: entries [start, weights] with integer starts in
    strictly increasing order, the first at or before next_batch (it governs the resume point)."""
    if not isinstance(schedule, Sequence) or isinstance(schedule, str) or len(schedule) == 0:
        raise ValueError(f"checkpoint sampler schedule must be a non-empty list of [start, weights], got {schedule!r}")
    out: list[tuple[int, dict[str, float]]] = []
    for i, entry in enumerate(schedule):
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2:
            raise ValueError(f"checkpoint sampler schedule entry {i} must be [start, weights], got {entry!r}")
        start, weights = entry
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"checkpoint sampler schedule entry {i}: start {start!r} is not a batch index (int >= 0)")
        if out and start <= out[-1][0]:
            raise ValueError(
                f"checkpoint sampler schedule entry {i}: start {start} is not after entry {i - 1}'s {out[-1][0]}; "
                "starts must strictly increase (the checkpoint is corrupt or was edited)"
            )
        out.append((int(start), normalize_weights(weights, domains, what=f"checkpoint schedule entry {i} (batch {start})")))
    if out[0][0] > next_batch:
        raise ValueError(
            f"checkpoint sampler schedule starts at batch {out[0][0]}, after its next batch {next_batch}: "
            "no weights govern the resume point (the checkpoint is corrupt)"
        )
    return out
