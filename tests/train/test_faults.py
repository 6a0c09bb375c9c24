"""Run-directory safety under faults: re-runs, kills, corrupt checkpoints, rejected resumes,
NaN losses, secrets in overrides, validation settings. Real shards, real Trainer steps on CPU."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from crash import KillAt, NaNAt
from conftest import smoke_cfg, smoke_overrides

from conftest import train_composed as train

REPO = Path(__file__).resolve().parents[2]


_overrides = smoke_overrides
_cfg = smoke_cfg


def _steps(run) -> list[int]:
    with open(Path(run) / "metrics.csv", newline="") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def _rows(run) -> list[dict[str, str]]:
    with open(Path(run) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_new_run_into_existing_run_dir_is_refused_unless_overwrite(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)  # Hydra's own dir (hydra.run.dir = out_dir) is not a run
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=2", "checkpoint_every_n_steps=2"))
    before = {p: (run / p).read_bytes() for p in ("metrics.csv", "config.yaml", "summary.json")}
    with pytest.raises(FileExistsError, match="resume=true"):
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=3", "checkpoint_every_n_steps=3"))
    assert {p: (run / p).read_bytes() for p in before} == before  # nothing of the old run touched
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=3", "checkpoint_every_n_steps=3", "overwrite=true"))
    assert _steps(run) == [1, 2, 3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.suffix != ".sha256") == ["last.ckpt", "step0000003.ckpt"]
    assert json.loads((run / "summary.json").read_text())["step"] == 3


def test_unreadable_last_ckpt_falls_back_to_newest_good_step_checkpoint(tiny_data_dir, tmp_path, capfd):
    run = tmp_path / "run"
    common = ["trainer.val_check_interval=2", "checkpoint_every_n_steps=2"]
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=6", *common))
    ckpts = run / "checkpoints"
    (ckpts / "last.ckpt").write_bytes(b"")  # what a kill during a non-atomic copy left
    good = (ckpts / "step0000006.ckpt").read_bytes()
    (ckpts / "step0000006.ckpt").write_bytes(good[: len(good) // 2])  # truncated
    (ckpts / ".staged-step0000008.ckpt").write_bytes(b"x")  # leftovers of a killed run
    (ckpts / "last.ckpt.partial").write_bytes(b"x")
    capfd.readouterr()
    summary = train(_cfg(tiny_data_dir, run, "trainer.max_steps=8", *common, "resume=true"))
    out = capfd.readouterr().out
    assert "resuming from step0000004.ckpt (step 4)" in out and "last.ckpt" in out
    assert summary["step"] == 8
    assert _steps(run) == list(range(1, 9))
    assert not list(ckpts.glob(".staged-*")) and not list(ckpts.glob("*.partial"))
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 8


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_fails(tmp_path):
    from mixtrain.train.checkpoints import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 2, "x": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]


def test_kill_after_checkpoint_then_resume_keeps_every_metrics_row(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    common = ["trainer.max_steps=12", "trainer.val_check_interval=4", "checkpoint_every_n_steps=4"]
    script = (
        "import sys; from mixtrain.hydra_app import compose; from crash import KillAt; "
        "from mixtrain.train.run import train\n"
        f"cfg = compose('train', overrides={_overrides(tiny_data_dir, run, *common)!r})\n"
        "train(cfg, extra_callbacks=[KillAt(8)])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    # died hard right after step 8 (checkpointed, its row buffered): before the fix that row was lost
    assert proc.returncode == 9, proc.stderr[-3000:]
    train(_cfg(tiny_data_dir, run, *common, "resume=true"))
    rows = _rows(run)
    assert [int(float(r["step"])) for r in rows] == list(range(1, 13))  # no gap, no duplicate
    assert [int(float(r["step"])) for r in rows if r["val/loss"]] == [4, 8, 12]
    assert all(r["train/loss"] for r in rows)


def test_rejected_resume_writes_nothing(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=2", "checkpoint_every_n_steps=2"))
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="does not match this run: model.n_layer: 4 in the checkpoint, 2 now;") as err:
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", "resume=true", "model.n_layer=2"))
    assert "d_model" not in str(err.value)  # only the keys that differ, never the whole model dicts
    with pytest.raises(ValueError, match="resume_mixing=switch"):
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", "resume=true", "mixing=uniform"))
    with pytest.raises(ValueError, match=r"mixing.max_epochs: None -> 2"):
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", "resume=true", "mixing.max_epochs=2"))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files


def test_resume_with_mixing_switch_uses_new_weights_and_says_so(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    common = ["sampler.window_samples=4", "sampler.weight_lag_batches=2", "checkpoint_every_n_steps=4"]
    first = train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", *common))
    summary = train(_cfg(tiny_data_dir, run, "trainer.max_steps=12", *common, "resume=true", "mixing=uniform",
                         "resume_mixing=switch"))
    domains = list(first["initial_weights"])
    assert summary["strategy"] == "uniform"
    assert summary["initial_weights"] == first["initial_weights"]  # step 0 ran the natural weights
    (switch,) = summary["mixing_switches"]
    assert (switch["from"], switch["to"], switch["step"]) == ("natural", "uniform", 4)
    assert 4 <= switch["first_batch"] <= 12
    for d in domains:
        assert summary["final"][f"mix/{d}"] == pytest.approx(1 / len(domains))
    saved = (run / "config.yaml").read_text()
    assert "resumed_with_mixing_switch" in saved and "from: natural" in saved
    # the checkpoint now records the new strategy: a plain resume with uniform is accepted
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=13", *common, "resume=true", "mixing=uniform"))


def test_nonfinite_loss_stops_after_max_steps_and_never_checkpoints_nan(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="max_nonfinite_steps=3"):
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=12", "checkpoint_every_n_steps=1"),
              extra_callbacks=[NaNAt(3)])
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"))
    # step 3's weights are the ones the first NaN loss came from: set aside (tests/train/test_faults_run.py)
    assert [p.name for p in ckpts] == ["last.ckpt", "step0000001.ckpt", "step0000002.ckpt"]
    for p in ckpts:
        state = torch.load(p, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), p
    assert not (run / "summary.json").exists()


def test_single_nonfinite_step_is_skipped_and_summary_has_no_nan(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", "checkpoint_every_n_steps=1",
               "trainer.val_check_interval=2"), extra_callbacks=[NaNAt(3, transient=True)])
    text = (run / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert summary["final"]["train/loss"] is None and summary["final"]["val/loss"] is not None
    before = torch.load(run / "checkpoints" / "step0000003.ckpt", weights_only=True)["state_dict"]
    after = torch.load(run / "checkpoints" / "step0000004.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)  # the NaN step did not update weights


def test_validation_runs_at_the_last_step_and_zero_val_blocks_is_refused(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    summary = train(_cfg(tiny_data_dir, run, "trainer.max_steps=5", "trainer.val_check_interval=3",
                         "checkpoint_every_n_steps=5"))
    rows = _rows(run)
    assert [int(float(r["step"])) for r in rows if r["val/loss"]] == [3, 5]
    assert summary["final"]["val/loss"] == pytest.approx(float(rows[-1]["val/loss"]))
    with pytest.raises(ValueError, match="trainer.limit_val_batches=0"):
        train(_cfg(tiny_data_dir, tmp_path / "r2", "val_blocks_per_domain=0"))


def test_missing_data_dir_is_built_only_for_the_demo_path_or_explicit_data(tmp_path, monkeypatch):
    import mixtrain.prepare.pipeline
    import mixtrain.train.run as train_module
    from mixtrain.hydra_app import compose as compose_typed

    built = []
    monkeypatch.setattr(mixtrain.prepare.pipeline, "prepare", lambda cfg: built.append(str(cfg.data_dir)))
    typo = compose_typed("train", overrides=[f"data_dir={tmp_path / 'dat/demo'}"])
    demo = compose_typed("train", overrides=[])
    with pytest.raises(FileNotFoundError, match="python -m mixtrain.prepare"):
        train_module._ensure_data(typo, [])  # the default data: demo must not fill a mistyped path
    train_module._ensure_data(typo, ["data=demo", f"data_dir={typo.data_dir}"])  # asked for explicitly
    monkeypatch.chdir(tmp_path)  # data/demo is the demo's own default path (relative to the cwd)
    train_module._ensure_data(demo, [])
    assert built == [str(typo.data_dir), "data/demo"]


def test_hydra_launch_redacts_secrets_quiet_console_and_refuses_rerun(tiny_data_dir, tmp_path):
    secret = "tok-0123456789abcdef-secret"
    # storage_options credentials (s3fs-style key/secret, a dict-valued override) and a URL password
    key_id, key_secret, url_password = "AKIAEXAMPLEKEYID42", "s3-secret-value-0987", "url-pass-word-6543"
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mixtrain.train", *_overrides(tiny_data_dir, run, "trainer.max_steps=2",
           "checkpoint_every_n_steps=2", "logger=wandb", f"+data.token={secret}", "table_at_end=true",
           f"++storage_options={{key: {key_id}, secret: {key_secret}}}", f"+data.root=s3://admin:{url_password}@minio/raw")]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / ".hydra" / "overrides.yaml").is_file() and (run / "wandb").is_dir()
    assert "s3://admin:<redacted>@minio/raw" in (run / "config.yaml").read_text()
    for path in run.rglob("*"):
        if path.is_file():
            for s in (secret, key_id, key_secret, url_password):
                assert s.encode() not in path.read_bytes(), (path, s)
    console = proc.stdout + proc.stderr
    assert "[HYDRA]" not in console and "GPU available" not in console and "Warning" not in console
    assert "mean (unweighted)" in console  # the final table
    assert "GPU available" in (run / "train.log").read_text()  # library INFO lines go to the run's log
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "resume=true" in again.stderr
