"""`python -m mixtrain.prepare ...` as task i of n: one tokenizer, a share of every domain each, one join.

    sbatch --array=0-7 launch/prepare.sbatch data=dir data.root=RAW data_dir=DIR   # 8 tasks, then the join
    torchrun --nnodes=4 --nproc-per-node=1 ... -m mixtrain.prepare data=dir data.root=RAW data_dir=DIR
    python -m mixtrain.prepare data=dir data.root=RAW data_dir=DIR prepare.join_only=true  # join complete shares

Place in the flow: the first stage's command (mixtrain/hydra_app.py calls `prepare` here). One task
(no launcher variables, or a training run's own prepare) is pipeline.prepare unchanged; n > 1:
1. setup - task 0, under DIR/.prepare.lock, materialises RAW (demo/HF/URL sources) and trains the
   tokenizer exactly as one machine does (pipeline.ensure_tokenizer: the same balanced sample),
   then writes DIR/.shares/setup.json. Other tasks wait for that file (`prepare.tokenizer_timeout_s`);
   each checks that RAW's input fingerprints (paths, sizes, mtimes) are the ones task 0 saw.
2. share - each task tokenizes its contiguous run of the corpus' files (shares.split_shares: about
   equal bytes per task; within a domain a contiguous run of its files) under its share lock; complete shares are skipped on a re-run (checked: sizes, and sha256 with verify=deep).
3. join - the task that finds every share complete (under DIR/.prepare.lock), or
   `prepare.join_only=true`, concatenates each domain's shares in rank order and hands them to the
   one-machine writer (shards.write_domain_tokens): same split, same shards, same stats.json, so
   the joined DIR is the DIR one machine makes. Then manifest.json, and the shares are removed.
A URL data_dir is built in `staging_dir`, which must then be a folder every task sees (NFS), and
uploaded by the joining task. Guarantees and litdata's own multi-node tools: docs/prepare_multinode.md.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import ConfigError, DataError
from mixtrain.prepare import corpus, pipeline
from mixtrain.prepare.config import PrepareConfig
from mixtrain.prepare.shards import (
    domain_is_current, domain_problem, fingerprint, remove_stale_temporaries, write_domain_tokens, write_json_atomic,
    write_manifest,
)
from mixtrain.prepare.shares import (
    SHARES_DIR, Task, claim_share, read_share, resolve_task, share_dir, share_problem, shares_root, split_shares, write_share,
)
from mixtrain.prepare.tokenizer import file_hash, open_tokenizer
from mixtrain.store import remote
from mixtrain.store.locks import prepare_lock

SETUP = "setup.json"


def prepare(config: PrepareConfig) -> dict[str, Any]:
    """Prepare config.data_dir as this process's task (shares.resolve_task); returns the manifest, or for a
    task that does not join, a summary {"domains", "vocab_size", "block_size", "joined": False}."""
    if config.prepare.join_only:
        return join_only(config)
    task = resolve_task(config.prepare.node_rank, config.prepare.num_nodes)
    if task.count == 1:
        return pipeline.prepare(config)
    print(f"[prepare] {task}: tokenizing a share of {config.data_dir}", flush=True)
    url, data_dir, local_root = _refusals(config, task)  # before anything is written
    with claim_share(data_dir, task) as claim:  # its mtime: when this task started, on the shared clock
        state = _setup(config, task, url, data_dir, local_root, started=claim.stat().st_mtime)
        for d in state["domains"]:
            _prepare_share(config, task, state, d)
    with prepare_lock(state["data_dir"], config.lock_timeout_s):
        waiting = _incomplete_shares(config, state, task.count)
        if not waiting:
            return _join_locked(config, state, task.count)
    d, rank = waiting[0]
    print(f"[prepare] {task}: done; {len(waiting)} share(s) not complete yet (e.g. domain {d!r}, task {rank}): the "
          "last task to finish joins them (or run the same command with prepare.join_only=true)", flush=True)
    return {"domains": state["domains"], "vocab_size": state["tokenizer"].vocab_size,
            "block_size": config.shards.block_size, "joined": False}


def _local_dir(config: PrepareConfig, task_count: int) -> tuple[str | None, Path]:
    """(the URL or None, the local folder the tasks build in)."""
    if not remote.is_url(config.data_dir):
        return None, Path(config.data_dir)
    remote.check_url(config.data_dir)
    if task_count > 1 and not config.staging_dir:
        raise ConfigError(f"data_dir={config.data_dir} with {task_count} tasks: set staging_dir=FOLDER on a filesystem "
                          "every task sees (e.g. NFS): the shares are joined there, then uploaded by the joining task")
    return config.data_dir, remote.staging_dir(config.data_dir, config.staging_dir)


def _setup_key(config: PrepareConfig) -> str:
    """What task 0's setup depends on besides RAW's files: every task of one preparation has the same."""
    return fingerprint(pipeline.FORMAT_TAG, dict(config.data), dict(config.tokenizer))


def _read_opts(config: PrepareConfig) -> dict[str, str]:
    data = dict(config.data)
    return {"text_field": data.get("text_field", "text"), "txt_mode": data.get("txt_mode", "file")}


def _refusals(config: PrepareConfig, task: Task) -> tuple[str | None, Path, str | None]:
    """Every refusal pipeline.prepare makes before writing; (URL or None, local DIR, local data.root or None)."""
    data, txt_mode = dict(config.data), _read_opts(config)["txt_mode"]
    pipeline._check_options(config.verify, config.num_workers, txt_mode)
    pipeline.check_source(data)
    url, data_dir = _local_dir(config, task.count)
    root = data.get("root") if data.get("source", "dir") == "dir" else None
    local_root = root if root and not remote.is_url(root) else None
    if local_root:
        pipeline.check_separate_folders(local_root, data_dir, internal_raw_ok=False)
        pipeline.check_raw(local_root, txt_mode)
    return url, data_dir, local_root


def _setup(config: PrepareConfig, task: Task, url: str | None, data_dir: Path, local_root: str | None,
           started: float) -> dict[str, Any]:
    """Task 0: RAW + tokenizer + setup.json under the prepare lock (a failure is written there too, so
    nobody waits for it); the others wait for setup.json."""
    data, read_opts = dict(config.data), _read_opts(config)
    setup_path = data_dir / SHARES_DIR / SETUP
    if task.rank == 0:
        with prepare_lock(data_dir, config.lock_timeout_s):
            try:
                raw = pipeline.materialize_raw(data, data_dir)
                pipeline.check_separate_folders(raw, data_dir)
                files = pipeline.check_raw(raw, read_opts["txt_mode"])
                prints = {d: corpus.files_fingerprint(files[d]) for d in files}
                tok_args = pipeline._tokenizer_args(dict(config.tokenizer))
                tokenizer, tok_hash = pipeline.ensure_tokenizer(Path(raw), data_dir, list(files), prints, read_opts,
                                                                **tok_args)
            except Exception as e:
                write_json_atomic(setup_path, {"key": _setup_key(config), "failed": f"{type(e).__name__}: {e}"})
                raise
            setup = {"key": _setup_key(config), "raw_root": str(raw), "raw": prints, "tokenizer": tok_hash,
                     "tokenizer_file": Path(tokenizer.model_path).name,
                     "tokenizer_options": tok_args["tokenizer_options"] if tokenizer.kind == "hf" else {}}
            write_json_atomic(setup_path, setup)
    else:
        setup = _wait_for_setup(config, task, setup_path, local_root, started)
        files = pipeline.check_raw(setup["raw_root"], read_opts["txt_mode"])
        prints = {d: corpus.files_fingerprint(files[d]) for d in files}
        _check_same_raw(setup_path, setup["raw"], prints, task)
        tokenizer, tok_hash = _setup_tokenizer(data_dir, setup, setup_path)
    return {"url": url, "data_dir": data_dir, "raw_root": Path(setup["raw_root"]), "files": files, "prints": prints,
            "domains": list(files), "tokenizer": tokenizer, "tok_hash": tok_hash, "read_opts": read_opts}


def _setup_tokenizer(data_dir: Path, setup: dict[str, Any], setup_path: Path) -> tuple[Any, str]:
    """Task 0's tokenizer, checked against the hash setup.json records."""
    tokenizer = open_tokenizer(data_dir / setup["tokenizer_file"], **setup["tokenizer_options"])
    tok_hash = file_hash(tokenizer.model_path) + (f":{tokenizer.bos_id}:{tokenizer.eos_id}" if tokenizer.kind == "hf" else "")
    if tok_hash != setup["tokenizer"]:
        raise DataError(f"{tokenizer.model_path} is not the tokenizer {setup_path} records (it changed after task 0 "
                        "trained it); re-run every task")
    return tokenizer, tok_hash


