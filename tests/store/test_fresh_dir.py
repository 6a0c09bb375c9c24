"""mixtrain/store/fresh_dir.py: a failed start removes the run directory (and the empty parents) it
created, never a folder that was there before, never one that holds results."""

from __future__ import annotations

from mixtrain.store.fresh_dir import FreshDir, holds_results


def _claimed(run):
    """What a run's claim writes before its first step (train/run.py claim_run_dir, loggers)."""
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("a: 1\n")
    (run / "checkpoints").mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "train.log").write_text("")
    (run / "metrics.csv").write_text("step,tokens\n")


def test_a_failed_start_leaves_no_trace(tmp_path):
    run = tmp_path / "runs" / "sub" / "x"
    fresh = FreshDir(str(run))
    _claimed(run)
    assert fresh.undo() and not (tmp_path / "runs").exists()  # the parents it created went too
    assert tmp_path.is_dir()


def test_a_folder_that_was_there_or_holds_results_is_kept(tmp_path):
    run = tmp_path / "runs" / "x"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "other").mkdir()
    fresh = FreshDir(str(run))
    _claimed(run)
    (run / "checkpoints" / "step0000010.ckpt").write_bytes(b"x")
    assert holds_results(str(run)) and not fresh.undo() and run.is_dir()
    (run / "checkpoints" / "step0000010.ckpt").unlink()
    (run / "metrics.csv").write_text("step,tokens\n10,640\n")  # a row: the run trained
    assert not fresh.undo() and run.is_dir()
    (run / "metrics.csv").write_text("step,tokens\n")
    assert fresh.undo() and not run.exists() and (tmp_path / "runs" / "other").is_dir()  # runs/ existed: kept
    existing = tmp_path / "mine"
    existing.mkdir()
    assert not FreshDir(str(existing)).undo() and existing.is_dir()  # there before the start: never removed
