"""Data preparation at scale (issue 13 item 4): parallel tokenizer workers, streamed shards, URL data_dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixtrain.prepare import shards
from mixtrain.prepare.pipeline import prepare_corpus
from mixtrain.prepare.shards import ShardSettings, read_stats, verify_data_dir
from mixtrain.prepare.tokenizer import Tokenizer

SETTINGS = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05)  # = tiny_data_dir's
REPO = Path(__file__).resolve().parents[2]


def _tokens_read_back(data_dir: Path, domain: str, split: str) -> np.ndarray:
    from litdata import StreamingDataset, TokensLoader

    ds = StreamingDataset(str(data_dir / domain / split), item_loader=TokensLoader(block_size=SETTINGS.block_size))
    return np.concatenate([ds[i].numpy() for i in range(len(ds))])


def _chunk_checksums(data_dir: Path, domain: str) -> dict:
    files = json.loads((data_dir / domain / "checksums.json").read_text())["files"]
    return {k: v for k, v in files.items() if not k.endswith("index.json")}  # index.json holds a timestamp


def test_two_workers_give_the_same_shards_and_tokens_as_one(tiny_raw_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "two"
    prepare_corpus(tiny_raw_dir, out, settings=SETTINGS, tokenizer_model=str(tiny_data_dir / "tokenizer.model"),
                   num_workers=2)
    for domain in ("code", "prose", "tables"):
        # fingerprint included; "entropy" is a cache other tests may have added to the shared fixture
        expected = {k: v for k, v in read_stats(tiny_data_dir, domain).items() if k != "entropy"}
        assert {k: v for k, v in read_stats(out, domain).items() if k != "entropy"} == expected
        assert _chunk_checksums(out, domain) == _chunk_checksums(tiny_data_dir, domain)
        for split in ("train", "val"):
            assert np.array_equal(_tokens_read_back(out, domain, split), _tokens_read_back(tiny_data_dir, domain, split))
    verify_data_dir(str(out), deep=True)
    # the same tokenizer and inputs: a one-worker re-run of the two-worker folder finds it up to date
    before = {p: p.stat().st_mtime_ns for p in out.rglob("chunk-*.bin")}
    prepare_corpus(tiny_raw_dir, out, settings=SETTINGS, tokenizer_model=str(tiny_data_dir / "tokenizer.model"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("chunk-*.bin")} == before


def test_encode_batches_keeps_order_and_few_batches_in_flight(tiny_data_dir):
    tok = Tokenizer(tiny_data_dir / "tokenizer.model")
    docs = [f"document {i} " * (1 + i % 7) for i in range(40 * 8)]
    batches = [docs[i:i + 8] for i in range(0, len(docs), 8)]
    pulled = {"n": 0}

    def source():
        for b in batches:
            pulled["n"] += 1
            yield b
    ahead = []
    got = []
    for tokens, lengths in shards.encode_batches(source(), tok, num_workers=2):
        got.append((tokens, lengths))
        ahead.append(pulled["n"] - len(got))
    expected = [shards._pack(tok.encode_documents(b)) for b in batches]
    assert len(got) == len(expected)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(got, expected))
    assert max(ahead) <= 2 * 2  # bounded: never the whole domain queued in memory


def test_worker_settings_are_checked(tiny_raw_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from conftest import prepare_composed as prepare_from_config

    with pytest.raises(ValueError, match="num_workers=0 must be >= 1"):
        prepare_corpus(tiny_raw_dir, tmp_path / "x", settings=SETTINGS, num_workers=0)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("prepare", overrides=["data=dir", f"data.root={tiny_raw_dir}", f"data_dir={tmp_path / 'y'}",
                                            "+shards.num_workers=2"])
        assert compose("prepare", overrides=["data_dir=z"]).num_workers == 1
    with pytest.raises(ValueError, match=r"shards.num_workers is not a setting of shards \(its settings: block_size"):
        prepare_from_config(cfg)


# ------------------------------------------------------------------ object-store data_dir (file:// runs the same code)
def _url_cfg(raw, url, staging, tokenizer_model, *extra):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("prepare", overrides=[
            "data=dir", f"data.root={raw}", f"data_dir={url}", f"staging_dir={staging}",
            f"+tokenizer.model_path={tokenizer_model}", "shards.block_size=65", "shards.blocks_per_chunk=8",
            "shards.min_val_tokens=1200", "shards.val_fraction=0.05", *extra])


def test_url_data_dir_is_staged_published_and_pulled_back_verified(tiny_raw_dir, tiny_data_dir, tmp_path):
    from mixtrain.store import remote
    from conftest import prepare_composed as prepare_from_config

    bucket = tmp_path / "bucket"
    url = f"file://{bucket}/data"
    cfg = _url_cfg(tiny_raw_dir, url, tmp_path / "staging", tiny_data_dir / "tokenizer.model", "num_workers=2")
    manifest = prepare_from_config(cfg)
    assert manifest["domains"] == ["code", "prose", "tables"]
    staged = remote.staging_dir(url, tmp_path / "staging")
    assert (staged / "manifest.json").is_file() and (bucket / "data" / "manifest.json").is_file()
    assert not any(p.name.startswith(".") for p in (bucket / "data").rglob("*"))  # no temporaries left behind
    before = {p: p.stat().st_mtime_ns for p in (bucket / "data").rglob("chunk-*.bin")}
    assert before
    # a re-run uploads no domain again (the remote stats.json fingerprints match)
    assert remote.publish(staged, url) == []
    prepare_from_config(cfg)
    assert {p: p.stat().st_mtime_ns for p in (bucket / "data").rglob("chunk-*.bin")} == before
    # pulled to another folder: complete, deep-verified, the same tokens as a local prepare
    pulled = tmp_path / "pulled"
    remote.pull(url, pulled)
    verify_data_dir(str(pulled), deep=True)
    for split in ("train", "val"):
        assert np.array_equal(_tokens_read_back(pulled, "code", split), _tokens_read_back(tiny_data_dir, "code", split))
    # a corrupted remote shard is refused by pull, naming the file, and no manifest claims completeness
    chunk = sorted((bucket / "data" / "prose" / "train").glob("chunk-*.bin"))[0]
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"'prose' pulled from .*{chunk.name}.*sha256.*delete .*prose/stats.json"):
        remote.pull(url, tmp_path / "pulled2")
    assert not (tmp_path / "pulled2" / "manifest.json").exists()
    # the fix the error names: drop the remote stats.json, re-run prepare (re-uploads prose only), pull again
    (bucket / "data" / "prose" / "stats.json").unlink()
    assert remote.publish(staged, url) == ["prose"]
    remote.pull(url, tmp_path / "pulled2")
    verify_data_dir(str(tmp_path / "pulled2"), deep=True)


def test_unsupported_urls_are_refused_clearly(tiny_raw_dir, tiny_data_dir, tmp_path):
    from mixtrain.store import remote
    from conftest import prepare_composed as prepare_from_config

    assert remote._bucket_prefix("s3://bk") == ("bk", "") and remote._bucket_prefix("gs://bk/a/b/") == ("bk", "a/b/")

    with pytest.raises(ValueError, match=r"ftp:// is not supported.*s3://"):
        prepare_from_config(_url_cfg(tiny_raw_dir, "ftp://host/data", tmp_path / "s", tiny_data_dir / "tokenizer.model"))
    with pytest.raises(ValueError, match=r"data.root=ftp://b/raw: raw text can be read from file://, s3://, gs://"):
        prepare_from_config(_url_cfg("ftp://b/raw", tmp_path / "out", tmp_path / "s", tiny_data_dir / "tokenizer.model"))
    with pytest.raises(ValueError, match="needs a local folder.*mixtrain.store.remote.publish"):
        prepare_corpus(tiny_raw_dir, "s3://b/data", settings=SETTINGS)


class _FailingTokenizer:
    """Delegates to a real tokenizer but fails on one document (inherited by forked workers)."""

    def __init__(self, real):
        self.real, self.vocab_size = real, real.vocab_size

    def encode_documents(self, docs, num_threads=2):
        if any("BOOM" in d for d in docs):
            raise RuntimeError("tokenizer failed on a BOOM document")
        return self.real.encode_documents(docs, num_threads=num_threads)


def test_a_worker_error_stops_the_domain_and_leaves_no_temporary(tiny_data_dir, tmp_path):
    tok = _FailingTokenizer(Tokenizer(tiny_data_dir / "tokenizer.model"))
    docs = [f"document {i} " * 20 for i in range(3000)] + ["BOOM"] + ["after"] * 10
    with pytest.raises(RuntimeError, match="BOOM document"):
        shards.write_domain("d", iter(docs), tok, tmp_path, SETTINGS, "fp", num_workers=2)
    assert list(tmp_path.iterdir()) == []  # neither DIR/d nor .d.tmp-<pid>


def test_raw_corpus_url_is_mirrored_and_only_changed_objects_rebuild(tiny_raw_dir, tiny_data_dir, tmp_path):
    import shutil

    from conftest import prepare_composed as prepare_from_config

    store = tmp_path / "store" / "raw"
    shutil.copytree(tiny_raw_dir, store)
    out = tmp_path / "out"
    cfg = _url_cfg(f"file://{store}", out, tmp_path / "s", tiny_data_dir / "tokenizer.model")
    prepare_from_config(cfg)
    for domain in ("code", "prose", "tables"):  # the same documents as the local prepare
        assert read_stats(out, domain)["num_tokens"] == read_stats(tiny_data_dir, domain)["num_tokens"]
    mirrored = {p: p.stat().st_mtime_ns for p in (out / "raw").rglob("*") if p.is_file()}
    chunks = {d: {p: p.stat().st_mtime_ns for p in (out / d).rglob("chunk-*")} for d in ("code", "prose")}
    # unchanged objects: nothing downloaded, nothing rebuilt
    prepare_from_config(cfg)
    assert {p: p.stat().st_mtime_ns for p in (out / "raw").rglob("*") if p.is_file()} == mirrored
    assert {p: p.stat().st_mtime_ns for p in (out / "code").rglob("chunk-*")} == chunks["code"]
    # one changed object rebuilds its domain only; a deleted object leaves the mirror
    (store / "prose" / "doc000.txt").write_text("a changed document " * 60)
    (store / "prose" / "doc001.txt").unlink()
    prepare_from_config(cfg)
    assert not (out / "raw" / "prose" / "doc001.txt").exists()
    assert read_stats(out, "prose")["num_docs"] == 59
    assert {p: p.stat().st_mtime_ns for p in (out / "code").rglob("chunk-*")} == chunks["code"]
    assert {p: p.stat().st_mtime_ns for p in (out / "prose").rglob("chunk-*")} != chunks["prose"]
    # a file:// root inside data_dir is refused like a local one
    with pytest.raises(ValueError, match="is inside"):
        prepare_from_config(_url_cfg(f"file://{out / 'raw'}", out, tmp_path / "s", tiny_data_dir / "tokenizer.model"))


def test_training_reads_a_url_data_dir_through_its_verified_local_copy(tiny_raw_dir, tiny_data_dir, tmp_path):
    """data_dir=URL for train: a machine without the staging folder pulls a verified copy once
    (into its own staging_dir) and trains on it; a second run finds the copy current."""
    from hydra import compose, initialize_config_dir

    from mixtrain.store import remote
    from conftest import prepare_composed as prepare_from_config
    from conftest import train_composed as train

    url = f"file://{tmp_path / 'bucket'}/data"
    prepare_from_config(_url_cfg(tiny_raw_dir, url, tmp_path / "builder", tiny_data_dir / "tokenizer.model"))

    def run(name):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[
                "experiment=smoke", f"data_dir={url}", f"staging_dir={tmp_path / 'trainer_cache'}",
                f"out_dir={tmp_path / name}", "seq_len=32", "batch_size=4", "val_blocks_per_domain=4",
                "trainer.max_steps=2", "table_at_end=false", "logger={}"])
        return train(cfg)

    assert run("a")["step"] == 2
    local = remote.staging_dir(url, tmp_path / "trainer_cache")
    verify_data_dir(str(local), deep=True)
    first_pull = (local / "manifest.json").stat().st_mtime_ns
    assert run("b")["step"] == 2
    assert (local / "manifest.json").stat().st_mtime_ns == first_pull  # current: not pulled again
    assert f"data_dir: {url}" in (tmp_path / "a" / "config.yaml").read_text()  # the run records the URL it read
    with pytest.raises(FileNotFoundError, match=r"manifest.json does not exist.*mixtrain.prepare"):
        remote.local_data_dir(f"file://{tmp_path / 'empty'}", tmp_path / "trainer_cache")


def test_worker_pool_ends_even_when_the_parent_handles_sigterm(tiny_data_dir):
    """Pool.terminate stops the tokenizer workers with SIGTERM; a forked worker inherits the parent's
    handlers, so a parent that handles SIGTERM (a training run's preemption handler in the same
    process) used to leave terminate() waiting forever (seen: a hung suite). Run in a subprocess so
    a regression fails on the timeout instead of hanging the suite."""
    import subprocess
    import sys

    code = f"""
import signal
from mixtrain.prepare import shards
from mixtrain.prepare.tokenizer import Tokenizer
signal.signal(signal.SIGTERM, lambda *a: None)  # a flag-only handler, as a preemption handler is
tok = Tokenizer({str(tiny_data_dir / "tokenizer.model")!r})
docs = [f"document {{i}} " * (1 + i % 7) for i in range(400)]
for attempt in range(5):
    got = list(shards.encode_batches((docs[i:i + 8] for i in range(0, len(docs), 8)), tok, num_workers=2))
    assert len(got) == 50, len(got)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
