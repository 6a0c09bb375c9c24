"""Two CPU processes (gloo) through the real DDP path: disjoint data, identical weights, exact resume.

The main run has 2 DataLoader workers per rank and two weight changes (set after steps 2 and 6,
effective at batches 8 and 12: next + lag 6, windows of one global batch); the resumed run
restarts from the step-4 checkpoint, before either change took effect, with 0 workers.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "scripts" / "ddp_probe.py"
STEPS = 16


def _domains(data_dir):
    return json.loads((Path(data_dir) / "manifest.json").read_text())["domains"]


def _changes(data_dir):
    a, b, c = _domains(data_dir)
    return {2: {a: 0.0, b: 0.5, c: 0.5}, 6: {a: 0.5, b: 0.0, c: 0.5}}  # W1 drops domain a, W2 domain b


def _run(probe_dir, crash, data_dir, out_dir, *extra, num_workers=2):
    cmd = [sys.executable, str(PROBE), str(probe_dir), crash,
           "experiment=smoke", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.precision=32-true", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false",
           "seq_len=32", "batch_size=4", "val_blocks_per_domain=6", f"trainer.max_steps={STEPS}",
           "trainer.val_check_interval=8", "checkpoint_every_n_steps=4", "table_at_end=false",
           "mixing=temperature", f"sampler.num_workers={num_workers}", "sampler.prefetch_factor=2",
           "sampler.window_samples=8", "sampler.weight_lag_batches=6", *extra]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "PROBE_SET_WEIGHTS": json.dumps(_changes(data_dir))}
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
    assert len(r0) == len(r1) == STEPS
    blocks0 = {tuple(b) for row in r0 for b in row["blocks"]}  # (domain, block) pairs
    blocks1 = {tuple(b) for row in r1 for b in row["blocks"]}
    assert blocks0.isdisjoint(blocks1)
    for a, b in zip(r0, r1):
        assert a["batch_index"] == b["batch_index"]
        assert a["weights"] == b["weights"]
        assert a["domain_samples"] == b["domain_samples"]  # global accounting agrees on both ranks


def test_global_batch_composition_and_token_accounting(ddp_full, tiny_data_dir):
    r0, r1 = _probe(ddp_full / "probe", 0), _probe(ddp_full / "probe", 1)
    domains = _domains(tiny_data_dir)
    counts = [0] * len(domains)
    for row in r0 + r1:
        for d in row["domain"]:
            counts[d] += 1
    # both ranks' samples together are exactly what the sampler accounted for
    assert dict(zip(domains, counts)) == r0[-1]["domain_samples"]
    rows = _metrics(ddp_full / "run")
    last = rows[-1]
    assert int(last["step"]) == STEPS
    assert float(last["tokens"]) == STEPS * 2 * 4 * 32  # steps x ranks x batch x seq_len
    assert sum(float(last[f"mix/tokens/{d}"]) for d in domains) == float(last["tokens"])
    for d, n in zip(domains, counts):
        assert float(last[f"mix/tokens/{d}"]) == n * 32


def test_weight_changes_govern_the_batches_after_their_effective_batch(ddp_full, tiny_data_dir):
    for rank in (0, 1):
        changes = [json.loads(line) for line in open(ddp_full / "probe" / f"changes{rank}.jsonl")]
        assert changes == [{"step": 2, "effective_batch": 8}, {"step": 6, "effective_batch": 12}]
    rows = _probe(ddp_full / "probe", 0) + _probe(ddp_full / "probe", 1)
    drawn = {part: [d for r in rows if lo <= r["batch_index"] < hi for d in r["domain"]]
             for part, (lo, hi) in {"w0": (0, 8), "w1": (8, 12), "w2": (12, STEPS)}.items()}
    assert {0, 1} <= set(drawn["w0"])  # the initial weights drew both domains the changes drop
    assert len(drawn["w1"]) == len(drawn["w2"]) == 4 * 2 * 4  # 4 global batches of 8 samples each
    assert 0 not in drawn["w1"] and 1 not in drawn["w2"]  # every sample governed by the new weights


def test_two_process_resume_continues_exactly(ddp_full, tiny_data_dir, tmp_path):
    # crash at step 6, after the step-4 checkpoint: the resumed run restores the first change
    # (pending, effective at batch 8) from the checkpoint and makes the second again after step 6
    crashed = _run(tmp_path / "probe", "6", tiny_data_dir, tmp_path / "run")
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr + crashed.stdout
    # resumed without workers: the changes must land on the same batches for any worker count
    resumed = _run(tmp_path / "probe_resumed", "-", tiny_data_dir, tmp_path / "run", "resume=true", num_workers=0)
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
        assert summary["step"] == 2 and summary["strategy"] == job.split("-")[1]
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()  # the job's run dir holds all of it
        rows = _metrics(sweep / job)
        steps = [int(float(r["step"])) for r in rows]
        assert steps == sorted(set(steps)), "each step logged once: one process group wrote this run"
        # both ranks' samples were counted: 2 steps x 2 ranks x 4 sequences x 32 tokens
        assert float(rows[-1]["tokens"] or 0) == 2 * 2 * 4 * 32


def test_is_rank_zero_is_the_one_rank_check(monkeypatch):
    """The Trainer's rank once there is one; before, the launcher's environment (torchrun/SLURM set
    RANK/SLURM_PROCID, Lightning's own launcher only LOCAL_RANK/NODE_RANK in the ranks it starts)."""
    from types import SimpleNamespace

    from mixtrain.train.launch import is_rank_zero

    for key in ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank Lightning's DDP launcher started
    assert not is_rank_zero()
    monkeypatch.setenv("RANK", "0")  # torchrun's global rank wins over the local one
    assert is_rank_zero()
    monkeypatch.setenv("RANK", "3")
    assert not is_rank_zero()
    assert is_rank_zero(SimpleNamespace(is_global_zero=True))  # a Trainer: its rank, whatever the env says
    assert not is_rank_zero(SimpleNamespace(is_global_zero=False))
