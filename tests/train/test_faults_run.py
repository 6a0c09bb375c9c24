"""Faults and silent configuration on the training side (issue 21): a NaN stop names a checkpoint
whose loss was finite, a full disk gets a clear error and keeps the previous checkpoint, a schedule
or refit interval beyond the run's end is warned about, a rejected resume names only what differs.
Real shards, real Trainer steps on CPU."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import train_composed as train

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _cfg(data_dir, out_dir, *extra):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=[
            "experiment=smoke", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false", "seq_len=32",
            "batch_size=4", "val_blocks_per_domain=2", "table_at_end=false", "trainer.val_check_interval=100", *extra])


class DivergeAt(pl.Callback):
    """The optimizer step of batch `step` sends the weights to 1e9: finite (so checkpointed), but
    every later loss is NaN. What a too-high learning rate does, in one step."""

    def __init__(self, step: int):
        self.step = step

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(1e9)


def test_nan_stop_names_the_last_checkpoint_whose_loss_was_finite(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError) as err:
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=12", "checkpoint_every_n_steps=1"),
              extra_callbacks=[DivergeAt(3)])
    ckpts = run / "checkpoints"
    # step 4's checkpoint holds the 1e9 weights (finite, written); its loss was the first NaN
    assert str(ckpts / "step0000003.ckpt") in str(err.value) and "resume=true" in str(err.value)
    # what the folder holds, read back after the set-aside (not what the stop meant to write)
    assert ("now holds: last.ckpt holds step 3; step checkpoints: step0000001.ckpt, step0000002.ckpt, step0000003.ckpt; "
            "set aside (diverged weights, never resumed from): step0000004.ckpt.nonfinite, step0000005.ckpt.nonfinite, "
            "step0000006.ckpt.nonfinite") in str(err.value)
    # steps 4-6 (the NaN streak: no update) hold the same diverged weights: set aside, not deleted
    assert sorted(p.name for p in ckpts.iterdir() if p.suffix != ".sha256") == [
        "last.ckpt", "step0000001.ckpt", "step0000002.ckpt", "step0000003.ckpt", "step0000004.ckpt.nonfinite",
        "step0000005.ckpt.nonfinite", "step0000006.ckpt.nonfinite"]
    last = torch.load(ckpts / "last.ckpt", weights_only=True)
    good = torch.load(ckpts / "step0000003.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert all(torch.equal(last["state_dict"][k], good["state_dict"][k]) for k in good["state_dict"])
    assert all(v.abs().max() < 1e6 for v in last["state_dict"].values() if v.is_floating_point())
    summary = train(_cfg(tiny_data_dir, run, "trainer.max_steps=5", "checkpoint_every_n_steps=1", "resume=true"))
    assert summary["step"] == 5 and summary["final"]["train/loss"] is not None  # continues from the good one


class FillDiskAt(pl.Callback):
    """From step `step` on, every checkpoint write goes to /dev/full (the kernel's ENOSPC): the
    temporary file the atomic writer opens is a symlink to it."""

    def __init__(self, step: int, ckpt_dir: Path):
        self.step, self.ckpt_dir = step, ckpt_dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            # the step checkpoint is written first (then last.ckpt, which the error stops)
            os.symlink("/dev/full", self.ckpt_dir / f".staged-step{self.step:07d}.ckpt.partial")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_full_disk_names_the_path_and_free_space_and_keeps_the_previous_checkpoint(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    with pytest.raises(OSError, match=r"no space left to write checkpoint .*checkpoints/\.staged-step0000004\.ckpt .*MiB free") as err:
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=6", "checkpoint_every_n_steps=2"),
              extra_callbacks=[FillDiskAt(4, ckpts)])
    assert "inline_container" not in str(err.value).split(";")[0] and "resume=true" in str(err.value)
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 2  # the previous one, intact
    assert sorted(p.name for p in ckpts.iterdir() if p.suffix != ".sha256") == ["last.ckpt", "step0000002.ckpt"]  # no half file left


def test_disk_full_error_recognises_torch_and_os_errors_only(tmp_path):
    from mixtrain.store.checkpoint_files import disk_full_error

    path = str(tmp_path / "last.ckpt")
    try:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as e:
        assert "MiB free" in str(disk_full_error(e, path)) and path in str(disk_full_error(e, path))
    assert disk_full_error(OSError(28, "No space left on device"), path) is not None
    assert disk_full_error(RuntimeError("disk full"), path) is None  # anything else is re-raised as it was
    assert disk_full_error(OSError(13, "Permission denied"), path) is None


def test_schedule_and_refit_beyond_the_run_end_are_warned(tiny_data_dir, tmp_path, capfd):
    from mixtrain.mixing import build_mixing

    def problems(max_steps, *overrides):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
        from omegaconf import OmegaConf

        return build_mixing(OmegaConf.to_container(cfg.mixing, resolve=True)).strategy.horizon_problems(max_steps)

    assert problems(200, "mixing=schedule") == []  # the default schedule switches inside the default run
    (late,) = problems(50, "mixing=schedule")
    assert "mixing.stages[1].step=100" in late and "trainer.max_steps=50" in late
    assert "refit_every_n_steps=10" in problems(10, "mixing=ado")[0]
    # ADO's laws are first fitted after ignore_initial_steps (20) + min_points (5) x refit_every_n_steps (10)
    assert "about step 70" in problems(70, "mixing=ado")[0] and problems(71, "mixing=ado") == []
    assert "refit_every_n_steps=25" in problems(25, "mixing=online_bimix")[0] and problems(200, "mixing=online_bimix") == []
    assert problems(100, "mixing=uniform") == []
    stages = "mixing.stages=[{step: 0, mixing: {strategy: odm, refit_every_n_steps: 30}}, {step: 20, weights: {code: 1}}]"
    assert "stages[0].mixing.refit_every_n_steps=30" in problems(100, "mixing=schedule", stages)[0]
    import signal

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    train(_cfg(tiny_data_dir, tmp_path / "run", "trainer.max_steps=2", "mixing=schedule"))
    # the preemption handlers are the run's only: the process gets back the handlers it had
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert "warning: mixing.stages[1].step=100 is not below trainer.max_steps=2" in capfd.readouterr().err


def test_rejected_resume_names_only_the_differing_keys():
    from mixtrain.train.module import identity_differences

    model = {"n_layer": 4, "n_head": 4, "d_model": 128, "vocab_size": 320}
    saved = {"domains": ["code", "prose"], "model": model}
    diff = identity_differences(saved, {"domains": ["code", "prose"], "model": {**model, "n_layer": 2}})
    assert diff == ["model.n_layer: 4 in the checkpoint, 2 now"]
    diff = identity_differences(saved, {"domains": ["code", "tables"], "model": model})
    assert diff == ["domains ['prose'] only in the checkpoint, ['tables'] only in this run"]
    assert identity_differences(saved, saved) == []


def test_redaction_hides_credentials_and_keeps_ordinary_keys():
    from mixtrain.train.summary import redact

    config = {"tokenizer": {"vocab_size": 320}, "global_batch_tokens": 16384, "shards": {"max_val_tokens": 9000},
              "storage_options": {"key": "AKIAEXAMPLE1", "secret": "s3cr3t-value", "endpoint_url": "http://minio:9000"},
              "data": {"root": "s3://admin:hunter2-pw@minio/raw", "note": "written with s3cr3t-value inside"},
              "argv": ["tokenizer.vocab_size=320", "++storage_options={key: AKIAEXAMPLE1, secret: s3cr3t-value}"]}
    out = redact(config)
    assert out["tokenizer"] == {"vocab_size": 320} and out["global_batch_tokens"] == 16384  # not secrets
    assert out["shards"] == {"max_val_tokens": 9000}
    assert out["storage_options"] == {"key": "<redacted>", "secret": "<redacted>", "endpoint_url": "http://minio:9000"}
    assert out["data"] == {"root": "s3://admin:<redacted>@minio/raw", "note": "written with <redacted> inside"}
    assert out["argv"] == ["tokenizer.vocab_size=320", "++storage_options={key: <redacted>, secret: <redacted>}"]
