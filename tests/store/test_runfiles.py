"""mixtrain/store/runfiles.py: the one run finder, metrics.csv reader and atomic writer (collect, DoReMi's
reference, report and summary/refits all go through it)."""

from __future__ import annotations

import json
import math
import os

import pytest

from mixtrain.store.runfiles import (atomic_write, find_run_dirs, num, read_metrics_rows, run_names,
                               write_json_atomic)


def _run(path, text="step,val/a/loss\n1,2.0\n"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.csv").write_text(text)
    return path


def test_find_run_dirs_walks_skips_dedupes_and_names(tmp_path):
    _run(tmp_path / "sweep" / "0")
    _run(tmp_path / "sweep" / "1")
    _run(tmp_path / "sweep" / "0" / "checkpoints")  # Lightning's folder: never a run
    _run(tmp_path / "sweep" / ".hydra")
    _run(tmp_path / "other" / "0")
    found = find_run_dirs([tmp_path / "sweep", tmp_path / "sweep" / "1", tmp_path / "other"])
    assert [(d.relative_to(tmp_path).as_posix(), r.name) for d, r in found] == \
        [("sweep/0", "sweep"), ("sweep/1", "sweep"), ("other/0", "other")]  # sweep/1 once
    assert run_names(found) == ["sweep/0", "sweep/1", "other/0"]  # "0" collides: root/path below it
    assert run_names(found[1:2]) == ["1"]
    with pytest.raises(ValueError, match=r"empty: no metrics.csv in it or below it"):
        find_run_dirs([tmp_path / "sweep", (tmp_path / "empty").mkdir() or tmp_path / "empty"])
    with pytest.raises(ValueError, match=r"missing: not a directory"):
        find_run_dirs([tmp_path / "missing"])


def test_read_metrics_rows_errors_name_the_file(tmp_path):
    file, header, rows = read_metrics_rows(_run(tmp_path / "ok", "step,mix/a,val/a/loss\n1,1.0,\n2,,3.5,extra\n"))
    assert file == tmp_path / "ok" / "metrics.csv" and header == ["step", "mix/a", "val/a/loss"]
    assert rows == [{"step": "1", "mix/a": "1.0", "val/a/loss": ""}, {"step": "2", "mix/a": "", "val/a/loss": "3.5"}]
    assert [num(r["val/a/loss"]) for r in rows] == [None, 3.5] and num("x") is None and math.isnan(num("nan"))
    assert read_metrics_rows(_run(tmp_path / "header", "step,a\n"))[2] == []  # a run that logged nothing yet
    with pytest.raises(FileNotFoundError, match=r"nothing/metrics.csv: no metrics.csv"):
        read_metrics_rows(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"empty/metrics.csv: empty file"):
        read_metrics_rows(_run(tmp_path / "empty", ""))
    with pytest.raises(ValueError, match=r"nostep/metrics.csv: no 'step' column; columns are \['a'\]"):
        read_metrics_rows(_run(tmp_path / "nostep", "a\n1\n"))


def test_atomic_writes_replace_whole_files_and_leave_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"b": 1, "a": [1.5]})
    assert json.loads(path.read_text()) == {"b": 1, "a": [1.5]}
    with pytest.raises(ValueError):  # JSON has no NaN: refused, and the old file stays whole
        write_json_atomic(path, {"loss": float("nan")})
    assert json.loads(path.read_text()) == {"b": 1, "a": [1.5]}
    write_json_atomic(path, {"b": 1, "a": 2}, sort_keys=True, indent=None)
    assert path.read_text() == '{"a": 2, "b": 1}'

    lines = tmp_path / "refits.jsonl"
    atomic_write(lines, '{"step": 1}\n')

    def failing_replace(src, dst):  # a crash between writing the temp file and renaming it
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(lines, '{"step": 2}\n')
    monkeypatch.undo()
    assert lines.read_text() == '{"step": 1}\n'
    assert sorted(os.listdir(tmp_path)) == ["refits.jsonl", "summary.json"]


def test_atomic_write_takes_bytes_and_streaming_writers_and_keeps_the_old_file_when_one_fails(tmp_path):
    path = tmp_path / "model.bin"
    atomic_write(path, b"\x00\x01old")
    assert path.read_bytes() == b"\x00\x01old"

    def half_then_crash(f):  # a writer (torch.save, say) that dies after writing part of the file
        f.write(b"new-but-incomplete")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_write(path, half_then_crash, tmp=tmp_path / "model.bin.partial", fsync=True)
    assert path.read_bytes() == b"\x00\x01old"  # readers never see half a file
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]  # and the named temp file is gone
    atomic_write(path, lambda f: f.write(b"complete"), tmp=tmp_path / "model.bin.partial", fsync=True)
    assert path.read_bytes() == b"complete" and sorted(os.listdir(tmp_path)) == ["model.bin"]
