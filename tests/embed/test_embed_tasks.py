"""mixtrain embed as task i of n: the joined shares are the one-task embedding, row for row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixtrain.embed.pipeline import embed_corpus
from mixtrain.embed.store import load_docs, load_vectors, read_manifest
from mixtrain.embed.tasks import embed_tasks, share_folder, work_dir
from mixtrain.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"options": {"dim": 8}, "fit_docs": 1000, "batch_size": 16}


def _same_embedding(one: Path, many: Path) -> None:
    assert np.array_equal(load_vectors(one), load_vectors(many))  # bit for bit: same fit, row-wise transform
    a, b = load_docs(one), load_docs(many)
    assert sorted(a) == sorted(b)
    for column in a:
        assert list(a[column]) == list(b[column]), column
    assert read_manifest(one)["num_docs"] == read_manifest(many)["num_docs"]


def test_two_tasks_in_separate_processes_under_a_slurm_array_equal_one_task(tiny_raw_dir, tmp_path):
    embed_corpus(tiny_raw_dir, tmp_path / "one", **SETTINGS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_ARRAY_TASK_COUNT": "2"}
    for name in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_ARRAY_TASK_MIN"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "mixtrain.embed.cli", str(tiny_raw_dir), "--out", str(tmp_path / "two"),
           "--dim", "8", "--fit-docs", "1000", "--batch-size", "16", "--setup-timeout-s", "120"]
    procs = [subprocess.Popen(cmd, env={**env, "SLURM_ARRAY_TASK_ID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in (1, 0)]  # task 1 starts first and waits
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert sum("joined 2 shares" in log for log in logs) == 1, logs  # exactly one task joined
    assert "waiting for task 0's fitted embedder" in logs[0] or "share 1 of 2" in logs[0]
    _same_embedding(tmp_path / "one", tmp_path / "two")
    assert read_manifest(tmp_path / "two")["tasks"]["count"] == 2
    assert not work_dir(tmp_path / "two").exists()  # joined: the shares and the fitted copy are removed
    from mixtrain.cluster.pipeline import ClusterSettings, cluster_corpus

    for name in ("one", "two"):
        cluster_corpus(tmp_path / name, tmp_path / f"clusters-{name}", ClusterSettings(k=6, seed=1))
    assignments = [(tmp_path / f"clusters-{n}" / "assignments.csv").read_text() for n in ("one", "two")]
    assert assignments[0] == assignments[1] and len(assignments[0].splitlines()) == 181


def test_a_rerun_task_skips_its_complete_share_and_the_join_waits_for_every_share(tiny_raw_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "E"
    with pytest.raises(DataError, match="did not write .*setup.json"):
        embed_tasks(tiny_raw_dir, out, node_rank=1, num_nodes=3, setup_timeout_s=0.5, **SETTINGS)
    assert embed_tasks(tiny_raw_dir, out, node_rank=0, num_nodes=3, **SETTINGS) is None  # not the last: no join
    state = {"work": work_dir(out)}
    record = share_folder(state, 0, 3) / "share.json"
    stamp = record.stat().st_mtime_ns
    capsys.readouterr()
    assert embed_tasks(tiny_raw_dir, out, node_rank=0, num_nodes=3, **SETTINGS) is None
    said = capsys.readouterr().out
    assert "not refitted" in said and "share 0 of 3 complete, skipped" in said
    assert record.stat().st_mtime_ns == stamp  # the share was not rewritten
    with pytest.raises(DataError, match=r"share\(s\) \[1, 2\] of 3 are not complete.*--node-rank 1 --num-nodes 3"):
        embed_tasks(tiny_raw_dir, out, join_only=True, **SETTINGS)
    assert embed_tasks(tiny_raw_dir, out, node_rank=2, num_nodes=3, **SETTINGS) is None
    import mixtrain.embed.tasks as tasks

    def killed(*args):
        raise KeyboardInterrupt  # the last task dies while joining: its share is complete, E is not written

    monkeypatch.setattr(tasks, "_join", killed)
    with pytest.raises(KeyboardInterrupt):
        embed_tasks(tiny_raw_dir, out, node_rank=1, num_nodes=3, **SETTINGS)
    monkeypatch.undo()
    assert not out.exists()
    assert embed_tasks(tiny_raw_dir, out, join_only=True, **SETTINGS)["tasks"]["count"] == 3
    embed_corpus(tiny_raw_dir, tmp_path / "one", **SETTINGS)
    _same_embedding(tmp_path / "one", out)
    capsys.readouterr()
    assert embed_tasks(tiny_raw_dir, out, node_rank=1, num_nodes=3, **SETTINGS)["num_docs"] == 180
    assert "already joined" in capsys.readouterr().out
