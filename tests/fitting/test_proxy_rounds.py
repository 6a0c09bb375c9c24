"""The sequential sweep in one command (launch/proxy_sweep.sh with ROUNDS), its resumption, and the rounds plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixtrain.errors import DataError
from mixtrain.fitting.search_rounds import main as rounds_main, read_rounds

REPO = Path(__file__).resolve().parents[2]
TINY = ["prepare_if_missing=false", "seq_len=32", "batch_size=4", "trainer.max_steps=12", "trainer.val_check_interval=3",
        "val_blocks_per_domain=4"]


def _sweep(data_dir, out, env):
    return subprocess.run(["bash", "launch/proxy_sweep.sh", str(data_dir), str(out), "4", *TINY],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
def test_rounds_train_search_and_resume(tiny_data_dir, tmp_path):
    out = tmp_path / "search"
    env = {**os.environ, "PYTHON": sys.executable, "ROUNDS": "1", "PER_ROUND": "2", "LAW": "bimix",
           "TARGET_STEP": "200", "WANDB_MODE": "offline",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    proc = _sweep(tiny_data_dir, out, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert len(list((out / "runs" / "round-0").glob("*/summary.json"))) == 4
    assert len(list((out / "runs" / "round-1").glob("*/summary.json"))) == 2
    header, *rows = (out / "table.csv").read_text().splitlines()
    assert len({r.split(",")[0] for r in rows}) == 6  # both rounds collected, run names kept apart
    nxt = (out / "round-1" / "next" / "files.txt").read_text().strip().split(",")
    assert len(nxt) == 2 and all(yaml.safe_load(open(p))["weights"] for p in nxt)
    assert [r["round"] for r in read_rounds(str(out))] == [0, 1] and (out / "rounds.png").stat().st_size > 0
    # a crash during round 1: its runs were not marked done -> the rerun skips round 0, retrains round 1 from its
    # kept mixtures and keeps the unfinished runs aside (not collected)
    (out / "runs" / "round-1" / ".done").unlink()
    proc = _sweep(tiny_data_dir, out, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "round 0: runs done, skipped" in proc.stdout
    assert (out / "round-1" / "next" / "files.txt").read_text().strip().split(",") == nxt
    assert len(list((out / "runs").glob(".incomplete-round-1-*"))) == 1
    assert len({r.split(",")[0] for r in (out / "table.csv").read_text().splitlines()[1:]}) == 6


def test_rounds_plot_reads_every_round_and_names_a_bad_file(tmp_path, capsys):
    for r, (v, lo, hi) in enumerate([(3.2, 3.1, 3.4), (3.1, 3.05, 3.2)]):
        d = tmp_path / f"round-{r}"
        d.mkdir()
        pred = {"proposal": {"full_fit": v, "lo": lo, "hi": hi}, "uniform": {"full_fit": 3.3, "lo": 3.25, "hi": 3.35},
                "run x": {"full_fit": 3.25, "lo": 3.2, "hi": 3.3}}
        (d / "weights.yaml").write_text(yaml.safe_dump({"weights": {"a": 0.5, "b": 0.5},
                                                        "proposal": {"chosen": "proposal", "predicted_mean_loss": pred}}))
    rounds_main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "round 1: predicted best 3.1000 [3.0500, 3.2000]" in out and (tmp_path / "rounds.png").exists()
    (tmp_path / "round-2").mkdir()
    (tmp_path / "round-2" / "weights.yaml").write_text("weights: {a: 1.0}\n")
    with pytest.raises(DataError, match=r"round-2/weights\.yaml: no 'proposal"):
        read_rounds(str(tmp_path))
