"""The documented chain, end to end on tiny shards: proxy mixtures -> sweep -> collect -> fit -> optimise -> train."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixtrain.fitting.proxy import proxy_mixtures

REPO = Path(__file__).resolve().parents[2]


def test_proxy_mixtures_are_distinct_and_valid(tiny_data_dir):
    mixes = proxy_mixtures(str(tiny_data_dir), 6, seed=3, with_entropy=False)
    assert [label for label, _ in mixes[:2]] == ["uniform", "natural"] and len(mixes) == 6
    for _, w in mixes:
        assert set(w) == {"code", "prose", "tables"} and abs(sum(w.values()) - 1) < 1e-9
    assert mixes == proxy_mixtures(str(tiny_data_dir), 6, seed=3, with_entropy=False)  # seeded


@pytest.mark.slow  # ~80 s: four proxy runs as subprocesses; the default suite keeps the in-process pieces
def test_sweep_collect_fit_optimise_train(tiny_data_dir, tmp_path):
    out = tmp_path / "proxy"
    env = {**os.environ, "PYTHON": sys.executable, "LAW": "bimix", "TARGET_STEP": "200", "WANDB_MODE": "offline",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", "launch/proxy_sweep.sh", str(tiny_data_dir), str(out), "4", "prepare_if_missing=false",
         "seq_len=32", "batch_size=4", "trainer.max_steps=12", "trainer.val_check_interval=3",
         "val_blocks_per_domain=4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert len(list((out / "runs").glob("*/summary.json"))) == 4
    header = (out / "table.csv").read_text().splitlines()[0].split(",")
    assert {"run", "step", "w/code", "loss/code"} <= set(header)
    # constant-LR proxies (the default): every run gives comparable observations at several budgets
    for run_dir in (out / "runs").glob("*/"):
        if (run_dir / "config.yaml").exists():
            assert yaml.safe_load((run_dir / "config.yaml").read_text())["optim"]["schedule"] == "constant"
    rows = [dict(zip(header, line.split(","))) for line in (out / "table.csv").read_text().splitlines()[1:]]
    steps_per_run = {r["run"]: set() for r in rows}
    for r in rows:
        steps_per_run[r["run"]].add(float(r["step"]))
    assert len(steps_per_run) == 4 and all(s == {3.0, 6.0, 9.0, 12.0} for s in steps_per_run.values())
    weights = yaml.safe_load((out / "weights.yaml").read_text())["weights"]
    assert set(weights) == {"code", "prose", "tables"} and sum(weights.values()) == pytest.approx(1.0, abs=1e-6)

    from hydra import compose, initialize_config_dir

    from conftest import train_composed as train

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'final'}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "trainer.max_steps=3", "val_blocks_per_domain=2", "mixing=manual",
            f"mixing.weights_file={out / 'weights.yaml'}", "trainer.val_check_interval=3", "table_at_end=false"])
    summary = train(cfg)
    assert summary["initial_weights"] == pytest.approx(weights)

    # the same law through mixing=law: its optimum at the target step is what weights.yaml holds
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'law'}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "trainer.max_steps=3", "val_blocks_per_domain=2", "mixing=law",
            f"mixing.law_file={out / 'law.json'}", "mixing.step=200", "trainer.val_check_interval=3",
            "table_at_end=false"])
    summary = train(cfg)
    assert summary["initial_weights"] == pytest.approx(weights, abs=1e-6)
