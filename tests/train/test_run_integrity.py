"""Run integrity (issue 30): the five faults that were silent or lost data, reproduced end to end.

1. two writers on one out_dir (a real second process holds the run lock; slow: two real `train`s);
2. a resume after the data was re-prepared (one domain re-written; slow: raw text changed, tokenizer
   retrained, through the real `prepare` and `train` commands);
3. flipped bytes inside last.ckpt (digest);
4. one huge document and the validation caps;
5. a resume with another batch_size (the global-batch rule).
Plus the readers: a truncated metrics.csv row, and a folder holding only `.nonfinite` checkpoints.
Real shards, real Trainer steps on CPU, real processes where the fault needs two.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import smoke_cfg, smoke_overrides, train_composed as train, write_raw_corpus

from mixtrain.errors import DataError, RunDirError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _steps(run) -> list[int]:
    with open(Path(run) / "metrics.csv", newline="") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def _hold_lock(out_dir: Path) -> subprocess.Popen:
    """A real second process holding out_dir's run lock (what a running `train` holds) until a line
    arrives on its stdin."""
    code = ("import sys\nfrom mixtrain.store.run_lock import run_lock\n"
            "with run_lock(sys.argv[1], wait_s=0, waiting_reason=None):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _release(holder: subprocess.Popen) -> None:
    if holder.poll() is None:
        holder.stdin.write("done\n")
        holder.stdin.flush()
        holder.wait(timeout=60)


# ------------------------------------------------------------------------------------ 1. one writer
def test_a_second_writer_is_refused_at_once_and_a_requeue_waits_then_runs(tiny_data_dir, tmp_path, capfd,
                                                                           monkeypatch):
    from mixtrain.store import run_lock

    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        with pytest.raises(RunDirError) as err:
            train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=2", "run_lock_timeout_s=600"))
        assert holder.poll() is None  # refused while the holder still runs: no wait for a plain start
        assert f"pid {holder.pid} on {socket.gethostname()}" in str(err.value) and "resume=auto" in str(err.value)
        assert not (run / "metrics.csv").exists() and not (run / "config.yaml").exists()  # wrote nothing
        capfd.readouterr()
        seen = []

        def holder_then_release(path):  # the requeue found the lock held: now let the first instance stop
            seen.append(run_lock.holder_text.__wrapped__(path))
            _release(holder)
            return seen[-1]

        holder_then_release.__wrapped__ = run_lock.holder_text
        monkeypatch.setattr(run_lock, "holder_text", holder_then_release)
        # a requeue of the same job: waits for the holder to stop, then starts (nothing to resume yet)
        summary = train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=2", "resume=auto", "run_lock_timeout_s=120"))
        assert seen and f"in use by pid {holder.pid}" in capfd.readouterr().err
        assert summary["step"] == 2 and _steps(run) == [1, 2]
    finally:
        _release(holder)


def test_a_requeue_gives_up_after_run_lock_timeout_s(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        with pytest.raises(RunDirError, match=r"still in use by pid .* after waiting 1 s .*run_lock_timeout_s"):
            train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=2", "resume=auto", "run_lock_timeout_s=1"))
    finally:
        _release(holder)


# ------------------------------------------------------------------------------ 2. a resume knows its data
def _rewrite_domain(data_dir: Path, domain: str, docs: list[str]) -> None:
    """What `prepare` does to one domain whose raw text changed: its shards, stats and manifest rewritten."""
    from mixtrain.prepare.shards import ShardSettings, read_manifest, write_domain, write_manifest
    from mixtrain.prepare.tokenizer import open_data_tokenizer

    manifest = read_manifest(data_dir)
    settings = ShardSettings(**manifest["settings"])
    tokenizer = open_data_tokenizer(data_dir)
    write_domain(domain, docs, tokenizer, data_dir, settings, domain_fingerprint="changed-raw-text")
    write_manifest(data_dir, manifest["domains"], settings, tokenizer)


def test_resume_on_re_prepared_data_is_refused_naming_the_domain_and_switch_goes_on(tiny_data_dir, tmp_path, capfd):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny_data_dir, data)
    common = ["checkpoint_every_n_steps=2", "trainer.val_check_interval=2"]
    train(smoke_cfg(data, run, "trainer.max_steps=2", *common))
    rng = np.random.default_rng(1)
    _rewrite_domain(data, "prose", [" ".join(rng.choice(["other", "words", "now"], 300)) for _ in range(40)])
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(DataError) as err:
        train(smoke_cfg(data, run, "trainer.max_steps=4", *common, "resume=true"))
    message = str(err.value)
    assert "last.ckpt was trained on other data" in message and "domain(s) prose" in message
    assert "code" not in message.split("domain(s)")[1].split(")")[0]  # only the changed domain is named
    assert "resume_data=switch" in message and (run / "metrics.csv").read_bytes() == before  # nothing written
    capfd.readouterr()
    summary = train(smoke_cfg(data, run, "trainer.max_steps=4", *common, "resume=true", "resume_data=switch"))
    assert "resume_data=switch: continuing from step 2" in capfd.readouterr().out and summary["step"] == 4
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["mixtrain_data"]
    assert saved["switches"][0]["step"] == 2 and "prose" in saved["switches"][0]["changed"][0]
    assert "resumed_with_data_switch" in (run / "config.yaml").read_text()
    assert saved["domains"]["prose"]["fingerprint"] == "changed-raw-text"  # the next resume compares with the new data


# ----------------------------------------------------------------------------- 3. damaged checkpoints
def test_flipped_bytes_in_last_ckpt_are_named_and_the_newest_intact_checkpoint_is_used(tiny_data_dir, tmp_path, capfd):
    run = tmp_path / "run"
    common = ["checkpoint_every_n_steps=1", "trainer.val_check_interval=1"]
    train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=2", *common))
    ckpts = run / "checkpoints"
    assert {p.name for p in ckpts.glob("*.sha256")} == {"last.ckpt.sha256", "step0000001.ckpt.sha256",
                                                        "step0000002.ckpt.sha256"}
    (ckpts / "step0000002.ckpt").unlink()  # last.ckpt is the only checkpoint of step 2
    last = bytearray((ckpts / "last.ckpt").read_bytes())
    middle = len(last) // 2
    last[middle:middle + 64] = bytes(b ^ 0xFF for b in last[middle:middle + 64])  # 64 flipped bytes in a tensor
    (ckpts / "last.ckpt").write_bytes(bytes(last))
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 2  # torch alone does not notice
    with pytest.raises(RunDirError, match=r"ckpt_path=.*last\.ckpt is damaged \(its sha256 differs"):
        train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=3", *common, f"ckpt_path={ckpts / 'last.ckpt'}"))
    capfd.readouterr()
    summary = train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=3", *common, "resume=true"))
    out = capfd.readouterr().out
    assert "last.ckpt (damaged: its sha256 differs" in out and "resuming from step0000001.ckpt (step 1)" in out
    assert summary["step"] == 3 and _steps(run) == [1, 2, 3]  # step 2 again, from the intact step 1
    from mixtrain.store.checkpoint_digest import digest_problem

    assert digest_problem(str(ckpts / "last.ckpt")) is None  # rewritten by the resumed run, with its digest


def test_publish_never_leaves_a_checkpoint_its_digest_rejects(tmp_path, monkeypatch):
    from mixtrain.store import checkpoint_digest as cd

    final, staged = str(tmp_path / "last.ckpt"), str(tmp_path / ".staged-last.ckpt")
    Path(final).write_bytes(b"old" * 100)
    cd.write_digest(final)
    Path(staged).write_bytes(b"new" * 120)
    cd.write_digest(staged)
    real_replace = os.replace

    def killed_after_rename(src, dst):  # a kill right after the checkpoint took its name
        real_replace(src, dst)
        if dst == final:
            raise KeyboardInterrupt

    monkeypatch.setattr(cd.os, "replace", killed_after_rename)
    with pytest.raises(KeyboardInterrupt):
        cd.publish(staged, final)
    assert Path(final).read_bytes() == b"new" * 120 and cd.digest_problem(final) is None
    monkeypatch.undo()
    Path(final).write_bytes(b"old" * 100)  # ... and the old content is accepted too until publish finishes
    assert cd.digest_problem(final) is None
    Path(final).write_bytes(b"odd" * 100)
    assert "sha256 differs" in cd.digest_problem(final)


def _sharded_folder(path: Path, step: int, shard: bytes) -> None:
    """A sharded checkpoint folder as ModelParallelStrategy lays it out: meta.pt (the non-tensor part),
    .metadata and one .distcp file per rank."""
    path.mkdir(parents=True)
    torch.save({"global_step": step}, path / "meta.pt")
    (path / ".metadata").write_bytes(b"index" * 10)
    for rank in range(2):
        (path / f"__{rank}_0.distcp").write_bytes(shard * (rank + 1))


def test_a_damaged_shard_of_a_sharded_checkpoint_is_named_and_the_older_one_used(tmp_path, capfd):
    from mixtrain.store.checkpoint_digest import FOLDER_DIGEST, digest_problem, write_folder_digest
    from mixtrain.store.checkpoint_files import resume_checkpoint

    ckpts = tmp_path / "checkpoints"
    _sharded_folder(ckpts / "step0000001.ckpt", 1, b"a" * 4096)
    _sharded_folder(ckpts / "last.ckpt", 2, b"b" * 4096)
    assert digest_problem(str(ckpts / "last.ckpt")) is None  # no digest yet: unverified, not damaged
    listed = [write_folder_digest(str(ckpts / n)) for n in ("step0000001.ckpt", "last.ckpt")]
    assert sorted(listed[1]) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert resume_checkpoint(str(ckpts))[0].endswith("last.ckpt")
    shard = ckpts / "last.ckpt" / "__1_0.distcp"
    damaged = bytearray(shard.read_bytes())
    damaged[100] ^= 0xFF  # one flipped byte in rank 1's shard: same size, loads without a word
    shard.write_bytes(bytes(damaged))
    assert "__1_0.distcp differs" in digest_problem(str(ckpts / "last.ckpt"))
    path, ckpt = resume_checkpoint(str(ckpts))
    assert path.endswith("step0000001.ckpt") and ckpt["global_step"] == 1
    assert "last.ckpt (damaged: the sha256 of its shard file __1_0.distcp" in capfd.readouterr().out
    (ckpts / "step0000001.ckpt" / "__0_0.distcp").unlink()  # a lost shard is named too
    assert "__0_0.distcp is missing" in digest_problem(str(ckpts / "step0000001.ckpt"))
    with pytest.raises(RunDirError, match="no readable checkpoint .* that its digest accepts"):
        resume_checkpoint(str(ckpts))
    assert (ckpts / "last.ckpt" / FOLDER_DIGEST).is_file()


def test_only_nonfinite_checkpoints_give_one_answer_not_a_loop(tmp_path):
    from mixtrain.store.checkpoint_files import resume_checkpoint
    from mixtrain.train.checkpoints import checkpoints_on_disk

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"global_step": 4}, ckpts / "step0000004.ckpt.nonfinite")
    torch.save({"global_step": 4}, ckpts / "last.ckpt.nonfinite")
    with pytest.raises(RunDirError, match=r"holds only checkpoints set aside after a NaN/inf stop .*overwrite=true") as e:
        resume_checkpoint(str(ckpts))
    assert "resume=auto" not in str(e.value) and "resume=true" not in str(e.value)
    assert "no last.ckpt; step checkpoints: none; set aside" in checkpoints_on_disk(str(ckpts))


# ----------------------------------------------------------------------------- 4. the validation caps
def test_a_huge_document_is_cut_at_a_block_boundary_within_the_val_caps(tiny_data_dir, tmp_path):
    from mixtrain.prepare.shards import ShardSettings, write_domain
    from mixtrain.prepare.tokenizer import open_data_tokenizer

    tokenizer = open_data_tokenizer(tiny_data_dir)
    rng = np.random.default_rng(0)
    words = ["model", "data", "mixture", "tokens", "domain", "train"]
    small = [" ".join(rng.choice(words, 40)) for _ in range(30)]
    huge = " ".join(rng.choice(words, 6000))  # one line of a txt_mode=lines file, most of the domain
    settings = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, max_val_tokens=2000,
                             val_fraction=0.05)
    docs = [huge] + small
    stats = write_domain("lines", docs, tokenizer, tmp_path, settings, domain_fingerprint="x")
    total = stats["num_tokens"]
    assert stats["num_val_tokens"] <= min(settings.max_val_tokens, total // 2)
    assert stats["num_val_tokens"] >= settings.min_val_tokens - settings.block_size  # the target, within a block
    assert stats["num_train_tokens"] + stats["num_val_tokens"] == total  # nothing lost: the tail stays in train
    for split in ("train", "val"):  # the shards hold exactly what stats.json says
        index = json.loads((tmp_path / "lines" / split / "index.json").read_text())
        assert sum(c["dim"] for c in index["chunks"]) == stats[f"num_{split}_tokens"]
    # every order puts the huge document in val once the budget is small: the same cap holds
    tight = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=65 * 3, max_val_tokens=65 * 3)
    stats = write_domain("lines2", [huge, huge], tokenizer, tmp_path, tight, domain_fingerprint="y")
    assert stats["num_val_tokens"] == 65 * 3 and stats["num_train_tokens"] == stats["num_tokens"] - 65 * 3
    # three documents, one long: val used to take all three in some orders (litdata: "inputs should be non
    # empty. Found []", no domain named); now the long one is cut and both splits hold whole blocks
    for seed in range(4):
        three = ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, seed=seed)
        stats = write_domain("three", ["model data", "mixture tokens", huge[:3000]], tokenizer, tmp_path, three,
                             domain_fingerprint="t")
        assert stats["num_val_tokens"] >= 65 and stats["num_train_tokens"] >= stats["num_tokens"] // 2
    # too small for both splits: refused by name, with the keys to change
    with pytest.raises(ValueError, match=r"domain 'tiny' .* too small for both splits.*shards.max_val_tokens"):
        write_domain("tiny", [huge, huge], tokenizer, tmp_path,
                     ShardSettings(block_size=65, blocks_per_chunk=8, max_val_tokens=40), domain_fingerprint="z")
    assert not (tmp_path / "tiny").exists() and not list(tmp_path.glob(".tiny.tmp-*"))


# ------------------------------------------------------------------------------ 5. the global batch
def test_resume_with_another_batch_size_keeps_tokens_per_step(tiny_data_dir, tmp_path, capfd):
    run = tmp_path / "run"
    common = ["checkpoint_every_n_steps=2", "trainer.val_check_interval=2"]
    train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=2", *common))  # batch_size=4, seq_len=32: 128 tokens
    with pytest.raises(ValueError, match=r"128 tokens per step; now batch_size 4 -> 3.*resume_global_batch=change"):
        train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=3", *common, "resume=true", "batch_size=3"))
    capfd.readouterr()
    summary = train(smoke_cfg(tiny_data_dir, run, "trainer.max_steps=3", *common, "resume=true", "batch_size=2"))
    assert "batch_size 4 -> 2" in capfd.readouterr().out and summary["step"] == 3
    shape = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["mixtrain_batch"]
    assert shape["global_batch_tokens"] == 128 and shape["accumulate_grad_batches"] == 2 and shape["batch_size"] == 2
    assert summary["tokens"] == 3 * 128  # every step, before and after the resume, saw 128 tokens


# ----------------------------------------------------------------------------------------- readers
def test_collect_skips_a_truncated_last_row_naming_file_and_line(tmp_path):
    from mixtrain.store.runfiles import DamagedRowWarning, read_metrics_rows

    (tmp_path / "metrics.csv").write_text("step,val/loss\n1,7.5\n2\n3,x1\n4,7.0")  # row 4 cut inside 7.0182
    with pytest.warns(DamagedRowWarning) as caught:
        _, _, rows = read_metrics_rows(tmp_path)
    assert rows == [{"step": "1", "val/loss": "7.5"}]
    text = [str(w.message) for w in caught]
    assert any("metrics.csv:3: 1 cells, the header has 2" in t for t in text)
    assert any("metrics.csv:4: column 'val/loss' holds 'x1'" in t for t in text)
    assert any("metrics.csv:5: the last line has no newline" in t for t in text)


# -------------------------------------------------------------------------- slow: real train processes
def _train_cmd(data_dir, out_dir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mixtrain.train", *smoke_overrides(data_dir, out_dir, *extra)]


@pytest.mark.slow
def test_two_train_processes_on_one_out_dir_never_write_together(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    common = ["checkpoint_every_n_steps=5", "trainer.val_check_interval=5", "trainer.enable_progress_bar=false"]
    first = subprocess.Popen(_train_cmd(tiny_data_dir, run, "trainer.max_steps=400", *common), env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ((run / "checkpoints" / "last.ckpt").exists() and (run / "metrics.csv").exists()):
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not reach a checkpoint"
            time.sleep(0.5)
        second = subprocess.run(_train_cmd(tiny_data_dir, run, "trainer.max_steps=400", *common), env=ENV,
                                capture_output=True, text=True, timeout=240)
        assert second.returncode != 0 and f"is in use by pid {first.pid} on {socket.gethostname()}" in second.stderr
        requeue = subprocess.Popen(_train_cmd(tiny_data_dir, run, "trainer.max_steps=12", *common, "resume=auto",
                                              "run_lock_timeout_s=240"), env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        err = []
        reader = threading.Thread(target=lambda: err.extend(requeue.stderr), daemon=True)
        reader.start()
        while not any("waiting up to 240 s" in line for line in err):  # the requeue found the lock held
            assert requeue.poll() is None and first.poll() is None and time.monotonic() < deadline + 240, "".join(err)
            time.sleep(0.5)
        first.send_signal(signal.SIGTERM)  # preempted: stops at the next step with a checkpoint of it
        first.wait(timeout=240)
        assert requeue.wait(timeout=400) == 0, "".join(err)[-3000:]
        reader.join(timeout=10)
        assert f"in use by pid {first.pid}" in "".join(err)
    finally:
        first.kill()
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[0] == 1  # one writer at a time: no step logged twice


@pytest.mark.slow
def test_resume_after_prepare_retrained_the_tokenizer_is_refused(tmp_path):
    raw, data, run = write_raw_corpus(tmp_path / "raw"), tmp_path / "data", tmp_path / "run"
    prep = [sys.executable, "-m", "mixtrain.prepare", "data=dir", f"data.root={raw}", f"data_dir={data}",
            "tokenizer.vocab_size=320", "shards.block_size=65", "shards.blocks_per_chunk=8", "shards.min_val_tokens=1200"]
    subprocess.run(prep, env=ENV, check=True, capture_output=True, timeout=400)
    common = ["checkpoint_every_n_steps=2", "trainer.val_check_interval=2"]
    subprocess.run(_train_cmd(data, run, "trainer.max_steps=2", *common), env=ENV, check=True, capture_output=True,
                   timeout=400)
    (raw / "prose" / "doc000.txt").write_text("An entirely different first document. " * 200)
    subprocess.run(prep, env=ENV, check=True, capture_output=True, timeout=400)  # retrains the tokenizer
    resumed = subprocess.run(_train_cmd(data, run, "trainer.max_steps=4", *common, "resume=true"), env=ENV,
                             capture_output=True, text=True, timeout=400)
    assert resumed.returncode != 0 and "was trained on other data" in resumed.stderr
    assert "the tokenizer (tokenizer.model sha256" in resumed.stderr and "token ids mean other pieces" in resumed.stderr
