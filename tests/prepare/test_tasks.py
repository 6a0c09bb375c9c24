"""prepare as task i of n (prepare/shares.py, prepare/tasks.py): launcher variables, shares, the join, faults.

The tasks of the end-to-end tests are separate `python -m mixtrain.prepare` processes with the SLURM
array variables set, as `sbatch --array` starts them; in-process tasks get the same Hydra-composed config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, write_raw_corpus
from mixtrain.errors import ConfigError, DataError
from mixtrain.prepare.shares import Task, claim_share, resolve_task, split_shares

SETTINGS = ["tokenizer.vocab_size=320", "tokenizer.sample_bytes_per_domain=200000", "shards.block_size=65",
            "shards.blocks_per_chunk=8", "shards.min_val_tokens=1200", "shards.val_fraction=0.05"]


def _raw(root: Path, big_docs: int = 0) -> Path:
    """conftest's corpus with code in 3 .jsonl files (prose: 60 .txt, tables: 1 .parquet); `big_docs`
    adds a domain of that many short documents in 4 .jsonl files (long enough to be killed mid-share)."""
    raw = write_raw_corpus(root)
    lines = (raw / "code" / "part.jsonl").read_text().splitlines(True)
    (raw / "code" / "part.jsonl").unlink()
    for k in range(3):
        (raw / "code" / f"part{k}.jsonl").write_text("".join(lines[k * 20:(k + 1) * 20]))
    if big_docs:
        (raw / "big").mkdir()
        for k in range(4):
            with open(raw / "big" / f"part{k}.jsonl", "w") as f:
                for i in range(big_docs // 4):
                    f.write(json.dumps({"text": f"document {k} {i}: the mixture of {i % 97} domains and {i * 7} tokens"}) + "\n")
    return raw


def _overrides(raw: Path, out: Path, *extra: str) -> list[str]:
    settings = [s for s in SETTINGS if "tokenizer=hf" not in extra or not s.startswith("tokenizer.")]
    return ["data=dir", f"data.root={raw}", f"data_dir={out}", *settings, *extra]


def _config(raw: Path, out: Path, *extra: str):
    """The PrepareConfig the command line builds (Hydra compose + bind): the same setup key as a CLI task."""
    from hydra import compose, initialize_config_dir

    from mixtrain.hydra_app import bind
    from mixtrain.prepare.config import PrepareConfig

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return bind(compose("prepare", overrides=_overrides(raw, out, *extra)), PrepareConfig)


def _env(**variables: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in ("RANK", "WORLD_SIZE")}
    return {**env, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", **{k: str(v) for k, v in variables.items()}}


def _start(raw: Path, out: Path, rank: int, count: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mixtrain.prepare", *_overrides(raw, out, *extra)], cwd=out.parent,
                            env=_env(SLURM_ARRAY_TASK_ID=rank, SLURM_ARRAY_TASK_COUNT=count, SLURM_ARRAY_TASK_MIN=0),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _contents(data_dir: Path) -> dict[str, bytes]:
    """Every file of a prepared DIR but the hidden ones (.shares, the lock); index.json without litdata's
    `updated_at` time stamp and checksums.json without index.json's entries (the one byte that differs
    between any two prepares, one machine or many)."""
    files = {}
    for p in sorted(data_dir.rglob("*")):
        rel = p.relative_to(data_dir)
        if p.is_dir() or any(part.startswith(".") for part in rel.parts):
            continue
        if p.name == "index.json":
            index = json.loads(p.read_text())
            index.pop("updated_at")
            files[str(rel)] = json.dumps(index, sort_keys=True).encode()
        elif p.name == "checksums.json":
            record = json.loads(p.read_text())
            record["files"] = {k: v for k, v in record["files"].items() if not k.endswith("index.json")}
            files[str(rel)] = json.dumps(record, sort_keys=True).encode()
        else:
            files[str(rel)] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def raw_and_reference(tmp_path_factory):
    """The corpus and its one-machine prepare (`tasks.prepare` with one task = pipeline.prepare)."""
    from mixtrain.prepare.tasks import prepare

    root = tmp_path_factory.mktemp("tasks")
    raw = _raw(root / "raw")
    prepare(_config(raw, root / "one", "prepare.node_rank=0", "prepare.num_nodes=1"))
    return raw, root / "one"


# ------------------------------------------------------------------ which task
@pytest.mark.parametrize("env, explicit, expected", [
    ({}, (None, None), (0, 1)),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "5", "RANK": "0",
      "WORLD_SIZE": "2"}, (None, None), (2, 4)),  # the array wins over everything the launcher also sets
    ({"RANK": "3", "WORLD_SIZE": "8", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, (None, None), (3, 8)),  # srun torchrun
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, (None, None), (1, 2)),
    ({"RANK": "3", "WORLD_SIZE": "8"}, (1, 3), (1, 3)),  # explicit keys win
])
def test_task_is_read_from_the_launcher_variables(env, explicit, expected):
    task = resolve_task(*explicit, env=env)
    assert (task.rank, task.count) == expected


@pytest.mark.parametrize("env, explicit, message", [
    ({"RANK": "4", "WORLD_SIZE": "4"}, (None, None), r"task 4 of 4 \(from RANK/WORLD_SIZE"),
    ({"RANK": "x", "WORLD_SIZE": "4"}, (None, None), "RANK='x' is not an integer"),
    ({}, (1, None), "give both"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "2"}, (None, None), "grid"),
])
def test_impossible_tasks_are_refused_naming_the_source(env, explicit, message):
    with pytest.raises(ConfigError, match=message):
        resolve_task(*explicit, env=env)


def test_shares_are_contiguous_runs_of_each_domain_with_equal_bytes_per_task(tmp_path):
    sizes = {"a": [10, 500, 20, 20, 300, 0], "b": [50, 50, 50, 900, 5], "c": [400], "d": [380], "e": [420]}
    files = {}
    for d, domain_sizes in sizes.items():
        files[d] = []
        for i, size in enumerate(domain_sizes):
            files[d].append(tmp_path / d / f"f{i:02d}.txt")
            files[d][-1].parent.mkdir(exist_ok=True)
            files[d][-1].write_bytes(b"x" * size)
    for count in (1, 2, 3, 4, 16):
        shares = split_shares(files, count)
        for d in files:  # within a domain: every file once, in order, so rank order = document order
            assert [p for share in shares for p in share[d]] == files[d]
        if count <= 4:  # about equal bytes per task
            per_task = [sum(p.stat().st_size for ps in share.values() for p in ps) for share in shares]
            assert max(per_task) - min(per_task) <= 900, per_task
    one_file_domains = {d: files[d] for d in ("c", "d", "e")}  # fewer files than tasks per domain: still spread
    assert [sorted(d for d, ps in share.items() if ps) for share in split_shares(one_file_domains, 3)] == [["c"], ["d"], ["e"]]


# ------------------------------------------------------------------ same data, any task count
@pytest.mark.slow  # six processes (~30 s on 2 shared cores)
def test_2_and_4_tasks_make_the_data_dir_one_machine_makes(raw_and_reference, tmp_path):
    raw, one = raw_and_reference
    procs = {(n, r): _start(raw, _mkdir(tmp_path / f"n{n}"), r, n) for n in (2, 4) for r in range(n)}
    logs = {k: p.communicate(timeout=600)[0] for k, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), "\n----\n".join(v[-2000:] for v in logs.values())
    assert sum("joined 4 shares" in log for (n, _), log in logs.items() if n == 4) == 1  # the last task joined, once
    reference = _contents(one)
    assert {"tokenizer.model", "manifest.json", "code/train/chunk-0-0.bin", "prose/val/index.json"} <= set(reference)
    for n in (2, 4):
        assert _contents(tmp_path / f"n{n}") == reference, n  # tokenizer, stats, manifest, every shard byte
        assert not (tmp_path / f"n{n}" / ".shares" / f"{n}-tasks").exists()  # joined: the shares are gone


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_joined_dir_verifies_and_a_one_machine_prepare_finds_it_up_to_date(raw_and_reference, tmp_path, capsys):
    from mixtrain.prepare.pipeline import prepare as one_machine
    from mixtrain.prepare.tasks import prepare
    from mixtrain.store.datadir import verify_data_dir

    raw, one = raw_and_reference
    out = tmp_path / "joined"
    assert prepare(_config(raw, out, "prepare.node_rank=0", "prepare.num_nodes=2"))["joined"] is False
    assert not (out / "manifest.json").exists()  # nothing joined until every share is complete
    manifest = prepare(_config(raw, out, "prepare.node_rank=1", "prepare.num_nodes=2"))
    assert manifest == json.loads((one / "manifest.json").read_text())
    verify_data_dir(str(out), deep=True)
    assert prepare(_config(raw, out, "prepare.join_only=true")) == manifest  # a join after the join: nothing to do
    capsys.readouterr()
    one_machine(_config(raw, out))  # the joined DIR is the one a one-machine prepare would have made
    printed = capsys.readouterr().out
    assert all(f"{d}: up to date, skipped" in printed for d in ("code", "prose", "tables")), printed
    capsys.readouterr()
    prepare(_config(raw, out, "prepare.node_rank=0", "prepare.num_nodes=2"))  # re-running a task: nothing redone
    assert "tokenize" not in capsys.readouterr().out.replace("tokenizing a share", "")


# ------------------------------------------------------------------ faults
@pytest.mark.slow  # a 40k-document domain, so that the kill lands mid-share (~30 s)
def test_sigkilled_task_rerun_finishes_its_share_and_the_join_waits_for_it(tmp_path, capsys):
    from mixtrain.prepare.tasks import prepare

    raw = _raw(tmp_path / "raw", big_docs=40_000)
    reference = tmp_path / "one"
    prepare(_config(raw, reference, "prepare.node_rank=0", "prepare.num_nodes=1"))
    out = _mkdir(tmp_path / "two")
    assert prepare(_config(raw, out, "prepare.node_rank=0", "prepare.num_nodes=2"))["joined"] is False
    proc = _start(raw, out, 1, 2)
    share = out / ".shares" / "2-tasks" / "big"
    deadline = time.monotonic() + 300
    while not list(share.glob(".1.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)  # mid-share: its temporary folder exists, its share.json does not
    proc.communicate()
    assert list(share.glob(".1.tmp-*")) and not (share / "1" / "share.json").exists()
    capsys.readouterr()
    assert prepare(_config(raw, out, "prepare.node_rank=0", "prepare.num_nodes=2"))["joined"] is False  # re-run all:
    printed = capsys.readouterr().out  # the complete shares are skipped, and no join without task 1's share
    assert all(f"{d}: share 0 of 2 complete, skipped" in printed for d in ("big", "code", "prose", "tables")), printed
    with pytest.raises(DataError, match=r"not complete, e\.g\. domain 'big' of task 1"):
        prepare(_config(raw, out, "prepare.join_only=true"))
    assert not (out / "manifest.json").exists() and not (out / "big").exists()
    manifest = prepare(_config(raw, out, "prepare.node_rank=1", "prepare.num_nodes=2"))  # the re-run joins
    assert manifest["domains"] == ["big", "code", "prose", "tables"]
    assert _contents(out) == _contents(reference)


def test_two_tasks_claiming_one_share_get_a_clear_error(tmp_path):
    with claim_share(tmp_path, Task(1, 2, "RANK/WORLD_SIZE")):
        with pytest.raises(DataError, match=r"share 1 of 2 .* already being worked on by pid \d+ .*two tasks got the same rank"):
            with claim_share(tmp_path, Task(1, 2, "SLURM_PROCID/SLURM_NTASKS")):
                pass
    with claim_share(tmp_path, Task(1, 2)):  # released: the next run of that rank claims it
        pass


def test_a_raw_file_changed_between_tasks_is_named(raw_and_reference, tmp_path):
    import shutil

    from mixtrain.prepare.tasks import prepare

    raw = tmp_path / "raw"
    shutil.copytree(raw_and_reference[0], raw)
    out = tmp_path / "out"
    prepare(_config(raw, out, "prepare.node_rank=0", "prepare.num_nodes=2"))
    with open(raw / "prose" / "doc007.txt", "a") as f:
        f.write(" one more sentence.")
    with pytest.raises(DataError, match=r"domain\(s\) \['prose'\] are not the ones task 0 read .*changed between tasks"):
        prepare(_config(raw, out, "prepare.node_rank=1", "prepare.num_nodes=2", "prepare.tokenizer_timeout_s=0.5"))
    with pytest.raises(DataError, match=r"\['prose'\] are not the ones task 0 read"):
        prepare(_config(raw, out, "prepare.join_only=true"))
    assert not (out / "manifest.json").exists()


def test_a_task_without_task_0_names_the_file_it_waited_for(raw_and_reference, tmp_path):
    from mixtrain.prepare.tasks import prepare

    with pytest.raises(DataError, match=r"task 0 did not write .*/\.shares/setup\.json .*tokenizer_timeout_s=0\.3"):
        prepare(_config(raw_and_reference[0], tmp_path / "out", "prepare.node_rank=2", "prepare.num_nodes=3",
                        "prepare.tokenizer_timeout_s=0.3"))


def test_url_data_dir_with_several_tasks_needs_a_shared_staging_dir(raw_and_reference, tmp_path):
    from mixtrain.prepare.tasks import prepare

    raw, one = raw_and_reference
    url = "file://" + str(tmp_path / "remote")
    with pytest.raises(ConfigError, match="staging_dir=FOLDER on a filesystem every task sees"):
        prepare(_config(raw, url, "prepare.node_rank=0", "prepare.num_nodes=2"))
    staging = f"staging_dir={tmp_path / 'shared'}"
    prepare(_config(raw, url, staging, "prepare.node_rank=0", "prepare.num_nodes=2"))
    assert not (tmp_path / "remote" / "manifest.json").exists()  # only the joining task uploads
    prepare(_config(raw, url, staging, "prepare.node_rank=1", "prepare.num_nodes=2"))
    assert _contents(tmp_path / "remote") == _contents(one)


def test_hf_tokenizer_json_is_copied_not_trained_and_shared_by_every_task(raw_and_reference, tmp_path):
    from mixtrain.prepare.tasks import prepare
    from prepare.test_tokenizer import write_hf_tokenizer

    raw = raw_and_reference[0]
    hf = write_hf_tokenizer(tmp_path / "tok.json")
    extra = ("tokenizer=hf", f"tokenizer.path={hf}")
    reference = tmp_path / "one"
    prepare(_config(raw, reference, *extra, "prepare.node_rank=0", "prepare.num_nodes=1"))
    out = tmp_path / "two"
    prepare(_config(raw, out, *extra, "prepare.node_rank=0", "prepare.num_nodes=2"))
    setup = json.loads((out / ".shares" / "setup.json").read_text())
    assert setup["tokenizer_file"] == "hf_tokenizer.json" and not (out / "tokenizer.model").exists()
    manifest = prepare(_config(raw, out, *extra, "prepare.node_rank=1", "prepare.num_nodes=2"))
    assert manifest["tokenizer"] == "hf_tokenizer.json" and (out / "hf_tokenizer.json").read_bytes() == hf.read_bytes()
    assert _contents(out) == _contents(reference)


# ------------------------------------------------------------------ launch/prepare.sbatch
def test_prepare_sbatch_submits_an_array_and_a_join_after_it(tmp_path):
    """The login-node branch, with `sbatch` replaced by a script that records its arguments."""
    bin_dir = _mkdir(tmp_path / "bin")
    (bin_dir / "sbatch").write_text('#!/usr/bin/env bash\necho "$@" >> "$SBATCH_LOG"\necho 4242\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_LOG": str(tmp_path / "log"), "TASKS": "3"}
    env.pop("SLURM_JOB_ID", None)
    done = subprocess.run(["bash", str(REPO / "launch" / "prepare.sbatch"), "data=dir", "data_dir=/shared/out"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    array, join = (tmp_path / "log").read_text().splitlines()
    assert array.startswith("--parsable --array=0-2 ") and array.endswith("prepare.sbatch data=dir data_dir=/shared/out")
    assert "--dependency=afterany:4242" in join and "MIXTRAIN_PREPARE_JOIN=3" in join and join.endswith("data_dir=/shared/out")


@pytest.mark.slow  # three processes (~20 s)
def test_prepare_sbatch_tasks_and_join_job_make_the_one_machine_dir(raw_and_reference, tmp_path):
    """The job branches: array tasks 1 and 0 of 2 (task 1 started first waits for task 0's tokenizer),
    then the join job, which finds the join done by the last task and leaves DIR as it is."""
    raw, one = raw_and_reference
    out = tmp_path / "out"
    script = ["bash", str(REPO / "launch" / "prepare.sbatch"), *_overrides(raw, out)]
    array = {"SLURM_JOB_ID": 7, "SLURM_ARRAY_TASK_COUNT": 2, "SLURM_ARRAY_TASK_MIN": 0, "SLURM_CPUS_PER_TASK": 1}
    procs = [subprocess.Popen(script, env={**_env(**array, SLURM_ARRAY_TASK_ID=r), "PYTHON": sys.executable},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path) for r in (1, 0)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    join = subprocess.run(script, env={**_env(SLURM_JOB_ID=8, MIXTRAIN_PREPARE_JOIN=2), "PYTHON": sys.executable},
                          capture_output=True, text=True, cwd=tmp_path)
    assert join.returncode == 0, join.stdout + join.stderr
    assert "code: up to date, skipped" in join.stdout
    assert _contents(out) == _contents(one)


def test_task_0_failing_is_reported_to_the_tasks_that_wait_for_it(raw_and_reference, tmp_path):
    from mixtrain.prepare.tasks import prepare

    raw, out = raw_and_reference[0], tmp_path / "out"
    bad = ("tokenizer.vocab_size=100000",)  # more pieces than the sample can give: SentencePiece refuses
    with pytest.raises(ValueError, match="SentencePiece could not train"):
        prepare(_config(raw, out, *bad, "prepare.node_rank=0", "prepare.num_nodes=2"))
    with pytest.raises(DataError, match=r"task 0 failed before the tokenizer was ready .*SentencePiece could not train"):
        prepare(_config(raw, out, *bad, "prepare.node_rank=1", "prepare.num_nodes=2", "prepare.tokenizer_timeout_s=0.5"))
