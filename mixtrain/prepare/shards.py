"""Token shards per domain: tokenizing and litdata writing of the prepared data directory.

Place in the flow: corpus.py + tokenizer.py -> **shards.py** (writes) -> datadir.py (stats,
checksums, manifest: read and verified) -> sampler/ / train/datamodule.py / domain_entropy.py. Layout: docs/formats.md.

`prepare_corpus(raw_root, data_dir, ...)` tokenizes every domain of RAW and writes, per domain,
litdata shards (`optimize` + `TokensLoader`, chunks of block_size * blocks_per_chunk tokens)
for a train and a val split, then `checksums.json` and `stats.json`, then `DIR/manifest.json`.

* Idempotent: every domain's `stats.json` holds a fingerprint of its input files (paths, sizes,
  mtimes), the tokenizer file and every setting that changes the output; a domain whose
  fingerprint matches is skipped (datadir.domain_is_current), anything else is rebuilt.
* Atomic: a domain is built in `DIR/.<domain>.tmp-<pid>/` (stats.json written last) and only
  then renamed into place; `stats.json` in `DIR/<domain>/` therefore always means complete
  shards. Stale temporary folders of crashed runs are removed. manifest.json is written last.
* Verified: datadir.record_checksums records every shard file before stats.json is written;
  datadir.verify_data_dir checks them.
* Streamed and parallel: documents are tokenized in batches by `num_workers` processes
  (prepare's `num_workers`; results kept in input order) and their tokens appended to a
  temporary file as they come; memory holds the per-document lengths (8 bytes a document),
  never a domain's token array. One litdata writer then copies the documents into chunks, so
  the shards are the same bytes for any number of workers (not part of the fingerprint).
* Split: documents are taken in a seeded random order into val until val holds
  max(min_val_tokens, val_fraction * tokens) tokens (at most max_val_tokens and half the
  domain); the rest, in corpus order, is train. A document that would take val past
  max_val_tokens or half the domain is cut at a block boundary (its head to val, its tail
  stays in train), and a domain too small for a block in each split is refused by name.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# the readers and checks live in datadir.py; the names below that shards.py does not use itself are
# kept importable from here for existing callers (pipeline.py, train/run.py, tests, bench/)
from mixtrain.store.datadir import (  # noqa: F401 (re-exports)
    CHECKSUMS, FORMAT_VERSION, PREPARE_HINT, domain_is_current, domain_problem, fingerprint, read_manifest,
    read_stats, record_checksums, verify_data_dir, verify_shards, write_json_atomic,
)
from mixtrain.prepare.interrupt import sigint_raises
from mixtrain.store.litdata_range import require_litdata

log = logging.getLogger(__name__)


@dataclass  # not frozen: Hydra sets shards.* overrides on it (prepare/config.py); treat as read-only
class ShardSettings:
    block_size: int = 1025  # longest trainable sequence + 1
    blocks_per_chunk: int = 256
    val_fraction: float = 0.02
    min_val_tokens: int = 16_384
    max_val_tokens: int = 1_000_000
    seed: int = 0

    def __post_init__(self):
        if self.block_size < 2 or self.blocks_per_chunk < 1:
            raise ValueError(f"block_size ({self.block_size}) must be >= 2 and blocks_per_chunk >= 1")
        if not 0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")


# ------------------------------------------------------------------------------ tokenizing
BATCH_DOCS = 256  # documents per tokenizer call (and per task of a worker process)
_worker_tokenizer = None  # the tokenizer of a worker process (set by _init_worker)


def _init_worker(tokenizer) -> None:
    global _worker_tokenizer
    # a forked worker inherits the parent's Python signal handlers; Pool.terminate stops workers with
    # SIGTERM, so a handler that only sets a flag (a training run's preemption handler in the same
    # process) would leave terminate() waiting on a worker that never exits
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker_tokenizer = tokenizer  # fork: inherited as is; spawn: unpickled (re-opened from its file)


def _pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One batch's documents as (all tokens concatenated, tokens per document): cheap to pipe."""
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    return (np.concatenate(arrays) if arrays else np.zeros(0, np.int32)).astype(np.int32, copy=False), lengths


