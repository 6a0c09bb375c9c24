"""The mixing sampler: one stream of token blocks over all domains, drawn by the current weights.

Place in the flow: shards.py wrote `DIR/<domain>/train/` (litdata, TokensLoader) -> **sampler.py**
-> data.py wraps it in a DataLoader for the Lightning Trainer; strategies/refit.py call
`set_weights()`; module.py calls `mark_consumed()` after every training batch.

Design (the whole stream is a pure function of (seed, weight schedule, shards)):

* Global batch g (g = 0, 1, ...) holds G = world_size * batch_size samples; rank r owns
  positions [r*B, (r+1)*B) of every global batch, so ranks read disjoint data by construction.
* The domain of every position of g is drawn from counter-based randomness keyed by
  (seed, g) and the weights the schedule gives for g: i.i.d. draws ("random") or systematic
  sampling with a shuffled order ("stratified": exact floor/ceil of w_i * G per global batch).
* The k-th sample of domain d (counted over all ranks) is block `perm_{d,pass}(k mod N_d)` of
  that domain, pass = k // N_d: a domain that runs out starts a new, reshuffled pass, so the
  stream never ends. Shuffling is chunk-local (chunk order and order within a chunk, both
  re-drawn every pass) so reads stay sequential inside litdata chunks.
* Every DataLoader worker walks all global batches (cheap numpy) to keep per-domain counts,
  and materialises only its own batches (worker k of K makes batches start + k + j*K). The
  DataLoader returns them in order, so the rank's stream is identical for any num_workers.
* The weight schedule lives in shared memory: `set_weights()` appends "from batch N on, use w",
  with N beyond anything a worker may already have produced (see `weight_change_delay`).
  Workers plan `window_batches` global batches at a time; N is rounded up to a window start.
* Resume needs only (next batch, per-domain counts, schedule): `state_dict()` is tiny and exact.

This module reads shards through litdata's `StreamingDataset` random access; datasets are
opened lazily inside each process (worker), after the distributed environment exists.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mixtrain.weights import normalize_weights

log = logging.getLogger(__name__)

MODES = ("random", "stratified")
STATE_VERSION = 1


@dataclass(frozen=True)
class DomainBlocks:
    """Where a domain's training blocks live and how many each litdata chunk holds."""

    name: str
    train_dir: str
    blocks_per_chunk: np.ndarray  # [num_chunks] blocks of `block_size` tokens per chunk

    @property
    def num_blocks(self) -> int:
        return int(self.blocks_per_chunk.sum())


def read_domain_blocks(name: str, train_dir: str | os.PathLike, block_size: int) -> DomainBlocks:
    """Count the `block_size`-token blocks per chunk from litdata's index.json.

    Mirrors TokensLoader.generate_intervals (a block never straddles a chunk; the tail of each
    chunk shorter than block_size is not read).
    """
    index_path = os.path.join(os.fspath(train_dir), "index.json")
    try:
        with open(index_path) as f:
            chunks = json.load(f)["chunks"]
        dims = np.array([int(c["dim"]) for c in chunks], dtype=np.int64)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"domain {name!r}: no shards at {index_path}; run `python -m mixtrain.prepare` for this data_dir"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"domain {name!r}: corrupt litdata index {index_path} ({e}); delete {os.fspath(train_dir)!r} "
            "and re-run `python -m mixtrain.prepare`"
        ) from None
    blocks = dims // int(block_size)
    if blocks.sum() == 0:
        raise ValueError(
            f"domain {name!r}: its shards in {train_dir} hold no block of {block_size} tokens; "
            "lower the sequence length or add data to this domain"
        )
    return DomainBlocks(name=name, train_dir=os.fspath(train_dir), blocks_per_chunk=blocks)


