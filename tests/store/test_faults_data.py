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

from conftest import prepare_composed as prepare_from_config
from mixtrain.prepare.pipeline import prepare_corpus
from mixtrain.prepare.shards import ShardSettings

REPO = Path(__file__).resolve().parents[2]
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
                                  "zero_workers", "bad_shard_key", "hf_without_name"])
def test_refused_prepare_from_config_creates_no_data_dir(tmp_path, case):
    raw = _single_txt_corpus(tmp_path / "raw")
    out = tmp_path / "out"
    overrides = {"one_txt_file": [f"data.root={raw}"], "no_root": [],
                 "missing_root": [f"data.root={tmp_path / 'nope'}"],
                 "bad_txt_mode": [f"data.root={raw}", "data.txt_mode=paragraphs"],
                 "bad_verify": [f"data.root={raw}", "data.txt_mode=lines", "verify=sha1"],
                 "zero_workers": [f"data.root={raw}", "data.txt_mode=lines", "num_workers=0"],
                 "bad_shard_key": [f"data.root={raw}", "data.txt_mode=lines", "+shards.chunk_bytes=1"],
                 "hf_without_name": ["data=hf", "data.name=null"]}[case]
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
    import mixtrain.prepare.pipeline
    import mixtrain.train.run as train_module

    from mixtrain.hydra_app import compose as compose_typed

    monkeypatch.setattr(mixtrain.prepare.pipeline, "prepare", lambda cfg: None)
    cfg = compose_typed("train", overrides=["data=dir", f"data.root={tmp_path / 'raw'}", f"data_dir={tmp_path / 'd'}"])
    train_module._ensure_data(cfg, ["data=dir"])
    out = capsys.readouterr().out
    assert f"preparing it from data=dir (data.root={tmp_path / 'raw'})" in out and "data=?" not in out


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: the start-up size check cannot see it
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_flipped_byte_in_a_shard_stops_training_with_the_file_named(tiny_data_dir, tmp_path, split):
    from conftest import train_composed as train

    data = Path(shutil.copytree(tiny_data_dir, tmp_path / "data"))
    chunks = sorted((data / "prose" / split).glob("chunk-*.bin"))
    for chunk in chunks:  # every chunk: whichever the sampler draws first is a bad one
        _flip_byte(chunk)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={data}", f"out_dir={tmp_path / 'run'}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=8", "val_blocks_per_domain=2", "table_at_end=false", "trainer.max_steps=3",
            "mixing=uniform"])
    with pytest.raises(ValueError, match=r"does not match its sha256") as err:  # chunk_check.CorruptShardError
        train(cfg)
    assert any(str(chunk) in str(err.value) for chunk in chunks), err.value
    assert "mixtrain.prepare" in str(err.value) and "resume=true" in str(err.value)


def test_chunk_verifier_checks_each_chunk_once_and_skips_unrecorded_data(tiny_data_dir, tmp_path, monkeypatch):
    import mixtrain.store.chunk_check as chunk_check

    data = Path(shutil.copytree(tiny_data_dir, tmp_path / "data"))
    hashed = []
    real = chunk_check.file_sha256
    monkeypatch.setattr(chunk_check, "file_sha256", lambda path: hashed.append(path) or real(path))
    verifier = chunk_check.ChunkVerifier([data / "code" / "train", data / "prose" / "train"])
    verifier.check([(0, 0), (0, 0), (1, 2), (0, 0)])
    verifier.check([(1, 2), (0, 1)])
    assert [Path(p).parent.parent.name for p in hashed] == ["code", "prose", "code"]  # once per chunk
    (data / "code" / "checksums.json").unlink()  # prepared by an older mixtrain: nothing to compare
    _flip_byte(sorted((data / "code" / "train").glob("chunk-*.bin"))[0])
    chunk_check.ChunkVerifier([data / "code" / "train"]).check([(0, 0)])