def _check_same_raw(setup_path: Path, recorded: dict[str, str], prints: dict[str, str], task: Task) -> None:
    changed = sorted(set(recorded) ^ set(prints) | {d for d in set(recorded) & set(prints) if recorded[d] != prints[d]})
    if changed:
        raise DataError(f"{task}: the raw files of domain(s) {changed} are not the ones task 0 read ({setup_path} records "
                        "their paths, sizes and modification times): the raw corpus changed between tasks, or the tasks "
                        "see different folders. Leave RAW alone while preparing and re-run every task")


def _wait_for_setup(config: PrepareConfig, task: Task, setup_path: Path, local_root: str | None,
                    started: float) -> dict[str, Any]:
    """setup.json of this preparation (same key and, for a local RAW, the same input fingerprints).

    A setup.json written after this task started (mtime >= `started`, both on the shared filesystem's
    clock) that records task 0's failure or other raw files is final: raised at once. An older one may
    be a previous preparation's, which task 0 has yet to replace: waited on until the timeout.
    """
    key, timeout = _setup_key(config), float(config.prepare.tokenizer_timeout_s)
    mine = None
    if local_root:
        mine = {d: corpus.files_fingerprint(f) for d, f in pipeline.check_raw(local_root, _read_opts(config)["txt_mode"]).items()}
    deadline, announced = time.monotonic() + timeout, False
    while True:
        try:
            setup, fresh = json.loads(setup_path.read_text()), setup_path.stat().st_mtime >= started
        except (OSError, ValueError):
            setup, fresh = None, False
        ours = bool(setup) and setup.get("key") == key
        if ours and "failed" not in setup and (mine is None or setup.get("raw") == mine):
            return setup
        timed_out = time.monotonic() >= deadline
        if ours and (fresh or timed_out):
            if "failed" in setup:
                raise DataError(f"{task}: task 0 failed before the tokenizer was ready ({setup_path}: {setup['failed']}); "
                                "fix that (task 0's log says more) and re-run every task")
            _check_same_raw(setup_path, setup["raw"], mine or {}, task)
        if timed_out:
            break
        if not announced:
            print(f"[prepare] {task}: waiting for task 0's tokenizer ({setup_path}, up to {timeout:g} s)", flush=True)
            announced = True
        time.sleep(1.0)
    raise DataError(f"{task}: task 0 did not write {setup_path} for this preparation within "
                    f"prepare.tokenizer_timeout_s={timeout:g} s (it trains the tokenizer first): check that task 0 runs "
                    "with the same data/tokenizer settings and data_dir, and its log; then re-run this task")


