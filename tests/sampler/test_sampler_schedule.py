"""The shared weight schedule (mixtrain.sampler.shared_schedule): memory that follows the run."""

from __future__ import annotations

import numpy as np
import pytest

from mixtrain.sampler.shared_schedule import SharedSchedule, default_capacity


def _row(i, n=3):
    return np.full(n, float(i + 1))


def test_grows_while_no_worker_holds_it_and_compacts_once_they_do():
    s = SharedSchedule(3, 4)
    for i in range(10):  # nothing can be compacted (everything still needed from batch 0): it grows
        s.append(i * 2, _row(i), lambda: 0)
    assert len(s) == 10 and s.capacity == 16
    assert s.governing(7) == 3 and s.row(3).tolist() == [4.0, 4.0, 4.0]
    s.shared_with_workers = True  # workers now hold the buffer: it may only compact
    for i in range(10, 16):
        s.append(i * 2, _row(i), lambda: 0)
    with pytest.raises(RuntimeError, match="weight schedule is full.*max_schedule_entries"):
        s.append(40, _row(16), lambda: 0)
    s.append(40, _row(16), lambda: 25)  # readers passed batch 25: what governs batch 25 on is kept
    starts, rows = s.entries()
    assert starts.tolist() == [24, 26, 28, 30, 40] and s.capacity == 16
    assert rows[0].tolist() == _row(12).tolist()


def test_default_capacity_is_small_and_follows_lag_and_prefetching():
    assert default_capacity(8, 32, 0, 0) == 32
    assert default_capacity(64, 1, 8, 4) == 2 * (64 + 2 + 8 * 5 + 2 + 2)
    s = SharedSchedule(2048, default_capacity(8, 32, 0, 0))
    assert s.nbytes < 1 << 20  # 32 rows of 2048 float64: 0.5 MB (was 16384 rows: 268 MB)
