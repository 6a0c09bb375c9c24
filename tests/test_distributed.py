"""Two CPU processes (gloo) through the real DDP path: disjoint data, identical weights, exact resume."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "scripts" / "ddp_probe.py"


def _run(probe_dir, crash, data_dir, out_dir, *extra):
    cmd = [sys.executable, str(PROBE), str(probe_dir), crash,
           "experiment=smoke", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.precision=32-true", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false",
           "seq_len=32", "batch_size=4", "val_blocks_per_domain=6", "trainer.max_steps=8",
           "trainer.val_check_interval=4", "checkpoint_every_n_steps=4", "table_at_end=false",
           "mixing=temperature", *extra]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _probe(probe_dir, rank):
    with open(Path(probe_dir) / f"rank{rank}.jsonl") as f:
        return [json.loads(line) for line in f]


def _metrics(run_dir):
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ddp_full(tiny_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    proc = _run(root / "probe", "-", tiny_data_dir, root / "run")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root


def test_ranks_read_disjoint_data_with_identical_weights(ddp_full):
    r0, r1 = _probe(ddp_full / "probe", 0), _probe(ddp_full / "probe", 1)
    assert len(r0) == len(r1) == 8
    blocks0 = {tuple(b) for row in r0 for b in row["blocks"]}  # (domain, block) pairs
    blocks1 = {tuple(b) for row in r1 for b in row["blocks"]}
    assert blocks0.isdisjoint(blocks1)
    for a, b in zip(r0, r1):
        assert a["batch_index"] == b["batch_index"]
        assert a["weights"] == b["weights"]
        assert a["domain_samples"] == b["domain_samples"]  # global accounting agrees on both ranks


def test_global_batch_composition_and_token_accounting(ddp_full, tiny_data_dir):
    r0, r1 = _probe(ddp_full / "probe", 0), _probe(ddp_full / "probe", 1)
    domains = json.loads((Path(tiny_data_dir) / "manifest.json").read_text())["domains"]
    counts = [0] * len(domains)
    for row in r0 + r1:
        for d in row["domain"]:
            counts[d] += 1
    # both ranks' samples together are exactly what the sampler accounted for
    assert dict(zip(domains, counts)) == r0[-1]["domain_samples"]
    rows = _metrics(ddp_full / "run")
    last = rows[-1]
    assert int(last["step"]) == 8
    assert float(last["tokens"]) == 8 * 2 * 4 * 32  # steps x ranks x batch x seq_len
    assert sum(float(last[f"mix/tokens/{d}"]) for d in domains) == float(last["tokens"])
    for d, n in zip(domains, counts):
        assert float(last[f"mix/tokens/{d}"]) == n * 32


def test_two_process_resume_continues_exactly(ddp_full, tiny_data_dir, tmp_path):
    crashed = _run(tmp_path / "probe", "6", tiny_data_dir, tmp_path / "run")
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr + crashed.stdout
    resumed = _run(tmp_path / "probe_resumed", "-", tiny_data_dir, tmp_path / "run", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    for rank in (0, 1):
        full = [r for r in _probe(ddp_full / "probe", rank) if r["batch_index"] >= 4]  # after the step-4 checkpoint
        after = _probe(tmp_path / "probe_resumed", rank)
        assert [(r["batch_index"], r["blocks"], r["first_tokens"], r["weights"]) for r in after] == \
               [(r["batch_index"], r["blocks"], r["first_tokens"], r["weights"]) for r in full]
    a, b = _metrics(ddp_full / "run"), _metrics(tmp_path / "run")
    keys = [k for k in a[0] if not k.startswith("perf/")]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


def test_multirun_with_ddp_runs_each_job_once(tiny_data_dir, tmp_path):
    """Hydra -m + Lightning DDP: each sweep point is one 2-process job; rank 1 never re-runs the sweep."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "mixtrain.train", "-m", "mixing=uniform,natural", "experiment=smoke",
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
           f"data_dir={tiny_data_dir}", f"sweep_dir={sweep}", "prepare_if_missing=false", "seq_len=32",
           "batch_size=4", "trainer.max_steps=2", "val_blocks_per_domain=2", "trainer.val_check_interval=2",
           "table_at_end=false"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0-uniform-seed0", "1-natural-seed0"], jobs  # no third job, no job run twice
    assert proc.stdout.count("[mixtrain] sweep job:") == 2
    for job in jobs:
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["step"] == 2
        rows = _metrics(sweep / job)
        steps = [int(float(r["step"])) for r in rows]
        assert steps == sorted(set(steps)), "each step logged once: one process group wrote this run"
        # both ranks' samples were counted: 2 steps x 2 ranks x 4 sequences x 32 tokens
        assert float(rows[-1]["tokens"] or 0) == 2 * 2 * 4 * 32
