"""Faults of data preparation (issue 11): overlapping folders, corrupt shards, concurrent prepare, .txt splitting."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import prepare_composed as prepare_from_config
from mixtrain.prepare.pipeline import prepare_corpus
from mixtrain.prepare.shards import ShardSettings, verify_data_dir

SETTINGS = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05)
REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "conf")


def _prepare(raw, out, **kw):
    kw.setdefault("vocab_size", 320)
    kw.setdefault("sample_bytes_per_domain", 200_000)
    return prepare_corpus(raw, out, settings=SETTINGS, **kw)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------ item 1: RAW and DIR must not overlap
@pytest.mark.parametrize("case", ["same", "dir_inside_raw", "raw_inside_dir", "symlinked_dir", "symlinked_domain"])
def test_overlapping_folders_are_refused_before_anything_is_touched(tiny_raw_dir, tmp_path, case):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw_dir, raw)
    if case == "same":
        out = raw
    elif case == "dir_inside_raw":
        out = raw / "prepared"
    elif case == "raw_inside_dir":  # RAW moved into a folder that also serves as data_dir
        out = tmp_path / "data"
        out.mkdir()
        raw = Path(shutil.move(str(raw), str(out / "corpus")))
    elif case == "symlinked_dir":
        out = tmp_path / "link"
        out.symlink_to(raw)
    else:  # a domain folder of RAW is a symlink to DIR/<domain>, the folder prepare would replace
        out = tmp_path / "data"
        shutil.move(str(raw / "prose"), str(out / "prose"))
        (raw / "prose").symlink_to(out / "prose")
    before = _digest(raw)
    listing_before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    with pytest.raises(ValueError, match=r"overlaps|same folder|is inside|contains") as err:
        _prepare(raw, out)
    assert str(out) in str(err.value) and "data_dir" in str(err.value)
    assert _digest(raw) == before  # every raw file still there, unchanged
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else None) == listing_before  # nothing written
    # the Hydra path (data=dir) refuses the same way
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("prepare", overrides=["data=dir", f"data.root={raw}", f"data_dir={out}"])
    with pytest.raises(ValueError, match=r"data.root"):
        prepare_from_config(cfg)
    assert _digest(raw) == before


def test_user_root_at_dir_raw_is_refused_but_prepare_own_raw_is_fine(tmp_path):
    from mixtrain.prepare.pipeline import check_separate_folders

    out = tmp_path / "data"
    (out / "raw" / "a").mkdir(parents=True)
    check_separate_folders(out / "raw", out)  # where demo/HF sources are materialised by prepare itself
    with pytest.raises(ValueError, match="is inside"):
        check_separate_folders(out / "raw", out, internal_raw_ok=False)
    (out / "raw" / "raw").mkdir()
    with pytest.raises(ValueError, match="domain called 'raw'"):
        check_separate_folders(out / "raw", out)
    check_separate_folders(tmp_path / "elsewhere", out)  # disjoint folders pass


# ------------------------------------------------------------------ item 10: corrupt shards are found
@pytest.fixture(scope="module")
def prepared(tiny_raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "out"
    _prepare(tiny_raw_dir, out)
    return out


def _corrupt(out: Path, fault: str) -> Path:
    chunk = sorted((out / "prose" / "train").glob("chunk-*.bin"))[1]
    data = bytearray(chunk.read_bytes())
    if fault == "truncate":
        chunk.write_bytes(bytes(data[: len(data) // 2]))
    elif fault == "flip":
        data[len(data) // 2] ^= 0x01
        chunk.write_bytes(bytes(data))
    else:
        chunk.unlink()
    return chunk


@pytest.mark.parametrize("fault", ["truncate", "flip", "delete"])
def test_corrupt_chunk_is_named_by_the_checks_and_rebuilt_by_prepare(tiny_raw_dir, prepared, tmp_path, capsys, fault):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    verify_data_dir(str(out), deep=True)  # the intact copy passes
    chunk = _corrupt(out, fault)
    with pytest.raises(ValueError, match=r"domain 'prose'.*" + chunk.name + r".*re-run `python -m mixtrain.prepare"):
        verify_data_dir(str(out), deep=True)
    if fault == "flip":  # same size: only the checksum sees it
        verify_data_dir(str(out))
    else:
        with pytest.raises(ValueError, match=str(chunk)):
            verify_data_dir(str(out))
    capsys.readouterr()
    _prepare(tiny_raw_dir, out)  # a re-run must not call the domain "up to date"
    printed = capsys.readouterr().out
    assert f"prose: up to date but shard file {chunk}" in printed and "rebuilding" in printed
    assert "code: up to date, skipped" in printed
    verify_data_dir(str(out), deep=True)


def test_train_start_check_names_the_missing_and_truncated_chunk(prepared, tmp_path):
    from conftest import train_composed as train

    for fault in ("truncate", "delete"):
        out = tmp_path / fault
        shutil.copytree(prepared, out)
        chunk = _corrupt(out, fault)
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=["experiment=smoke", f"data_dir={out}", f"out_dir={tmp_path / 'run'}",
                                              "prepare_if_missing=false", "seq_len=32", "batch_size=4"])
        with pytest.raises(ValueError, match=rf"{chunk}.*(missing|truncated).*re-run"):
            train(cfg)


def test_data_without_checksums_falls_back_to_litdata_sizes(prepared, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    (out / "code" / "checksums.json").unlink()  # as written by an older mixtrain
    verify_data_dir(str(out))
    with pytest.raises(ValueError, match=r"checksums.json is missing"):
        verify_data_dir(str(out), deep=True)
    chunk = sorted((out / "code" / "val").glob("chunk-*.bin"))[0]
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(ValueError, match=rf"{chunk} has 10 bytes, index.json says"):
        verify_data_dir(str(out))


def test_prepare_adopts_old_data_without_checksums_instead_of_rebuilding(tiny_raw_dir, prepared, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    (out / "code" / "checksums.json").unlink()  # as written by an older mixtrain
    chunk = sorted((out / "code" / "train").glob("chunk-*.bin"))[0]
    before = chunk.stat().st_mtime_ns
    capsys.readouterr()
    _prepare(tiny_raw_dir, out)
    printed = capsys.readouterr().out
    assert "code: up to date (no checksums.json yet" in printed and "rebuilding" not in printed
    assert chunk.stat().st_mtime_ns == before  # not re-tokenized
    verify_data_dir(str(out), deep=True)  # and now fully checkable


# ------------------------------------------------------------------ item 11: one prepare at a time per data_dir
def test_two_concurrent_prepares_of_one_data_dir(tiny_raw_dir, tmp_path):
    out = tmp_path / "out"
    code = (f"from mixtrain.prepare.pipeline import prepare_corpus; from mixtrain.prepare.shards import ShardSettings; "
            f"prepare_corpus({str(tiny_raw_dir)!r}, {str(out)!r}, vocab_size=320, sample_bytes_per_domain=200000, "
            f"settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(o[-3000:] for o in outputs)
    built = [o for o in outputs if " docs, " in o]
    waited = [o for o in outputs if " docs, " not in o]
    assert len(built) == 1 and len(waited) == 1, outputs  # exactly one process tokenized; the other found it done
    for domain in ("code", "prose", "tables"):
        assert f"{domain}: up to date, skipped" in waited[0]
    verify_data_dir(str(out), deep=True)
    assert not list(out.glob(".*.tmp-*")) and not list(out.glob(".*.old-*"))


def test_lock_timeout_names_the_holder(tiny_raw_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".prepare.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 12345 on somenode\n")
        held.flush()
        with pytest.raises(TimeoutError, match=r"pid 12345 on somenode.*lock_timeout_s"):
            _prepare(tiny_raw_dir, out, lock_timeout_s=0.5)
    assert not (out / "tokenizer.model").exists()


# ------------------------------------------------------------------ item 12: .txt splitting
def _lines_corpus(root: Path) -> Path:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    (root / "lines").mkdir(parents=True)
    lines = [" ".join(words[(i + j) % len(words)] for j in range(20 + i % 7)) for i in range(300)]
    (root / "lines" / "dump.txt").write_text("\n".join(lines[:150]) + "\n\n\n" + "\n".join(lines[150:]) + "\n")
    (root / "jsonl").mkdir()
    (root / "jsonl" / "a.jsonl").write_text("".join(f'{{"text": "{ln} number {i}"}}\n' for i, ln in enumerate(lines)))
    return root


def test_single_txt_file_needs_the_right_txt_mode(tmp_path):
    raw = _lines_corpus(tmp_path / "raw")
    with pytest.raises(ValueError, match=r"dump.txt is its only file.*txt_mode=file.*lines.*blocks"):
        _prepare(raw, tmp_path / "out")
    assert not (tmp_path / "out" / "tokenizer.model").exists()  # refused before training anything
    manifest = _prepare(raw, tmp_path / "out", txt_mode="lines")
    assert manifest["domains"] == ["jsonl", "lines"]
    from mixtrain.prepare.shards import read_stats

    assert read_stats(tmp_path / "out", "lines")["num_docs"] == 300


def test_too_few_documents_from_txt_names_the_txt_modes(tmp_path):
    raw = tmp_path / "raw"
    (raw / "small").mkdir(parents=True)
    for i in range(2):
        (raw / "small" / f"{i}.txt").write_text(f"short {i}\n")
    _lines_corpus(raw)
    with pytest.raises(ValueError, match=r"domain 'small' has 2 non-empty.*txt_mode=lines.*data.txt_mode=file"):
        _prepare(raw, tmp_path / "out", txt_mode="lines")
