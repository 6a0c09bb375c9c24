"""Task i of n of a preparation spread over machines: which task this is, its share of every domain,
and the share's token files.

Place in the flow: below prepare/tasks.py (which drives a multi-task prepare: tokenizer, shares,
join) and above corpus.py + shards.py (reading and tokenizing). Layout and guarantees:
docs/prepare_multinode.md.

* Which task: an explicit `prepare.node_rank`/`prepare.num_nodes` wins; then a SLURM array job
  (`SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_COUNT`), then `RANK`/`WORLD_SIZE`
  (torchrun, the innermost launcher when `srun torchrun` runs several processes per SLURM task),
  then `SLURM_PROCID`/`SLURM_NTASKS` (srun); else task 0 of 1 (today's one-machine prepare).
* Its share: the corpus' files (domains in order, each domain's files sorted as corpus.py reads
  them) cut into n contiguous runs of about equal bytes (`split_shares`); a task's share of a
  domain is therefore a contiguous run of that domain's files. Files are the unit (a file is read
  by one task), so the shares joined in rank order keep the one-machine document order.
* The share's output: DIR/.shares/<n>-tasks/<domain>/<i>/ holding tokens.bin (int32 tokens of every
  non-empty document, in order), lengths.npy (tokens per document) and share.json (counts, the
  fingerprint of its inputs, size + sha256 of both files), written in a temporary folder and
  renamed into place: share.json there means the share is complete.
* One task per share: an flock on DIR/.shares/<n>-tasks/task-<i>.lock, taken without waiting; a
  second process with the same i gets a DataError naming both and the variables to check.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import ConfigError, DataError
from mixtrain.prepare import corpus
from mixtrain.prepare.shards import _document_batches, encode_batches
from mixtrain.store.datadir import file_sha256, write_json_atomic

SHARES_DIR = ".shares"


@dataclass(frozen=True)
class Task:
    """This process's place in a preparation: task `rank` of `count`, and where that was read from."""

    rank: int = 0
    count: int = 1
    source: str = "one task"

    def __str__(self) -> str:
        return f"task {self.rank} of {self.count} ({self.source})"


# (rank variable, count variable, launcher) in the order they are tried after the explicit keys
ENV_PAIRS = (("RANK", "WORLD_SIZE", "torchrun"), ("SLURM_PROCID", "SLURM_NTASKS", "srun"))


# how the user sets the task explicitly, named in every message: prepare's config keys by default;
# `mixtrain embed` passes its flags (--node-rank, --num-nodes)
PREPARE_KEYS = ("prepare.node_rank", "prepare.num_nodes")


def _int_var(env: Mapping[str, str], name: str, keys: tuple[str, str]) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ConfigError(f"environment variable {name}={env[name]!r} is not an integer; unset it or set "
                          f"{keys[0]}/{keys[1]} explicitly") from None


def _checked(rank: int, count: int, source: str, keys: tuple[str, str]) -> Task:
    if count < 1 or not 0 <= rank < count:
        raise ConfigError(f"task {rank} of {count} (from {source}) is impossible: the rank must be in [0, count) "
                          f"and the count >= 1; fix the launcher's variables or set {keys[0]}/{keys[1]}")
    return Task(rank, count, source)


