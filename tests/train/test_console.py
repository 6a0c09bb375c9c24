"""Tests for mixtrain.train.console: the training progress line counts optimizer steps against max_steps
and shows loss, val loss, tokens/s and the mixture; no "Epoch 0/-2", no "v_num"."""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir

from mixtrain.train.console import mixture_summary, status_line

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def test_mixture_summary_and_status_line():
    metrics = {"mix/code": 0.2, "mix/prose": 0.5, "mix/tables": 0.3, "mix/tokens/code": 999.0, "train/loss": 3.4567}
    assert mixture_summary(metrics) == "prose .50 tables .30 code .20"
    many = {f"mix/d{i}": w for i, w in enumerate([0.05, 0.3, 0.1, 0.25, 0.2, 0.1])}
    assert mixture_summary(many, max_shown=3) == "d1 .30 d3 .25 d4 .20 +3"
    assert mixture_summary({"mix/only": 1.0}) == "only 1.00"
    assert status_line(metrics, 12_345.0) == "loss 3.457 | 12.3k tok/s | mix prose .50 tables .30 code .20"
    assert status_line({}, None) == ""


def test_training_console_counts_steps_with_gradient_accumulation(tiny_data_dir, tmp_path, capfd):
    from conftest import train_composed as train

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'run'}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "global_batch_tokens=256", "val_blocks_per_domain=4", "table_at_end=true",
            "trainer.max_steps=3", "trainer.enable_progress_bar=true", "trainer.val_check_interval=3",
            "trainer.log_every_n_steps=1", "progress_every_n_steps=1"])
    assert cfg.trainer.enable_progress_bar
    train(cfg)  # 2 micro-batches per step
    out, err = capfd.readouterr()
    # stderr is not a terminal here (as in a SLURM .out file): whole lines, one per step, no carriage returns
    assert "\r" not in err
    shown = [line for line in err.splitlines() if line.startswith("train ")]
    steps = [int(re.match(r"train (\d)/3 steps \[", line)[1]) for line in shown]
    # one line a step, plus one after each validation (Lightning's val_check_interval counts micro-batches:
    # here after step 1 and step 3)
    assert steps == sorted(steps) and set(steps) == {1, 2, 3} and len(steps) <= 5, err
    final = shown[-1]
    assert re.match(r"train 3/3 steps ", final), final
    # the end: the table with its fixed rows, then the next commands with this run's paths
    assert "target (importance-weighted)" in out and "mean (unweighted)" in out
    run = tmp_path / "run"
    assert out.strip().splitlines()[-1] == (f"[mixtrain] next: mixtrain export {run} --out {run}/hf | mixtrain generate "
                                            f"{run} --prompt 'Once upon a time' | mixtrain report {run} --out {run}/report")
    assert re.search(r"loss \d+\.\d{3} \| val \d+\.\d{3} \| [\d.]+k? tok/s \| mix (\w+ [.\d]+ ?){3}", final), final
    assert "Epoch" not in err and "v_num" not in err and "6/" not in final


def test_plain_progress_lines_every_n_steps_or_seconds():
    import io

    from mixtrain.train.console import PlainProgress

    stream = io.StringIO()
    by_steps = PlainProgress(stream, total=10, initial=0, every_n_steps=4, every_s=1e9)
    for step in range(1, 11):
        by_steps.update(step, f"loss {step}")
    assert [line.split()[1] for line in stream.getvalue().splitlines()] == ["4/10", "8/10"]  # 10: at the end
    stream = io.StringIO()
    by_time = PlainProgress(stream, total=None, initial=5, every_n_steps=1000, every_s=1e-9)
    by_time.update(6, "loss 1.000")
    assert re.fullmatch(r"train 6/\? steps \[00:00<\?\] loss 1\.000\n", stream.getvalue())