class _DomainPermutation:
    """Maps a domain's k-th sample to (chunk, global block index); chunk-local reshuffle per pass."""

    def __init__(self, blocks: DomainBlocks, seed: int, domain_index: int):
        self.blocks_per_chunk = blocks.blocks_per_chunk
        self.chunk_offset = np.concatenate([[0], np.cumsum(self.blocks_per_chunk)[:-1]])
        self.num_blocks = blocks.num_blocks
        self.seed = seed
        self.domain_index = domain_index
        self._pass_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._within_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def _pass_order(self, pass_index: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._pass_cache.get(pass_index)
        if hit is None:
            rng = np.random.default_rng([self.seed, 1, self.domain_index, pass_index])
            order = rng.permutation(len(self.blocks_per_chunk))
            ends = np.cumsum(self.blocks_per_chunk[order])
            hit = (order, ends)
            self._pass_cache[pass_index] = hit
            while len(self._pass_cache) > 4:
                self._pass_cache.popitem(last=False)
        return hit

    def _within(self, pass_index: int, chunk: int) -> np.ndarray:
        key = (pass_index, chunk)
        hit = self._within_cache.get(key)
        if hit is None:
            rng = np.random.default_rng([self.seed, 2, self.domain_index, pass_index, chunk])
            hit = rng.permutation(int(self.blocks_per_chunk[chunk]))
            self._within_cache[key] = hit
            while len(self._within_cache) > 64:
                self._within_cache.popitem(last=False)
        return hit

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """positions: the domain's sample ordinals -> (chunk index, global block index) arrays."""
        passes = positions // self.num_blocks
        offsets = positions - passes * self.num_blocks
        chunks = np.empty_like(positions)
        blocks = np.empty_like(positions)
        for p in np.unique(passes):
            sel = passes == p
            order, ends = self._pass_order(int(p))
            slot = np.searchsorted(ends, offsets[sel], side="right")
            chunk = order[slot]
            within = offsets[sel] - (ends[slot] - self.blocks_per_chunk[chunk])
            out = np.empty_like(within)
            for c in np.unique(chunk):
                m = chunk == c
                out[m] = self.chunk_offset[c] + self._within(int(p), int(c))[within[m]]
            chunks[sel] = chunk
            blocks[sel] = out
        return chunks, blocks


class MixtureStream(IterableDataset):
    """Infinite stream of batches `{"input_ids": int32[B, block_size], "domain": int64[B], ...}`.

    Yields whole per-rank batches as numpy arrays; read it through `make_loader`, which turns
    them into tensors in the main process (numpy crosses the worker pipe by value, ~4x faster
    than torch tensors through shared-memory file descriptors for batches this size).
    Each batch also carries `batch_index` (int) and `domain_counts` (tuple: samples of each
    domain consumed by all ranks up to and including this global batch) so the consumer can
    call `mark_consumed(batch)` and keep exact, global per-domain accounting.
    """

    def __init__(
        self,
        domains: Sequence[DomainBlocks],
        weights: Mapping[str, float],
        *,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        mode: str = "random",
        rank: int = 0,
        world_size: int = 1,
        tokens_per_sample: int | None = None,
        num_workers: int = 0,
        prefetch_factor: int = 2,
        window_samples: int = 256,
        max_schedule_entries: int = 16384,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"sampler mode {mode!r} is not one of {MODES}")
        if not domains:
            raise ValueError("MixtureStream needs at least one domain")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if batch_size < 1 or block_size < 2:
            raise ValueError(f"batch_size ({batch_size}) must be >= 1 and block_size ({block_size}) >= 2")
        self.domains = [d.name for d in domains]
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"duplicate domain names: {self.domains}")
        self._blocks = list(domains)
        self.block_size = int(block_size)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.mode = mode
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.tokens_per_sample = int(tokens_per_sample or block_size)
        self.num_workers = int(num_workers)
        self.prefetch_factor = int(prefetch_factor) if num_workers > 0 else 0
        self.global_batch_size = self.world_size * self.batch_size
        self.window_batches = max(1, math.ceil(window_samples / self.global_batch_size))
        num_domains = len(self.domains)
        # Shared memory: survives fork/spawn into DataLoader workers (also persistent ones), so
        # the main process can append weight changes and progress the workers then read.
        self._schedule = torch.zeros(max_schedule_entries, 1 + num_domains, dtype=torch.float64).share_memory_()
        self._schedule_len = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._progress = torch.zeros(1 + num_domains, dtype=torch.int64).share_memory_()
        # where the current iteration starts: frozen by the main process when an iterator is made,
        # so workers that start later (while batches are being consumed) agree on it
        self._iter_start = torch.zeros(1 + num_domains, dtype=torch.int64).share_memory_()
        self._append_entry(0, normalize_weights(weights, self.domains, what="initial weights"))
        self._readers: dict[int, Any] | None = None
        self._caches: list[Any] | None = None
        self._perms: list[_DomainPermutation] | None = None

    # ----------------------------------------------------------------- main-process API
    @property
    def num_domains(self) -> int:
        return len(self.domains)

    @property
    def next_batch(self) -> int:
        """Index of the next (rank-local == global) batch the training loop will consume."""
        return int(self._progress[0])

    def domain_samples(self) -> dict[str, int]:
        """Samples consumed per domain, over all ranks, up to `next_batch`."""
        return dict(zip(self.domains, (int(x) for x in self._progress[1:])))

    def domain_tokens(self) -> dict[str, int]:
        return {d: n * self.tokens_per_sample for d, n in self.domain_samples().items()}

    def passes(self) -> dict[str, float]:
        """How many times each domain's training blocks have been read (1.0 = one full pass)."""
        return {d: n / b.num_blocks for (d, n), b in zip(self.domain_samples().items(), self._blocks)}

    def num_blocks(self) -> dict[str, int]:
        return {b.name: b.num_blocks for b in self._blocks}

    def schedule(self) -> list[tuple[int, dict[str, float]]]:
        """[(first global batch, weights), ...] in order; the last entry with start <= g governs g."""
        n = int(self._schedule_len[0])
        rows = self._schedule[:n].tolist()
        return [(int(r[0]), dict(zip(self.domains, r[1:]))) for r in rows]

    def current_weights(self) -> dict[str, float]:
        """Weights that govern the next batch to be consumed."""
        return self.weights_at(self.next_batch)

    def weights_at(self, batch_index: int) -> dict[str, float]:
        weights = self.schedule()[0][1]
        for start, w in self.schedule():
            if start <= batch_index:
                weights = w
        return weights

    @property
    def weight_change_delay(self) -> int:
        """Batches between the consumer's position and the first batch new weights can govern.

        Lightning fetches one batch ahead and the DataLoader keeps up to
        num_workers * prefetch_factor more requested, so batch next_batch + 1 + K*P may already
        exist; one more batch of margin covers calls made before `mark_consumed` of the
        current batch. The effective batch is then rounded up to a planning-window start.
        """
        return 2 + self.num_workers * self.prefetch_factor

    def set_weights(self, weights: Mapping[str, float]) -> int:
        """Schedule new weights; returns the first global batch they govern.

        Safe at any time, with any num_workers and persistent workers: every batch from the
        returned index on is drawn with `weights`; earlier batches keep the old weights.
        """
        w = normalize_weights(weights, self.domains)
        start = self.next_batch + self.weight_change_delay
        start = -(-start // self.window_batches) * self.window_batches
        last_start = int(self._schedule[int(self._schedule_len[0]) - 1, 0])
        if start <= last_start:  # repeated changes before the last one took effect: replace it
            start = last_start
            self._schedule_len[0] -= 1
        self._append_entry(start, w)
        return start

    def mark_consumed(self, batch: Mapping[str, Any]) -> None:
        """Record that the training loop consumed `batch` (call once per batch, in order)."""
        index = int(batch["batch_index"])
        if index != self.next_batch:
            raise RuntimeError(
                f"sampler expected batch {self.next_batch} but the training loop consumed batch {index}; "
                "batches must be consumed in order (was the sampler state restored twice?)"
            )
        counts = batch["domain_counts"]
        self._progress[0] = index + 1
        self._progress[1:] = torch.as_tensor(list(counts), dtype=torch.int64)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "domains": list(self.domains),
            "num_blocks": self.num_blocks(),
            "seed": self.seed,
            "mode": self.mode,
            "block_size": self.block_size,
            "global_batch_size": self.global_batch_size,
            "window_batches": self.window_batches,
            "tokens_per_sample": self.tokens_per_sample,
            "next_batch": self.next_batch,
            "domain_samples": self.domain_samples(),
            "domain_tokens": self.domain_tokens(),
            "schedule": [[start, w] for start, w in self.schedule()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"sampler state version {state.get('version')} is not {STATE_VERSION}")
        if list(state["domains"]) != self.domains:
            raise ValueError(
                f"checkpoint was written for domains {list(state['domains'])} but this run has {self.domains}; "
                "resume with the same data_dir (or start a new run)"
            )
        if dict(state["num_blocks"]) != self.num_blocks():
            raise ValueError(
                f"the training shards changed since the checkpoint (blocks per domain {dict(state['num_blocks'])} "
                f"-> {self.num_blocks()}); resume needs the same prepared data and sequence length"
            )
        for key in ("seed", "mode", "block_size"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"checkpoint sampler has {key}={state[key]!r} but this run has {getattr(self, key)!r}; "
                    f"resume with the same {key}"
                )
        scale = 1
        if state["global_batch_size"] != self.global_batch_size:
            # Still correct (counts, positions, weights carry over) but not bit-identical.
            warnings.warn(
                f"resuming with global batch {self.global_batch_size} samples instead of {state['global_batch_size']}: "
                "the stream continues without repeats but differs from an uninterrupted run",
                stacklevel=2,
            )
            scale = state["global_batch_size"] / self.global_batch_size
        self._schedule_len[0] = 0
        for start, w in state["schedule"]:
            self._append_entry(int(math.ceil(start * scale)), normalize_weights(w, self.domains))
        self._progress[0] = int(math.ceil(state["next_batch"] * scale))
        self._progress[1:] = torch.tensor([int(state["domain_samples"][d]) for d in self.domains])

    def begin_iteration(self) -> None:
        """Freeze the start of a new iteration at the consumer's position (main process only)."""
        self._iter_start.copy_(self._progress)

    def _append_entry(self, start: int, weights: Mapping[str, float]) -> None:
        n = int(self._schedule_len[0])
        if n >= self._schedule.shape[0]:
            raise RuntimeError(
                f"weight schedule is full ({n} changes); raise max_schedule_entries or refit less often"
            )
        # Write the row before publishing the new length: a worker never reads a half-written row.
        self._schedule[n, 0] = float(start)
        self._schedule[n, 1:] = torch.tensor([weights[d] for d in self.domains], dtype=torch.float64)
        self._schedule_len[0] = n + 1

    # ----------------------------------------------------------------- stream (any process)
    def _cumulative_weights(self, first: int, count: int) -> np.ndarray:
        """[count, D] cumulative weights for global batches first..first+count-1."""
        n = int(self._schedule_len[0])
        table = self._schedule[:n].numpy()
        starts = table[:, 0]
        batches = np.arange(first, first + count)
        rows = np.searchsorted(starts, batches, side="right") - 1
        cum = np.cumsum(table[rows, 1:], axis=1)
        cum /= cum[:, -1:]
        cum[:, -1] = 1.0
        return cum

    def _plan(self, first: int, count: int) -> np.ndarray:
        """Domain of every position of global batches first..first+count-1 -> int64[count, G].

        `first` and `first + count` lie inside one planning window; randomness is keyed by the
        window so the plan of a batch does not depend on where iteration started.
        """
        G, M = self.global_batch_size, self.window_batches
        window = first // M
        lo = first - window * M
        cum = self._cumulative_weights(first, count)  # [count, D]
        rng = np.random.default_rng([self.seed, 0, window])
        if self.mode == "random":
            u = rng.random((M, G))[lo : lo + count]
        else:
            u0 = rng.random((M, 1))
            order = np.argsort(rng.random((M, G)), axis=1)
            u = ((order + u0) / G)[lo : lo + count]
        domains = np.empty((count, G), dtype=np.int64)
        for i in range(count):
            domains[i] = np.searchsorted(cum[i], u[i], side="right")
        return domains

    def _open(self) -> None:
        # litdata's StreamingDataset reads the distributed/worker environment on construction:
        # open it here, inside the process that reads, never in __init__.
        from litdata import StreamingDataset, TokensLoader

        self._readers = {
            i: StreamingDataset(b.train_dir, item_loader=TokensLoader(block_size=self.block_size), shuffle=False)
            for i, b in enumerate(self._blocks)
        }
        self._perms = [_DomainPermutation(b, self.seed, i) for i, b in enumerate(self._blocks)]
        for ds in self._readers.values():
            ds[0]  # noqa: B018 - the first read creates the dataset's cache (litdata does it lazily)
        self._caches = [self._readers[i].cache for i in range(len(self._blocks))]

    def _locate(self, domain_ids: np.ndarray, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(domain, ordinal) arrays -> (chunk, block) arrays; vectorised per domain."""
        assert self._perms is not None
        chunk_of = np.empty_like(ordinals)
        block_of = np.empty_like(ordinals)
        for d in np.unique(domain_ids):
            sel = domain_ids == d
            chunk_of[sel], block_of[sel] = self._perms[int(d)].locate(ordinals[sel])
        return chunk_of, block_of

    def _read(self, domain_ids: list[int], chunks: list[int], blocks: list[int]) -> np.ndarray:
        from litdata.streaming.sampler import ChunkedIndex

        assert self._caches is not None
        # Passing the chunk index skips litdata's linear search over chunks per item, and going
        # to the dataset's cache (litdata's own read path) skips per-item dispatch in __getitem__.
        caches = self._caches
        rows = [caches[d][ChunkedIndex(b, c)] for d, c, b in zip(domain_ids, chunks, blocks)]
        return torch.stack(rows).numpy()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is None:  # iterated in the main process: start where the consumer is
            self.begin_iteration()
        if self._readers is None:
            self._open()
        progress = self._iter_start.numpy().copy()  # frozen by begin_iteration() in the main process
        batch = first = int(progress[0])
        counts = progress[1:].astype(np.int64)
        G, B, M, D = self.global_batch_size, self.batch_size, self.window_batches, self.num_domains
        own = slice(self.rank * B, (self.rank + 1) * B)
        while True:
            window_end = (batch // M + 1) * M
            plan = self._plan(batch, window_end - batch)  # [n, G]
            # ordinal of each position within its domain, counted over all ranks in order
            onehot = (plan.reshape(-1, 1) == np.arange(D)[None, :]).astype(np.int64)  # [n*G, D]
            before = np.cumsum(onehot, axis=0) - onehot
            flat = plan.reshape(-1)
            ordinals = (before[np.arange(flat.size), flat] + counts[flat]).reshape(plan.shape)
            per_batch = onehot.reshape(plan.shape[0], G, D).sum(axis=1)
            counts_after = counts + np.cumsum(per_batch, axis=0)  # [n, D]
            # the DataLoader asks worker 0 first: worker k makes batches first + k, first + k + K, ...
            mine = [i for i in range(plan.shape[0]) if (batch + i - first) % num_workers == worker_id]
            if mine:
                domain_ids = plan[mine][:, own]  # [m, B]
                chunks, blocks = self._locate(domain_ids.reshape(-1), ordinals[mine][:, own].reshape(-1))
                chunks, blocks = chunks.reshape(domain_ids.shape), blocks.reshape(domain_ids.shape)
                for j, i in enumerate(mine):
                    yield {
                        "input_ids": self._read(domain_ids[j].tolist(), chunks[j].tolist(), blocks[j].tolist()),
                        "domain": domain_ids[j].copy(),
                        "block": blocks[j].copy(),  # block index within its domain's train shards
                        "batch_index": batch + i,
                        "domain_counts": tuple(counts_after[i].tolist()),
                    }
            counts = counts_after[-1]
            batch = window_end


def _identity(batch):
    return batch


class MixtureLoader(DataLoader):
    """DataLoader over a MixtureStream: batches arrive as numpy and leave as tensors."""

    def __iter__(self):
        pin = self.pin_memory and torch.cuda.is_available()
        self.dataset.begin_iteration()
        for batch in super().__iter__():
            out = dict(batch)
            for key in ("input_ids", "domain"):
                t = torch.from_numpy(batch[key])
                out[key] = t.pin_memory() if pin else t
            yield out


def make_loader(stream: MixtureStream, *, pin_memory: bool = False, persistent_workers: bool = True) -> MixtureLoader:
    """A loader over `stream` whose worker settings match what the stream assumed."""
    kwargs: dict[str, Any] = {}
    if stream.num_workers > 0:
        kwargs = {"prefetch_factor": stream.prefetch_factor, "persistent_workers": persistent_workers}
    return MixtureLoader(
        stream, batch_size=None, num_workers=stream.num_workers, collate_fn=_identity, pin_memory=pin_memory, **kwargs
    )