def resolve_task(node_rank: int | None = None, num_nodes: int | None = None,
                 env: Mapping[str, str] | None = None, keys: tuple[str, str] = PREPARE_KEYS) -> Task:
    """Task i of n (see the module docstring for the order in which the sources are tried); `keys`
    name the explicit settings in messages."""
    env = os.environ if env is None else env
    if node_rank is not None or num_nodes is not None:
        if node_rank is None or num_nodes is None:
            raise ConfigError(f"{keys[0]}={node_rank} and {keys[1]}={num_nodes}: give both "
                              "(or neither, to read them from SLURM/torchrun variables)")
        return _checked(int(node_rank), int(num_nodes), f"{keys[0]}/{keys[1]}", keys)
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = _int_var(env, "SLURM_ARRAY_TASK_MIN", keys) if "SLURM_ARRAY_TASK_MIN" in env else 0
        step = _int_var(env, "SLURM_ARRAY_TASK_STEP", keys) if "SLURM_ARRAY_TASK_STEP" in env else 1
        offset = _int_var(env, "SLURM_ARRAY_TASK_ID", keys) - first
        if step < 1 or offset % step:
            raise ConfigError(f"SLURM array task {env['SLURM_ARRAY_TASK_ID']} is not on the array's grid (min {first}, "
                              f"step {step}); submit it as --array=0-{_int_var(env, 'SLURM_ARRAY_TASK_COUNT', keys) - 1}")
        return _checked(offset // step, _int_var(env, "SLURM_ARRAY_TASK_COUNT", keys), "SLURM_ARRAY_TASK_ID/COUNT", keys)
    for rank_var, count_var, launcher in ENV_PAIRS:
        if rank_var in env and count_var in env:
            return _checked(_int_var(env, rank_var, keys), _int_var(env, count_var, keys),
                            f"{rank_var}/{count_var}, {launcher}", keys)
    return Task()


def split_shares(files: Mapping[str, list[Path]], count: int) -> list[dict[str, list[Path]]]:
    """Every task's files, per domain: the corpus' files in domain order (as `files` lists them) cut into
    `count` contiguous runs at byte midpoints (a file goes to the task whose [i/n, (i+1)/n) of the
    corpus' bytes holds its middle). Within a domain each task's files are a contiguous run, in rank
    order, so the shares joined in rank order are the domain's documents in one-machine order; over the
    whole corpus the tasks get about equal bytes, even when a domain has fewer files than tasks."""
    order = [(d, p) for d in files for p in files[d]]
    sizes = np.array([max(p.stat().st_size, 1) for _, p in order], dtype=np.float64)  # an empty file counts once
    shares: list[dict[str, list[Path]]] = [{d: [] for d in files} for _ in range(count)]
    if not order:
        return shares
    ends = np.cumsum(sizes)
    owners = np.minimum((count * (ends - sizes / 2) / ends[-1]).astype(np.int64), count - 1)
    for (d, p), owner in zip(order, owners):
        shares[int(owner)][d].append(p)
    return shares


def shares_root(data_dir: Path, count: int) -> Path:
    return Path(data_dir) / SHARES_DIR / f"{count}-tasks"


def share_dir(data_dir: Path, count: int, domain: str, rank: int) -> Path:
    return shares_root(data_dir, count) / domain / str(rank)


@contextlib.contextmanager
def claim_share(data_dir: Path, task: Task, keys: tuple[str, str] = PREPARE_KEYS) -> Iterator[Path]:
    """Hold task.rank's share lock for the block; DataError at once when another process holds it."""
    root = shares_root(data_dir, task.count)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"task-{task.rank}.lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise DataError(f"share {task.rank} of {task.count} of {data_dir} is already being worked on by {holder} "
                            f"(lock {path}), and this process ({socket.gethostname()} pid {os.getpid()}, {task}) claims it "
                            "too: two tasks got the same rank. Check the launcher's variables (SLURM_ARRAY_TASK_ID, "
                            f"RANK, SLURM_PROCID) or {keys[0]}, and start each rank once") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} ({task})\n")
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()  # closing releases the flock; a SIGKILLed holder's lock is released by the kernel


SHARE_FILES = ("tokens.bin", "lengths.npy")


def read_share(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "share.json").read_text())
    except (OSError, ValueError):
        return None


def share_problem(folder: Path, share_fingerprint: str, *, deep: bool = True) -> str | None:
    """Why the share in `folder` is not complete and current (naming the file), or None."""
    record = read_share(folder)
    if record is None:
        return f"{folder / 'share.json'} is missing or unreadable (the share is not complete)"
    if record.get("fingerprint") != share_fingerprint:
        return f"{folder / 'share.json'} was made from other inputs or settings (fingerprint differs)"
    for name in SHARE_FILES:
        f, entry = folder / name, record["files"][name]
        if not f.is_file() or f.stat().st_size != entry["bytes"]:
            return f"{f} is missing or has another size than {folder / 'share.json'} records"
        if deep and file_sha256(f) != entry["sha256"]:
            return f"{f} does not match its sha256 in {folder / 'share.json'}"
    return None


def write_share(domain: str, files: list[Path], tokenizer, folder: Path, share_fingerprint: str, *,
                read_opts: Mapping[str, str], num_workers: int = 1, label: str = "") -> dict[str, Any]:
    """Tokenize the documents of `files` (in order) into `folder` (see the module docstring); returns share.json.

    Tokenizing is shards.py's own (same batches, same workers): a share's tokens are, document
    for document, what a one-machine prepare would have written for those files.
    """
    from tqdm.auto import tqdm

    for stale in [*folder.parent.glob(f".{folder.name}.tmp-*"), *folder.parent.glob(f".{folder.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # a killed earlier run of this rank's (the caller holds its claim)
    tmp = folder.parent / f".{folder.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        counts = {"num_empty_docs": 0, "num_bytes": 0}
        lengths: list[np.ndarray] = []
        before = corpus.files_fingerprint(files)
        docs = (doc for path in files for doc in corpus.iter_file_documents(path, **read_opts))
        with open(tmp / "tokens.bin", "wb") as f, tqdm(desc=f"tokenize {domain}{label}", unit="doc") as bar, \
                contextlib.closing(encode_batches(_document_batches(docs, counts), tokenizer, num_workers)) as encoded:
            for tokens, batch_lengths in encoded:
                f.write(tokens.tobytes())
                lengths.append(batch_lengths)
                bar.update(len(batch_lengths))
        if corpus.files_fingerprint(files) != before:
            raise DataError(f"domain {domain!r}: a raw file of this share changed while it was tokenized ({files[0]} ... "
                            f"{files[-1]}); leave the raw corpus alone during a prepare and re-run this task")
        lengths_arr = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        np.save(tmp / "lengths.npy", lengths_arr.astype(np.int64))
        record = {"domain": domain, "fingerprint": share_fingerprint, "num_files": len(files),
                  "first_file": str(files[0]) if files else None, "last_file": str(files[-1]) if files else None,
                  "num_docs": int(len(lengths_arr)), "num_tokens": int(lengths_arr.sum()), **counts,
                  "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": file_sha256(tmp / n)} for n in SHARE_FILES}}
        write_json_atomic(tmp / "share.json", record)  # last in the folder: complete once renamed into place
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
        return record
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
