"""bench/refit.py runs: its overrides compose (Hydra refuses `+key` for a key that exists), and a
two-step run of the benchmark itself prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_bench_refit_overrides_compose(tmp_path, load_bench):
    cfg = load_bench("refit")._config(str(tmp_path / "data"), str(tmp_path / "run"), 5, "ado", ["seq_len=32"])
    assert cfg.trainer["enable_model_summary"] is False and cfg.trainer["max_steps"] == 5 and cfg.seq_len == 32


@pytest.mark.slow
def test_bench_refit_runs(tiny_data_dir, tmp_path):
    proc = subprocess.run([sys.executable, "bench/refit.py", "--data-dir", str(tiny_data_dir), "--steps", "2",
                           "--strategies", "ado", "--threads", "1", "--out", str(tmp_path), "seq_len=32",
                           "batch_size=4", "val_blocks_per_domain=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| ado |" in proc.stdout and "| uniform (static) |" in proc.stdout
    assert (tmp_path / "ado" / "summary.json").is_file()
