"""Faults and messages on the data side (issue 21): a refused prepare writes nothing, messages
name what the user set and a fix that differs from it, corrupt shard bytes stop training."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mixtrain.prepare import prepare_corpus, prepare_from_config
from mixtrain.shards import ShardSettings

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")
SETTINGS = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05)


def _tree(root: Path) -> dict[str, bytes]:
    """Every path under root (hidden ones included) with its bytes: what "nothing written" compares."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(root.rglob("*"))}


def _prepare_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("prepare", overrides=list(overrides))


def test_refused_prepare_command_writes_nothing(tiny_raw_dir, tmp_path):
    """The command line: Hydra used to create DIR/.hydra_prepare before prepare refused DIR, here
    a domain folder of RAW, which then broke the next prepare of RAW."""
    raw = Path(shutil.copytree(tiny_raw_dir, tmp_path / "raw"))
    before = _tree(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mixtrain.prepare", "data=dir", f"data.root={raw}",
                           f"data_dir={raw / 'code'}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0 and "contains the prepared data folder" in proc.stderr, proc.stderr[-2000:]
    assert _tree(tmp_path) == before


def _single_txt_corpus(root: Path) -> Path:
    (root / "dump").mkdir(parents=True)
    (root / "dump" / "dump.txt").write_text("".join(f"document number {i} of a one-per-line dump\n" for i in range(50)))
    (root / "other").mkdir()
    for i in range(3):
        (root / "other" / f"{i}.txt").write_text(f"another document {i}\n")
    return root


@pytest.mark.parametrize("case", ["one_txt_file", "no_root", "missing_root", "bad_txt_mode", "bad_verify",
                                  "zero_workers", "bad_shard_key"])
def test_refused_prepare_from_config_creates_no_data_dir(tmp_path, case):
    raw = _single_txt_corpus(tmp_path / "raw")
    out = tmp_path / "out"
    overrides = {"one_txt_file": [f"data.root={raw}"], "no_root": [],
                 "missing_root": [f"data.root={tmp_path / 'nope'}"],
                 "bad_txt_mode": [f"data.root={raw}", "data.txt_mode=paragraphs"],
                 "bad_verify": [f"data.root={raw}", "data.txt_mode=lines", "verify=sha1"],
                 "zero_workers": [f"data.root={raw}", "data.txt_mode=lines", "num_workers=0"],
                 "bad_shard_key": [f"data.root={raw}", "data.txt_mode=lines", "+shards.chunk_bytes=1"]}[case]
    before = _tree(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError, TypeError)):
        prepare_from_config(_prepare_cfg("data=dir", f"data_dir={out}", *overrides))
    assert not out.exists()
    assert _tree(tmp_path) == before


def test_one_file_domain_message_names_the_setting_and_a_different_fix(tmp_path):
    raw = _single_txt_corpus(tmp_path / "raw")
    with pytest.raises(ValueError, match=r"dump.txt is its only file") as err:
        prepare_corpus(raw, tmp_path / "out", settings=SETTINGS, vocab_size=320)
    message = str(err.value)
    assert "data.txt_mode=file (the current setting)" in message
    fix = message.split("a domain needs at least 2", 1)[1]
    assert "txt_mode=lines" in fix and "txt_mode=blocks" in fix and "txt_mode=file" not in fix
    assert not (tmp_path / "out").exists()


def test_missing_data_is_prepared_from_data_source_said_so(tmp_path, monkeypatch, capsys):
    import mixtrain.prepare
    import mixtrain.train as train_module

    monkeypatch.setattr(mixtrain.prepare, "prepare_from_config", lambda cfg: None)
    monkeypatch.setattr(train_module, "_hydra_overrides", lambda: ["data=dir"])
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["data=dir", f"data.root={tmp_path / 'raw'}", f"data_dir={tmp_path / 'd'}"])
    train_module._ensure_data(cfg)
    out = capsys.readouterr().out
    assert f"preparing it from data=dir (data.root={tmp_path / 'raw'})" in out and "data=?" not in out
