"""The mixing sampler: one stream of token blocks over all domains, drawn by the current weights.

Place in the flow: shards.py wrote `DIR/<domain>/train/` (litdata, TokensLoader) -> **sampler.py**
-> data.py wraps it in a DataLoader for the Lightning Trainer; the mixing controller
(mixing/refit.py) calls `set_weights()` and, after every training batch, `mark_consumed()`.

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
  N = next_batch + `weight_lag_batches` rounded up to a planning window (`window_batches`
  global batches). The lag is a config value, not derived from the loader, so N does not depend
  on num_workers or prefetch_factor; it must be >= `min_weight_lag_batches()` (what the loader
  may already have fetched).
* The schedule is unbounded: when its shared buffer is full, entries no consumer or worker can
  still need are compacted away (see `_compact`); lookups are binary searches on the start column.
* Resume needs only (next batch, per-domain counts, schedule): `state_dict()` is tiny and exact.

This module reads shards through litdata's `StreamingDataset` random access; datasets are
opened lazily inside each process (worker), after the distributed environment exists.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mixtrain.chunk_check import ChunkVerifier
from mixtrain.litdata_range import require_litdata
from mixtrain.weights import normalize_weights

log = logging.getLogger(__name__)

MODES = ("random", "stratified")
STATE_VERSION = 1  # v1 states without weight_lag_batches/window_samples still load (those checks are skipped)
# worker low-water marks pack (iteration generation, batch) into one int64, written atomically
_LOW_BITS = 40
_LOW_MASK = (1 << _LOW_BITS) - 1


def min_weight_lag_batches(num_workers: int, prefetch_factor: int) -> int:
    """Batches the loader may already hold past the consumer: Lightning fetches one batch ahead,
    the DataLoader keeps num_workers * prefetch_factor requested, plus one batch of margin for a
    `set_weights` made before `mark_consumed` of the current batch."""
    return 2 + int(num_workers) * (int(prefetch_factor) if num_workers > 0 else 0)


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
    require_litdata()  # the sampler and writer use litdata internals: only the tested releases
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
        weight_lag_batches: int = 8,
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
        self.window_samples = int(window_samples)
        self.window_batches = max(1, math.ceil(window_samples / self.global_batch_size))
        self.weight_lag_batches = int(weight_lag_batches)
        minimum = min_weight_lag_batches(self.num_workers, self.prefetch_factor)
        if self.weight_lag_batches < minimum:
            raise ValueError(
                f"sampler.weight_lag_batches={self.weight_lag_batches} is less than the {minimum} batches the loader "
                f"may already have prefetched (2 + num_workers {self.num_workers} x prefetch_factor "
                f"{self.prefetch_factor}); set sampler.weight_lag_batches >= {minimum} or lower the prefetching"
            )
        if max_schedule_entries < 2:
            raise ValueError(f"max_schedule_entries must be >= 2, got {max_schedule_entries}")
        num_domains = len(self.domains)
        # Shared memory: survives fork/spawn into DataLoader workers (also persistent ones), so
        # the main process can append weight changes and progress the workers then read.
        # Starts are their own contiguous column so lookups are a binary search without a copy.
        self._starts = torch.zeros(max_schedule_entries, dtype=torch.int64).share_memory_()
        self._rows = torch.zeros(max_schedule_entries, num_domains, dtype=torch.float64).share_memory_()
        self._schedule_len = torch.zeros(1, dtype=torch.int64).share_memory_()
        # seqlock: odd while `_compact` moves rows; readers retry if it changed during their read
        self._schedule_version = torch.zeros(1, dtype=torch.int64).share_memory_()
        # per worker: (iteration generation << 40) | first batch it may still plan (see `_compact`)
        self._lows = torch.zeros(max(1, self.num_workers), dtype=torch.int64).share_memory_()
        self._generation = torch.zeros(1, dtype=torch.int64).share_memory_()
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
        """[(first global batch, weights), ...] in order; the last entry with start <= g governs g.

        Entries that governed only batches before every consumer's position may have been
        compacted away (the first entry then starts after 0); what governs next_batch on is kept.
        """
        n = int(self._schedule_len[0])
        starts, rows = self._starts[:n].tolist(), self._rows[:n].tolist()
        return [(int(s), dict(zip(self.domains, r))) for s, r in zip(starts, rows)]

    def current_weights(self) -> dict[str, float]:
        """Weights that govern the next batch to be consumed."""
        return self.weights_at(self.next_batch)

    def latest_weights(self) -> dict[str, float]:
        """The last scheduled weights (govern every batch from the last entry's start on)."""
        n = int(self._schedule_len[0])
        return dict(zip(self.domains, self._rows[n - 1].tolist()))

    def weights_at(self, batch_index: int) -> dict[str, float]:
        """Weights that govern global batch `batch_index`: O(log n) in the schedule length."""
        n = int(self._schedule_len[0])  # main process: the only writer, so no seqlock needed
        i = int(np.searchsorted(self._starts[:n].numpy(), batch_index, side="right")) - 1
        if i < 0:
            raise ValueError(
                f"batch {batch_index} is before the first kept schedule entry (batch {int(self._starts[0])}); "
                "entries for batches every consumer has passed are compacted away"
            )
        return dict(zip(self.domains, self._rows[i].tolist()))

    def effective_batch(self) -> int:
        """The first global batch weights set now would govern (independent of num_workers)."""
        start = self.next_batch + self.weight_lag_batches
        return -(-start // self.window_batches) * self.window_batches

    def set_weights(self, weights: Mapping[str, float]) -> int:
        """Schedule new weights; returns the first global batch they govern (`effective_batch()`).

        Safe at any time, with any num_workers and persistent workers: every batch from the
        returned index on is drawn with `weights`; earlier batches keep the old weights. A change
        whose batch is not after the last scheduled one (two calls in one lag) replaces it.
        """
        w = normalize_weights(weights, self.domains)
        start = self.effective_batch()
        n = int(self._schedule_len[0])
        last_start = int(self._starts[n - 1])
        if n > 1 and start <= last_start:
            # the last change has not taken effect (no worker planned a batch >= last_start: it was
            # >= the lag when set): overwrite its row in place; its start stays, so readers agree
            self._rows[n - 1] = torch.tensor([w[d] for d in self.domains], dtype=torch.float64)
            return last_start
        self._append_entry(max(start, last_start + 1), w)
        return max(start, last_start + 1)

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
            "window_samples": self.window_samples,
            "weight_lag_batches": self.weight_lag_batches,
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
        # The effective batch of every future weight change depends on these two: a different
        # value would make the resumed stream differ from the uninterrupted one.
        for key in ("window_samples", "weight_lag_batches"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"checkpoint sampler has sampler.{key}={state[key]} but this run has {getattr(self, key)}; "
                    f"resume with sampler.{key}={state[key]} (it fixes when weight changes take effect)"
                )
        schedule = _checked_schedule(state.get("schedule"), int(state["next_batch"]), self.domains)
        scale = 1
        if state["global_batch_size"] != self.global_batch_size:
            # Still correct (counts, positions, weights carry over) but not bit-identical.
            warnings.warn(
                f"resuming with global batch {self.global_batch_size} samples instead of {state['global_batch_size']}: "
                "the stream continues without repeats but differs from an uninterrupted run",
                stacklevel=2,
            )
            scale = state["global_batch_size"] / self.global_batch_size
        # position first: a schedule longer than the buffer is compacted against it
        self._progress[0] = int(math.ceil(state["next_batch"] * scale))
        self._progress[1:] = torch.tensor([int(state["domain_samples"][d]) for d in self.domains])
        self.begin_iteration()
        self._schedule_len[0] = 0
        for start, w in schedule:
            self._append_entry(int(math.ceil(start * scale)), w)

    def begin_iteration(self) -> None:
        """Freeze the start of a new iteration at the consumer's position (main process only)."""
        self._iter_start.copy_(self._progress)
        # a new generation: low-water marks of workers of an earlier iteration no longer count
        self._generation[0] += 1
        self._lows.fill_((int(self._generation[0]) << _LOW_BITS) | int(self._iter_start[0]))

    def _append_entry(self, start: int, weights: Mapping[str, float]) -> None:
        n = int(self._schedule_len[0])
        if n >= self._starts.shape[0]:
            self._compact()
            n = int(self._schedule_len[0])
            if n >= self._starts.shape[0]:
                raise RuntimeError(
                    f"weight schedule is full: all {n} entries may still be needed by a worker; "
                    "raise max_schedule_entries"
                )
        # Write the row before publishing the new length: a worker never reads a half-written row.
        self._starts[n] = int(start)
        self._rows[n] = torch.tensor([weights[d] for d in self.domains], dtype=torch.float64)
        self._schedule_len[0] = n + 1

    def _lowest_needed_batch(self) -> int:
        """The lowest global batch any consumer or worker of this iteration may still plan.

        A worker publishes the start of every stretch it is about to plan (only increasing); a
        worker that has not published yet in this generation may still start at the iteration
        start. The consumer never goes back before next_batch.
        """
        gen = int(self._generation[0])
        low = self.next_batch
        for packed in self._lows.tolist():
            batch = packed & _LOW_MASK if (packed >> _LOW_BITS) == gen else int(self._iter_start[0])
            low = min(low, batch)
        return low

    def _compact(self) -> None:
        """Merge away entries that only govern batches below what anyone can still need.

        Why compaction and not a bigger buffer: persistent DataLoader workers hold the shared
        tensors they inherited at start-up; a buffer allocated later cannot be handed to them
        without a channel to every worker, so growth would silently leave them reading the old,
        full schedule. Compaction stays inside the buffer they already share. Entries with
        start <= L (L = `_lowest_needed_batch()`) except the last of them (it governs L) are
        dropped; every batch >= L has the same governing weights before and after, so no
        worker's stream and no resume (which starts at next_batch >= L) changes. Rows move down
        under a seqlock (`_schedule_version` odd while moving); readers retry a torn read.
        """
        n = int(self._schedule_len[0])
        keep_from = int(np.searchsorted(self._starts[:n].numpy(), self._lowest_needed_batch(), side="right")) - 1
        if keep_from <= 0:
            return
        starts, rows = self._starts[keep_from:n].clone(), self._rows[keep_from:n].clone()
        self._schedule_version[0] += 1  # odd: rows are moving
        self._starts[: n - keep_from] = starts
        self._rows[: n - keep_from] = rows
        self._schedule_len[0] = n - keep_from
        self._schedule_version[0] += 1  # even: consistent again
        log.info("weight schedule compacted: %d entries before batch %d merged away", keep_from, int(starts[0]))

    # ----------------------------------------------------------------- stream (any process)
    def _schedule_slice(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, rows) of the entries governing batches first..last: O(log n + their number).

        Any process may call it while the main process appends (rows are written before the
        length is published) or compacts (seqlock: retry if the version moved or is odd).
        """
        while True:
            version = int(self._schedule_version[0])
            if version % 2 == 0:
                n = int(self._schedule_len[0])
                starts_all = self._starts[:n].numpy()
                lo = max(int(np.searchsorted(starts_all, first, side="right")) - 1, 0)
                hi = max(int(np.searchsorted(starts_all, last, side="right")), lo + 1)
                starts, rows = starts_all[lo:hi].copy(), self._rows[lo:hi].numpy().copy()
                if int(self._schedule_version[0]) == version and len(starts) == hi - lo:
                    return starts, rows
            time.sleep(0)  # let the writer finish its compaction

    def _cumulative_weights(self, first: int, count: int) -> np.ndarray:
        """[count, D] cumulative weights for global batches first..first+count-1."""
        starts, table = self._schedule_slice(first, first + count - 1)
        batches = np.arange(first, first + count)
        rows = np.maximum(np.searchsorted(starts, batches, side="right") - 1, 0)
        cum = np.cumsum(table[rows], axis=1)
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
        self._verifier = ChunkVerifier([b.train_dir for b in self._blocks])  # chunk_check.py: sha256 on first read

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
        self._verifier.check(zip(domain_ids, chunks))
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
        generation = int(self._generation[0]) << _LOW_BITS
        low_slot = worker_id if info is not None else 0
        batch = first = int(progress[0])
        counts = progress[1:].astype(np.int64)
        G, B, M, D = self.global_batch_size, self.batch_size, self.window_batches, self.num_domains
        own = slice(self.rank * B, (self.rank + 1) * B)
        while True:
            window_end = (batch // M + 1) * M
            # publish before reading the schedule: `_compact` keeps what governs `batch` on
            self._lows[low_slot] = generation | batch
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


def _checked_schedule(schedule: Any, next_batch: int, domains: Sequence[str]) -> list[tuple[int, dict[str, float]]]:
    """A checkpoint's weight schedule, validated: entries [start, weights] with integer starts in
    strictly increasing order, the first at or before next_batch (it governs the resume point)."""
    if not isinstance(schedule, Sequence) or isinstance(schedule, str) or len(schedule) == 0:
        raise ValueError(f"checkpoint sampler schedule must be a non-empty list of [start, weights], got {schedule!r}")
    out: list[tuple[int, dict[str, float]]] = []
    for i, entry in enumerate(schedule):
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2:
            raise ValueError(f"checkpoint sampler schedule entry {i} must be [start, weights], got {entry!r}")
        start, weights = entry
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"checkpoint sampler schedule entry {i}: start {start!r} is not a batch index (int >= 0)")
        if out and start <= out[-1][0]:
            raise ValueError(
                f"checkpoint sampler schedule entry {i}: start {start} is not after entry {i - 1}'s {out[-1][0]}; "
                "starts must strictly increase (the checkpoint is corrupt or was edited)"
            )
        out.append((int(start), normalize_weights(weights, domains, what=f"checkpoint schedule entry {i} (batch {start})")))
    if out[0][0] > next_batch:
        raise ValueError(
            f"checkpoint sampler schedule starts at batch {out[0][0]}, after its next batch {next_batch}: "
            "no weights govern the resume point (the checkpoint is corrupt)"
        )
    return out