def _share_fingerprint(state: dict[str, Any], domain: str, rank: int, count: int) -> str:
    """A share's inputs: its domain's files (all of them: any change re-makes every share of it), the files
    that are its own (the cut depends on every domain's sizes), the tokenizer, the reading options."""
    if count not in state.setdefault("shares", {}):
        state["shares"][count] = split_shares(state["files"], count)
    own = [str(p) for p in state["shares"][count][rank][domain]]
    return fingerprint(pipeline.FORMAT_TAG, "share", state["prints"][domain], own, state["tok_hash"],
                       state["read_opts"], rank, count)


def _domain_fingerprint(config: PrepareConfig, state: dict[str, Any], domain: str) -> str:
    """The one-machine prepare's fingerprint (pipeline._prepare_locked): a joined domain is up to date for it too."""
    return fingerprint(pipeline.FORMAT_TAG, state["prints"][domain], state["tok_hash"], state["read_opts"],
                       vars(config.shards))


def _joined(config: PrepareConfig, state: dict[str, Any], domain: str) -> bool:
    return (domain_is_current(state["data_dir"], domain, _domain_fingerprint(config, state, domain))
            and domain_problem(state["data_dir"], domain, deep=False) is None)


def _prepare_share(config: PrepareConfig, task: Task, state: dict[str, Any], domain: str) -> None:
    if _joined(config, state, domain):
        print(f"[prepare] {domain}: joined and up to date, share skipped", flush=True)
        return
    folder = share_dir(state["data_dir"], task.count, domain, task.rank)
    sfp = _share_fingerprint(state, domain, task.rank, task.count)
    if share_problem(folder, sfp, deep=config.verify == "deep") is None:
        print(f"[prepare] {domain}: share {task.rank} of {task.count} complete, skipped", flush=True)
        return
    files = state["shares"][task.count][task.rank][domain]  # split by _share_fingerprint above
    record = write_share(domain, files, state["tokenizer"], folder, sfp, read_opts=state["read_opts"],
                         num_workers=config.num_workers, label=f" (share {task.rank}/{task.count})")
    print(f"[prepare] {domain}: share {task.rank} of {task.count}: {record['num_files']} file(s), "
          f"{record['num_docs']:,} docs, {record['num_tokens']:,} tokens", flush=True)


