"""Tests for mixtrain.train.loggers' wandb logger: an offline run starts without warnings on the console."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _wandb_logger(tmp_path):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["logger=wandb", f"out_dir={tmp_path}"])
    return instantiate(cfg.logger.wandb)


def test_wandb_init_gets_no_anonymous_setting(tmp_path, capfd):
    """What wandb.init receives: Lightning's anonymous=None is the setting wandb warns about."""
    wandb = pytest.importorskip("wandb")
    init_kwargs = _wandb_logger(tmp_path)._wandb_init
    assert "anonymous" not in init_kwargs and init_kwargs["mode"] == "offline"
    settings = wandb.Settings()
    settings.mode = init_kwargs["mode"]
    assert "anonymous" not in "".join(capfd.readouterr())
    settings.anonymous = None  # what wandb.init(anonymous=None) does with Lightning's default
    assert "anonymous setting has no effect" in "".join(capfd.readouterr())


@pytest.mark.slow  # wandb's service start and finish take ~20 s
def test_offline_wandb_run_starts_without_the_anonymous_warning(tmp_path, monkeypatch, capfd):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    logger = _wandb_logger(tmp_path)
    try:
        assert logger.experiment.settings.mode == "offline"  # starts the run
    finally:
        wandb.finish()
    out = capfd.readouterr()
    assert "anonymous" not in out.out + out.err, out.err
    assert list(tmp_path.glob("wandb/offline-run-*"))
