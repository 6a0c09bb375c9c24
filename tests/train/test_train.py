"""End-to-end training tests on CPU: real shards (tiny_data_dir), real Trainer, a few steps."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from crash import CrashAt
from conftest import smoke_cfg

from conftest import train_composed as train

REPO = Path(__file__).resolve().parents[2]


def _cfg(data_dir, out_dir, *overrides):
    return smoke_cfg(data_dir, out_dir, *overrides)


def _rows(run_dir) -> list[dict[str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_few_steps_log_per_domain_metrics(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    summary = train(_cfg(tiny_data_dir, run, "trainer.max_steps=6", "trainer.val_check_interval=3",
                         "checkpoint_every_n_steps=3"))
    domains = json.loads((Path(tiny_data_dir) / "manifest.json").read_text())["domains"]
    rows = _rows(run)
    header = rows[0].keys()
    for col in ["step", "tokens", "train/loss", "val/loss"] + [f"val/{d}/loss" for d in domains] + \
               [f"mix/{d}" for d in domains] + [f"mix/tokens/{d}" for d in domains]:
        assert col in header, col
    assert len({r["step"] for r in rows}) == len(rows)  # one row per logged step
    val_rows = [r for r in rows if r["val/loss"]]
    assert len(val_rows) == 2
    for r in val_rows:  # val/loss is the unweighted mean of the per-domain losses
        per = [float(r[f"val/{d}/loss"]) for d in domains]
        assert float(r["val/loss"]) == pytest.approx(sum(per) / len(per), rel=1e-5)
    last = rows[-1]
    tokens = sum(float(last[f"mix/tokens/{d}"]) for d in domains)
    assert float(last["tokens"]) == tokens == 6 * 4 * 32  # steps x batch x seq_len
    assert summary["step"] == 6 and summary["tokens"] == 6 * 4 * 32
    assert set(summary["final"]) >= {f"val/{d}/loss" for d in domains}
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()




@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_after_crash_matches_uninterrupted_run(tiny_data_dir, tmp_path, num_workers):
    common = ["trainer.max_steps=12", "trainer.val_check_interval=4", "checkpoint_every_n_steps=4",
              f"sampler.num_workers={num_workers}", "trainer.log_every_n_steps=1"]
    full = tmp_path / "full"
    train(_cfg(tiny_data_dir, full, *common))
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tiny_data_dir, crashed, *common), extra_callbacks=[CrashAt(10)])
    train(_cfg(tiny_data_dir, crashed, *common, "resume=true"))
    a, b = _rows(full), _rows(crashed)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    keys = [k for k in a[0] if not k.startswith("perf/")]
    for ra, rb in zip(a, b):
        for k in keys:
            assert ra[k] == rb[k], (ra["step"], k, ra[k], rb[k])


def test_bad_inputs_give_clear_errors(tiny_data_dir, tmp_path):
    with pytest.raises(ValueError, match="lower seq_len or re-run prepare"):
        train(_cfg(tiny_data_dir, tmp_path / "r1", "seq_len=4096"))
    with pytest.raises(FileNotFoundError, match="python -m mixtrain.prepare"):
        train(_cfg(tmp_path / "empty", tmp_path / "r2"))
    with pytest.raises(ValueError, match="unknown domain"):
        train(_cfg(tiny_data_dir, tmp_path / "r3", "mixing=manual", "+mixing.weights={nope: 1.0}"))
    with pytest.raises(FileNotFoundError, match="resume=true but"):
        train(_cfg(tiny_data_dir, tmp_path / "r4", "resume=true"))


def test_secrets_never_reach_run_files(tiny_data_dir, tmp_path, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    run = tmp_path / "run"
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=2", "checkpoint_every_n_steps=2",
               "logger=wandb", f"+storage_options.api_key={secret}", f"+data.note=uses {secret}"))
    assert (run / "wandb").is_dir()  # wandb (offline) wrote its files into the run directory
    for path in run.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_checkpoint_from_other_domains_is_refused(tiny_data_dir, tmp_path):
    import torch

    run = tmp_path / "run"
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=2", "checkpoint_every_n_steps=2"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["mixtrain"]["domains"] = ["other"] + ckpt["mixtrain"]["domains"][1:]
    torch.save(ckpt, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match="does not match this run"):
        train(_cfg(tiny_data_dir, tmp_path / "r2", f"ckpt_path={tmp_path / 'foreign.ckpt'}", "trainer.max_steps=4"))


@pytest.mark.slow  # the default suite covers multirun through test_distributed.py's DDP sweep (a superset)
def test_hydra_multirun_two_jobs(tiny_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, "-m", "mixtrain.train", "-m", "mixing=uniform,natural", "experiment=smoke",
         f"data_dir={tiny_data_dir}", f"sweep_dir={sweep}", "prepare_if_missing=false", "seq_len=32",
         "batch_size=4", "trainer.max_steps=3", "val_blocks_per_domain=2", "trainer.val_check_interval=3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = sorted(sweep.rglob("summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["strategy"] for p in summaries} == {"uniform", "natural"}
    for p in summaries:  # the job's run directory holds everything of that job
        assert (p.parent / "metrics.csv").is_file() and (p.parent / "checkpoints" / "last.ckpt").is_file()


def test_datamodule_is_built_with_the_strategys_initial_weights(tiny_data_dir):
    """The DataModule gets its initial weights in its constructor, for exactly the training domains."""
    from mixtrain.train.config import SamplerConfig
    from mixtrain.train.datamodule import MixtureDataModule, read_layout

    layout = read_layout(tiny_data_dir)
    a, b, c = layout.domains
    shape = {"seq_len": 32, "batch_size": 4, "seed": 0, "val_blocks_per_domain": 2}
    dm = MixtureDataModule(layout, SamplerConfig(), initial_weights={a: 0.5, b: 0.25, c: 0.25}, **shape)
    assert dm.initial_weights == {a: 0.5, b: 0.25, c: 0.25} and dm.domains == layout.domains
    with pytest.raises(ValueError, match=rf"initial weights are for domains \['{a}', '{b}'\] but .* trains on"):
        MixtureDataModule(layout, SamplerConfig(), initial_weights={a: 0.5, b: 0.5}, **shape)
    only = read_layout(tiny_data_dir, eval_only_domains=[c])
    assert only.domains == [a, b] and only.val_domains == [a, b, c] and set(only.stats) == {a, b}
    with pytest.raises(ValueError, match=r"eval_only_domains: 'nope' is not a domain of"):
        read_layout(tiny_data_dir, eval_only_domains=["nope"])
