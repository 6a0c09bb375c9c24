"""Per-domain metrics at the logging interval (module.py, train/mixing_controller.py): complete metrics.csv rows."""

from __future__ import annotations

import csv
from pathlib import Path

from hydra import compose, initialize_config_dir

from conftest import train_composed as train

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def test_per_domain_columns_are_written_on_logged_rows_only(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={run}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=8", "val_blocks_per_domain=2", "table_at_end=false", "trainer.max_steps=7",
            "trainer.log_every_n_steps=3", "trainer.val_check_interval=7", "checkpoint_every_n_steps=7"])
    train(cfg)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    domains = ["code", "prose", "tables"]
    assert [r["step"] for r in rows] == ["3", "6", "7"]  # every 3rd step and the last one (with validation)
    for r in rows:
        for d in domains:
            assert r[f"mix/{d}"] and r[f"mix/tokens/{d}"] and r[f"train/{d}/loss"], (r["step"], d)
    # tokens are cumulative and agree with the per-domain columns on every row
    for r in rows:
        assert float(r["tokens"]) == sum(float(r[f"mix/tokens/{d}"]) for d in domains)
    assert float(rows[0]["tokens"]) == 3 * 8 * 32 and all(rows[-1][f"val/{d}/loss"] for d in domains)