def _incomplete_shares(config: PrepareConfig, state: dict[str, Any], count: int) -> list[tuple[str, int]]:
    """(domain, rank) of every share a join still lacks (cheap check: sizes; the join checks sha256)."""
    return [(d, r) for d in state["domains"] if not _joined(config, state, d) for r in range(count)
            if share_problem(share_dir(state["data_dir"], count, d, r), _share_fingerprint(state, d, r, count), deep=False)]


def _join_locked(config: PrepareConfig, state: dict[str, Any], count: int) -> dict[str, Any]:
    """Every domain from its `count` complete shares into DIR/<domain>, then manifest.json (under the lock)."""
    from tqdm.auto import tqdm

    data_dir = state["data_dir"]
    remove_stale_temporaries(data_dir)  # the lock: no other prepare writes DIR/<domain> now
    for d in state["domains"]:
        if _joined(config, state, d) and domain_problem(data_dir, d, deep=config.verify == "deep") is None:
            print(f"[prepare] {d}: up to date, skipped", flush=True)
            continue
        folders = [share_dir(data_dir, count, d, r) for r in range(count)]
        for r, folder in enumerate(folders):
            problem = share_problem(folder, _share_fingerprint(state, d, r, count), deep=config.verify == "deep")
            if problem:
                raise DataError(f"domain {d!r}: share {r} of {count} cannot be joined: {problem}; re-run task {r} "
                                f"(prepare.node_rank={r} prepare.num_nodes={count}), then the join")
        records = [read_share(f) for f in folders]
        tmp_dir = data_dir / f".{d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        try:
            with open(tmp_dir / "tokens.bin", "wb") as out:
                for folder in tqdm(folders, desc=f"join {d}", unit="share"):
                    with open(folder / "tokens.bin", "rb") as src:
                        shutil.copyfileobj(src, out, 16 << 20)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        lengths = np.concatenate([np.load(f / "lengths.npy") for f in folders])
        counts = {k: sum(int(r[k]) for r in records) for k in ("num_empty_docs", "num_bytes")}
        files = state["files"][d]
        stats = write_domain_tokens(d, tmp_dir, lengths, counts, state["tokenizer"].vocab_size, data_dir, config.shards,
                                    _domain_fingerprint(config, state, d), extra_stats={"source_files": len(files)},
                                    hint=pipeline._txt_hint(files, state["read_opts"]["txt_mode"]))
        print(f"[prepare] {d}: joined {count} shares: {stats['num_docs']:,} docs, {stats['num_tokens']:,} tokens "
              f"({stats['num_train_tokens']:,} train / {stats['num_val_tokens']:,} val)", flush=True)
    manifest = write_manifest(data_dir, state["domains"], config.shards, state["tokenizer"])
    shutil.rmtree(shares_root(data_dir, count), ignore_errors=True)  # joined: the shares' tokens are in the shards
    if state["url"]:
        uploaded = remote.publish(data_dir, state["url"], dict(config.storage_options or {}))
        print(f"[prepare] {state['url']}: uploaded {uploaded or 'no domain (all up to date)'} and manifest.json", flush=True)
    return manifest