def _encode_in_worker(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _pack(_worker_tokenizer.encode_documents(batch, num_threads=1))  # the processes are the parallelism


def encode_batches(batches: Iterable[list[str]], tokenizer, num_workers: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(tokens, lengths) of every batch, in input order whatever num_workers.

    num_workers=1: in this process (the tokenizer's own threads). N > 1: N forked processes,
    each with one thread, while this one reads the next documents and writes the last tokens.
    At most 2N batches are in flight, so memory does not grow with the domain.
    """
    if num_workers <= 1:
        for batch in batches:
            yield _pack(tokenizer.encode_documents(batch))
        return
    # fork: no re-import of the caller's __main__ and the loaded tokenizer is inherited
    pool = multiprocessing.get_context("fork").Pool(num_workers, initializer=_init_worker, initargs=(tokenizer,))
    try:
        pending: collections.deque = collections.deque()
        for batch in batches:
            pending.append(pool.apply_async(_encode_in_worker, (batch,)))
            if len(pending) >= 2 * num_workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# ------------------------------------------------------------------------------ writing
def _emit_documents(item: tuple[str, str, int, int]):
    """litdata optimize fn: yield documents i0..i1 of a split (spans in docs_file) as int32 tensors.

    Each document is read from the token file with one seek + read: no mmap of the whole file,
    so the writer's memory stays one document + one litdata chunk whatever the domain's size.
    """
    import torch

    token_file, docs_file, i0, i1 = item
    spans = np.load(docs_file, mmap_mode="r")[i0:i1]
    with open(token_file, "rb") as f:
        for start, end in spans:
            f.seek(int(start) * 4)
            yield torch.from_numpy(np.fromfile(f, dtype=np.int32, count=int(end - start)))


@contextlib.contextmanager
def _private_litdata_cache() -> Iterator[None]:
    """Give one `optimize` call cache folders of its own, removed afterwards.

    litdata stages bookkeeping under fixed names in $TMPDIR/chunks and $TMPDIR/data, shared by
    every optimize on the machine (in 0.2.70 even the list of inputs, `node-0-items.pkl`; 0.2.76
    moved it): two prepares at once (two SLURM jobs on a node, different data_dirs) could write
    each other's documents and both exit 0. litdata reads these two variables in the writer
    process, which `fork` starts after they are set here.
    """
    import tempfile
    from unittest import mock

    with tempfile.TemporaryDirectory(prefix="mixtrain-litdata-", ignore_cleanup_errors=True) as private:
        with mock.patch.dict(os.environ, {"DATA_OPTIMIZER_CACHE_FOLDER": os.path.join(private, "chunks"),
                                          "DATA_OPTIMIZER_DATA_CACHE_FOLDER": os.path.join(private, "data")}):
            yield


def _optimize(token_file: str, starts: np.ndarray, ends: np.ndarray, out_dir: Path, settings: ShardSettings) -> None:
    """Write the documents [starts[i], ends[i]) of token_file, in order, as litdata chunks in out_dir.

    One writer process always: litdata's N workers would each write their own chunks, so the
    chunk layout (and the blocks TokensLoader cuts from it) would depend on N. Tokenizing is the
    parallel part (encode_batches); the shards are the same bytes for any prepare.num_workers.
    """
    require_litdata()  # the sampler and writer use litdata internals: only the tested releases
    from litdata import TokensLoader, optimize

    # litdata logs "max_cache_size is unset ..." at INFO for every reader it opens (4 lines a
    # domain under Hydra's INFO root logger), burying prepare's own progress lines
    logging.getLogger("litdata.utilities.format").setLevel(logging.WARNING)
    group = 512
    docs_file = str(out_dir.parent / f".{out_dir.name}-docs.npy")
    np.save(docs_file, np.stack([np.asarray(starts, np.int64), np.asarray(ends, np.int64)], axis=1).reshape(-1, 2))
    inputs = [(token_file, docs_file, i, min(i + group, len(starts))) for i in range(0, len(starts), group)]
    try:
        with _private_litdata_cache(), sigint_raises():  # Ctrl-C: KeyboardInterrupt, not litdata's os._exit(0)
            optimize(
                fn=_emit_documents, inputs=inputs, output_dir=str(out_dir),
                chunk_size=settings.block_size * settings.blocks_per_chunk,
                item_loader=TokensLoader(), num_workers=1, mode="overwrite",
                # fork: no re-import of the caller's __main__ per call (spawn costs seconds each time)
                start_method="fork", verbose=False,
            )
    finally:
        os.unlink(docs_file)


def _split(lengths: np.ndarray, settings: ShardSettings, domain: str) -> tuple[np.ndarray, int, int]:
    """(val mask, cut document, val tokens of it): documents in a seeded random order go to val until it
    holds the target (see module docstring). A document that would take val past its hard cap
    (max_val_tokens, half the domain) is cut at a block boundary: its first tokens (whole blocks,
    within the cap) go to val, the rest stays in train (cut = -1: none was cut). Refuses a domain
    whose split would leave val or train without one block, naming the keys to change."""
    total = int(lengths.sum())
    cap = min(settings.max_val_tokens, total // 2)
    target = min(max(settings.min_val_tokens, int(settings.val_fraction * total)), cap)
    order = np.random.default_rng([settings.seed, int(hashlib.md5(domain.encode()).hexdigest()[:8], 16)]).permutation(len(lengths))
    val = np.zeros(len(lengths), dtype=bool)
    taken, cut, cut_tokens = 0, -1, 0
    for i in order:
        if taken >= target:
            break
        if taken + int(lengths[i]) > cap:  # a whole document would break the cap: cut it
            cut_tokens = (cap - taken) // settings.block_size * settings.block_size
            if cut_tokens > 0:
                cut, taken = int(i), taken + cut_tokens
            break
        val[i] = True
        taken += int(lengths[i])
    train_tokens = total - taken
    if taken < settings.block_size or train_tokens < settings.block_size:
        raise ValueError(
            f"domain {domain!r} ({total} tokens in {len(lengths)} documents) is too small for both splits: val would "
            f"hold {taken} and train {train_tokens} tokens, each needs at least one block of shards.block_size="
            f"{settings.block_size}; add text to {domain!r}, or change shards.max_val_tokens (now "
            f"{settings.max_val_tokens}), shards.min_val_tokens ({settings.min_val_tokens}), shards.val_fraction "
            f"({settings.val_fraction}) or shards.block_size")
    return val, cut, cut_tokens


def _split_ranges(starts: np.ndarray, ends: np.ndarray, val: np.ndarray, cut: int,
                  cut_tokens: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (starts, ends)} of the token ranges each split writes; a cut document's head is
    appended to val, its tail stays at its place in train."""
    train_s, train_e = starts.copy(), ends.copy()
    val_s, val_e = starts[val], ends[val]
    if cut >= 0:
        val_s, val_e = np.append(val_s, starts[cut]), np.append(val_e, starts[cut] + cut_tokens)
        train_s[cut] = starts[cut] + cut_tokens
    return {"train": (train_s[~val], train_e[~val]), "val": (val_s, val_e)}


def _document_batches(docs: Iterable[str], counts: dict[str, int]) -> Iterator[list[str]]:
    """Non-empty documents in batches of BATCH_DOCS; counts empty documents and text bytes on the way."""
    batch: list[str] = []
    for doc in docs:
        if not doc.strip():
            counts["num_empty_docs"] += 1
            continue
        counts["num_bytes"] += len(doc.encode("utf-8"))
        batch.append(doc)
        if len(batch) >= BATCH_DOCS:
            yield batch
            batch = []
    if batch:
        yield batch


def write_domain(domain: str, docs: Iterable[str], tokenizer, data_dir: Path, settings: ShardSettings,
                 domain_fingerprint: str, extra_stats: dict[str, Any] | None = None, hint: str = "",
                 num_workers: int = 1) -> dict[str, Any]:
    """Tokenize `docs` and write DIR/<domain>/{train,val,stats.json} atomically; returns the stats.

    Streamed: tokens go to a temporary file as they are encoded (num_workers processes, see
    encode_batches); only the per-document lengths stay in memory (8 bytes a document), because
    the split rule needs the domain's total before any document is assigned to val. The shards
    are then written from that file document by document. Disk: 4 bytes a token of temporary.
    `hint` is appended to the too-small-domain error (prepare.py: how .txt files are split).
    """
    from tqdm.auto import tqdm

    tmp_dir = data_dir / f".{domain}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        counts = {"num_empty_docs": 0, "num_bytes": 0}
        lengths: list[np.ndarray] = []
        token_file = tmp_dir / "tokens.bin"
        with open(token_file, "wb") as f, tqdm(desc=f"tokenize {domain}", unit="doc") as bar, \
                contextlib.closing(encode_batches(_document_batches(docs, counts), tokenizer, num_workers)) as encoded:
            for tokens, batch_lengths in encoded:
                f.write(tokens.tobytes())
                lengths.append(batch_lengths)
                bar.update(len(batch_lengths))
        lengths_arr = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        return write_domain_tokens(domain, tmp_dir, lengths_arr, counts, tokenizer.vocab_size, data_dir, settings,
                                   domain_fingerprint, extra_stats, hint)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def write_domain_tokens(domain: str, tmp_dir: Path, lengths_arr: np.ndarray, counts: dict[str, int], vocab_size: int,
                        data_dir: Path, settings: ShardSettings, domain_fingerprint: str,
                        extra_stats: dict[str, Any] | None = None, hint: str = "") -> dict[str, Any]:
    """The second half of write_domain: tmp_dir/tokens.bin (every document's tokens, lengths_arr each)
    -> split, shards, checksums, stats.json, renamed into DIR/<domain>. Also the join of a multi-task
    prepare (prepare/tasks.py), so both make the same bytes."""
    token_file = tmp_dir / "tokens.bin"
    try:
        num_empty, num_bytes = counts["num_empty_docs"], counts["num_bytes"]
        if len(lengths_arr) < 2 or lengths_arr.sum() < 4 * settings.block_size:
            raise ValueError(
                f"domain {domain!r} has {len(lengths_arr)} non-empty document(s) and {int(lengths_arr.sum())} tokens; "
                f"it needs at least 2 documents and {4 * settings.block_size} tokens (4 blocks) for a train and a val split: "
                "add text or lower block_size" + hint
            )
        ends = np.cumsum(lengths_arr)
        starts = ends - lengths_arr
        val, cut, cut_tokens = _split(lengths_arr, settings, domain)
        for split, (split_starts, split_ends) in _split_ranges(starts, ends, val, cut, cut_tokens).items():
            _optimize(str(token_file), split_starts, split_ends, tmp_dir / split, settings)
        token_file.unlink()
        record_checksums(tmp_dir)
        stats = {
            "domain": domain, "num_docs": int(len(lengths_arr)), "num_empty_docs": num_empty,
            "num_tokens": int(lengths_arr.sum()), "num_bytes": num_bytes,
            "num_train_docs": int((~val).sum()), "num_val_docs": int(val.sum()),
            "num_train_tokens": int(lengths_arr[~val].sum()) - cut_tokens,
            "num_val_tokens": int(lengths_arr[val].sum()) + cut_tokens,
            "block_size": settings.block_size, "vocab_size": vocab_size,
            "fingerprint": domain_fingerprint, "format": FORMAT_VERSION, **(extra_stats or {}),
        }
        write_json_atomic(tmp_dir / "stats.json", stats)  # last: its presence means "complete"
        final = data_dir / domain
        old = data_dir / f".{domain}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp_dir, final)
        shutil.rmtree(old, ignore_errors=True)
        return stats
    except BaseException as e:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            print(f"[prepare] interrupted while writing domain {domain!r}: its temporary folder {tmp_dir} was removed; "
                  "domains finished before are kept: run the same command again to continue", file=sys.stderr,
                  flush=True)
        raise


def remove_stale_temporaries(data_dir: Path) -> None:
    for p in data_dir.glob(".*.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in data_dir.glob(".*.old-*"):
        shutil.rmtree(p, ignore_errors=True)


def write_manifest(data_dir: Path, domains: list[str], settings: ShardSettings, tokenizer) -> dict[str, Any]:
    stats = {d: read_stats(data_dir, d) for d in domains}
    manifest = {
        "format": FORMAT_VERSION, "domains": sorted(domains), "block_size": settings.block_size,
        "vocab_size": tokenizer.vocab_size, "tokenizer": Path(tokenizer.model_path).name, "token_dtype": "int32",
        "bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id,
        "fingerprint": fingerprint([stats[d]["fingerprint"] for d in sorted(domains)]),
        "settings": asdict(settings),
    }
    write_json_atomic(data_dir / "manifest.json", manifest)
    return manifest
