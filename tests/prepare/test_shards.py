"""Tests for mixtrain.prepare.shards via prepare_corpus: stats, litdata read-back, idempotence, atomicity, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixtrain.prepare import shards
from mixtrain.prepare.pipeline import prepare_corpus
from mixtrain.prepare.shards import ShardSettings, read_manifest, read_stats, verify_shards
from mixtrain.prepare.tokenizer import Tokenizer

SETTINGS = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05)
REPO = Path(__file__).resolve().parents[2]


def _prepare(raw, out, **kw):
    kw.setdefault("vocab_size", 320)
    kw.setdefault("sample_bytes_per_domain", 200_000)
    return prepare_corpus(raw, out, settings=kw.pop("settings", SETTINGS), **kw)


def test_stats_and_manifest(tiny_data_dir):
    manifest = read_manifest(tiny_data_dir)
    assert manifest["domains"] == ["code", "prose", "tables"] and manifest["block_size"] == 65
    assert manifest["vocab_size"] == 320 and (tiny_data_dir / "tokenizer.model").is_file()
    for d in manifest["domains"]:
        s = read_stats(tiny_data_dir, d)
        for key in ("num_docs", "num_tokens", "num_bytes", "num_train_tokens", "num_val_tokens"):
            assert s[key] > 0, key
        assert s["num_train_tokens"] + s["num_val_tokens"] == s["num_tokens"]
        assert s["num_train_docs"] + s["num_val_docs"] == s["num_docs"] == 60
        assert s["num_val_tokens"] >= SETTINGS.min_val_tokens
        recorded = json.loads((tiny_data_dir / d / "checksums.json").read_text())["files"]
        on_disk = {f"{split}/{f.name}" for split in ("train", "val") for f in (tiny_data_dir / d / split).iterdir()}
        assert set(recorded) == on_disk and {"train/index.json", "val/index.json"} <= on_disk
    verify_shards(tiny_data_dir)
    shards.verify_data_dir(str(tiny_data_dir), deep=True)


def test_litdata_reads_back_exactly_the_encoded_documents(tiny_raw_dir, tiny_data_dir):
    from litdata import StreamingDataset, TokensLoader

    from mixtrain.prepare.corpus import iter_documents

    tok = Tokenizer(tiny_data_dir / "tokenizer.model")
    encoded = tok.encode_documents(list(iter_documents(tiny_raw_dir, "code")))
    all_tokens = np.concatenate(encoded)
    stats = read_stats(tiny_data_dir, "code")
    for split in ("train", "val"):
        ds = StreamingDataset(str(tiny_data_dir / "code" / split), item_loader=TokensLoader(block_size=65))
        blocks = [ds[i].numpy() for i in range(len(ds))]
        assert len(blocks) > 0 and all(b.shape == (65,) for b in blocks)
        # every block is a contiguous run of the encoded token stream, BOS/EOS included
        text = all_tokens.tobytes()
        assert all(b.astype(np.int32).tobytes() in text for b in blocks[:20])
    assert stats["num_tokens"] == len(all_tokens)


def test_rerun_is_idempotent_and_changes_rebuild(tiny_raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw_dir, raw)
    out = tmp_path / "out"
    _prepare(raw, out)
    # keep the tokenizer fixed from here on (a retrained tokenizer would rightly rebuild every domain)
    model = tmp_path / "fixed.model"
    shutil.copyfile(out / "tokenizer.model", model)
    _prepare(raw, out, tokenizer_model=str(model))

    def mtimes(domain):
        return {p.name: p.stat().st_mtime_ns for p in (out / domain / "train").iterdir()}
    before = {d: mtimes(d) for d in ("code", "prose", "tables")}
    _prepare(raw, out, tokenizer_model=str(model))
    assert {d: mtimes(d) for d in before} == before  # up to date: nothing rewritten
    # a changed input rebuilds that domain only
    (raw / "prose" / "doc000.txt").write_text("a brand new document " * 50)
    _prepare(raw, out, tokenizer_model=str(model))
    assert mtimes("prose") != before["prose"] and mtimes("code") == before["code"]
    # a changed setting rebuilds everything
    _prepare(raw, out, tokenizer_model=str(model), settings=ShardSettings(block_size=33, blocks_per_chunk=8, min_val_tokens=1200))
    assert read_manifest(out)["block_size"] == 33 and read_stats(out, "code")["block_size"] == 33


def test_crash_mid_write_leaves_nothing_trusted(tiny_raw_dir, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw_dir, raw)
    out = tmp_path / "out"
    real = shards._optimize
    calls = {"n": 0}

    def flaky(token_file, starts, ends, out_dir, settings):
        calls["n"] += 1
        if out_dir.parent.name.startswith(".prose") and out_dir.name == "val":
            raise RuntimeError("simulated crash while writing prose/val")
        return real(token_file, starts, ends, out_dir, settings)

    monkeypatch.setattr(shards, "_optimize", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _prepare(raw, out)
    assert not (out / "prose").exists()  # the half-built domain never appears
    assert not list(out.glob(".prose.tmp-*"))  # and its temporary folder is gone
    assert not (out / "manifest.json").exists()
    assert (out / "code" / "stats.json").is_file()  # finished domains are complete and kept
    monkeypatch.setattr(shards, "_optimize", real)
    manifest = _prepare(raw, out)
    assert manifest["domains"] == ["code", "prose", "tables"]


def test_corrupt_shard_and_unprepared_dir_errors(tiny_raw_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m mixtrain.prepare"):
        read_manifest(tmp_path)
    out = tmp_path / "out"
    _prepare(tiny_raw_dir, out)
    chunk = sorted((out / "tables" / "train").glob("chunk-*.bin"))[0]
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"tables.*truncated.*re-run prepare"):
        verify_shards(out)
    (out / "code" / "train" / "index.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"'code'.*index.json is corrupt"):
        verify_shards(out)


def test_too_small_domain_is_refused(tmp_path):
    (tmp_path / "raw" / "tiny").mkdir(parents=True)
    (tmp_path / "raw" / "big").mkdir(parents=True)
    (tmp_path / "raw" / "tiny" / "only.txt").write_text("one short document")
    for i in range(30):
        (tmp_path / "raw" / "big" / f"{i}.txt").write_text(f"document number {i} " * 40)
    with pytest.raises(ValueError, match=r"domain 'tiny'.*only.txt is its only file.*txt_mode=file.*lines"):
        _prepare(tmp_path / "raw", tmp_path / "out", vocab_size=300)
    (tmp_path / "raw" / "tiny" / "only.txt").unlink()
    (tmp_path / "raw" / "tiny" / "only.jsonl").write_text('{"text": "one short document"}\n')
    with pytest.raises(ValueError, match="domain 'tiny' has 1 non-empty document"):
        _prepare(tmp_path / "raw", tmp_path / "out", vocab_size=300)


def test_prepare_command_line(tiny_raw_dir, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "mixtrain.prepare", "data=dir", f"data.root={tiny_raw_dir}", f"data_dir={out}",
         "tokenizer.vocab_size=400", "tokenizer.sample_bytes_per_domain=100000", "shards.block_size=65",
         "shards.blocks_per_chunk=8", "shards.min_val_tokens=1000"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "manifest.json").read_text())["domains"] == ["code", "prose", "tables"]
    assert "3 domains" in proc.stdout