def _task_count_for_join(config: PrepareConfig, data_dir: Path) -> int | None:
    """prepare.num_nodes, else the one <n>-tasks folder of DIR/.shares; None when there is none (joined)."""
    if config.prepare.num_nodes is not None:
        return int(config.prepare.num_nodes)
    found = sorted(int(p.name.split("-")[0]) for p in (data_dir / SHARES_DIR).glob("*-tasks") if p.name.split("-")[0].isdigit())
    if len(found) > 1:
        raise DataError(f"prepare.join_only=true: {data_dir / SHARES_DIR} holds shares of {found} task counts; "
                        "set prepare.num_nodes=N (the N the tasks ran with)")
    return found[0] if found else None


def join_only(config: PrepareConfig) -> dict[str, Any]:
    """`prepare.join_only=true`: join the shares the tasks left (all must be complete) into DIR; tokenize nothing."""
    url, data_dir = _local_dir(config, 2)
    count = _task_count_for_join(config, data_dir)
    setup_path = data_dir / SHARES_DIR / SETUP
    try:
        setup = json.loads(setup_path.read_text())
    except (OSError, ValueError):
        raise DataError(f"prepare.join_only=true: {setup_path} is missing or unreadable: the tasks have not run "
                        "(task 0 writes it before tokenizing); run them first") from None
    if setup.get("key") != _setup_key(config):
        raise ConfigError(f"prepare.join_only=true: {setup_path} was written for other data/tokenizer settings; "
                          "give the join the same data=... and tokenizer=... overrides as the tasks")
    if "failed" in setup:
        raise DataError(f"prepare.join_only=true: task 0 failed ({setup_path}: {setup['failed']}); fix that and re-run "
                        "every task")
    read_opts = _read_opts(config)
    files = pipeline.check_raw(setup["raw_root"], read_opts["txt_mode"])
    prints = {d: corpus.files_fingerprint(files[d]) for d in files}
    _check_same_raw(setup_path, setup["raw"], prints, Task(source="prepare.join_only"))
    tokenizer, tok_hash = _setup_tokenizer(data_dir, setup, setup_path)
    state = {"url": url, "data_dir": data_dir, "raw_root": Path(setup["raw_root"]), "files": files, "prints": prints,
             "domains": list(files), "tokenizer": tokenizer, "tok_hash": tok_hash, "read_opts": read_opts}
    with prepare_lock(data_dir, config.lock_timeout_s):
        if count is None:  # no shares left: fine when a task already joined them all (then: checked, manifest)
            waiting = [(d, 0) for d in state["domains"] if not _joined(config, state, d)]
            if waiting:
                raise DataError(f"prepare.join_only=true: {data_dir / SHARES_DIR} holds no shares and domain "
                                f"{waiting[0][0]!r} is not joined: run the tasks first (or set prepare.num_nodes=N)")
            return _join_locked(config, state, 1)
        waiting = _incomplete_shares(config, state, count)
        if waiting:
            raise DataError(f"prepare.join_only=true: {len(waiting)} share(s) of {count} tasks are not complete, e.g. "
                            f"domain {waiting[0][0]!r} of task {waiting[0][1]} ({share_dir(data_dir, count, *waiting[0])}); "
                            "run (or re-run) those tasks first: nothing was joined")
        return _join_locked(config, state, count)

