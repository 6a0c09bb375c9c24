"""The IterableDataset of the mixture: planned blocks, read and batched per rank.

Place in the flow: plan.py (domain and block of every position) + shared_schedule.py (the shared
weight schedule) + readers.py (litdata reads) -> **stream.py** -> train/datamodule.py wraps it in a
DataLoader for the Lightning Trainer; the mixing controller (train/mixing_controller.py) calls
`set_weights()` and, after every training batch, `mark_consumed()`.

* Rank r owns positions [r*B, (r+1)*B) of every global batch of G = world_size * B samples,
  so ranks read disjoint data by construction; every rank plans the whole global batch.
* Every DataLoader worker walks all global batches (cheap numpy) to keep per-domain counts,
  and materialises only its own batches (worker k of K makes batches start + k + j*K). The
  DataLoader returns them in order, so the rank's stream is identical for any num_workers.
* `set_weights()` appends "from batch N on, use w" to the schedule, N = next_batch +
  `weight_lag_batches` rounded up to a planning window (`window_batches` global batches). The
  lag is a config value, not derived from the loader, so N does not depend on num_workers or
  prefetch_factor; it must be >= `min_weight_lag_batches()` (what the loader may already hold).
* Resume needs only (next batch, per-domain counts, schedule): `state_dict()` is tiny and exact.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mixtrain.sampler.blocks import DomainBlocks
from mixtrain.sampler.plan import MODES, BlockLocator, count_ordinals, plan_domains
from mixtrain.sampler.readers import DomainReaders
from mixtrain.sampler.shared_schedule import SharedSchedule, checked_schedule, default_capacity
from mixtrain.weights import normalize_weights

STATE_VERSION = 1  # v1 states without weight_lag_batches/window_samples still load (those checks are skipped)
# worker low-water marks pack (iteration generation, batch) into one int64, written atomically
_LOW_BITS = 40
_LOW_MASK = (1 << _LOW_BITS) - 1


def min_weight_lag_batches(num_workers: int, prefetch_factor: int) -> int:
    """Batches the loader may already hold past the consumer: Lightning fetches one batch ahead,
    the DataLoader keeps num_workers * prefetch_factor requested, plus one batch of margin for a
    `set_weights` made before `mark_consumed` of the current batch."""
    return 2 + int(num_workers) * (int(prefetch_factor) if num_workers > 0 else 0)


class MixtureStream(IterableDataset):
    """Infinite stream of batches `{"input_ids": int32[B, block_size], "domain": int64[B], ...}`.

    Yields whole per-rank batches as numpy arrays; read it through `make_loader`, which turns
    them into tensors in the main process (numpy crosses the worker pipe by value, ~4x faster
    than torch tensors through shared-memory file descriptors for batches this size).
    Each batch also carries `batch_index` (int) and `domain_counts` (int64[D]: samples of each
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
        max_schedule_entries: int | None = None,
        max_open_chunks: int | None = None,
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
        self.max_open_chunks = max_open_chunks
        num_domains = len(self.domains)
        # Shared memory: survives fork/spawn into DataLoader workers (also persistent ones), so
        # the main process can append weight changes and progress the workers then read.
        capacity = max_schedule_entries or default_capacity(
            self.weight_lag_batches, self.window_batches, self.num_workers, self.prefetch_factor)
        self._schedule = SharedSchedule(num_domains, capacity)
        # per worker: (iteration generation << 40) | first batch it may still plan (see `_lowest_needed_batch`)
        self._lows = torch.zeros(max(1, self.num_workers), dtype=torch.int64).share_memory_()
        self._generation = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._progress = torch.zeros(1 + num_domains, dtype=torch.int64).share_memory_()
        # where the current iteration starts: frozen by the main process when an iterator is made,
        # so workers that start later (while batches are being consumed) agree on it
        self._iter_start = torch.zeros(1 + num_domains, dtype=torch.int64).share_memory_()
        self._append_entry(0, normalize_weights(weights, self.domains, what="initial weights"))
        self._readers: DomainReaders | None = None  # per process, made on first iteration
        self._locator: BlockLocator | None = None

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
        starts, rows = self._schedule.entries()
        return [(int(s), dict(zip(self.domains, r))) for s, r in zip(starts.tolist(), rows.tolist())]

    def current_weights(self) -> dict[str, float]:
        """Weights that govern the next batch to be consumed."""
        return self.weights_at(self.next_batch)

    def latest_weights(self) -> dict[str, float]:
        """The last scheduled weights (govern every batch from the last entry's start on)."""
        return dict(zip(self.domains, self._schedule.row(len(self._schedule) - 1).tolist()))

    def weights_at(self, batch_index: int) -> dict[str, float]:
        """Weights that govern global batch `batch_index`: O(log n) in the schedule length."""
        i = self._schedule.governing(batch_index)  # main process: the only writer, so no seqlock needed
        if i < 0:
            raise ValueError(
                f"batch {batch_index} is before the first kept schedule entry (batch {int(self._schedule.starts()[0])}); "
                "entries for batches every consumer has passed are compacted away"
            )
        return dict(zip(self.domains, self._schedule.row(i).tolist()))

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
        row = np.fromiter(normalize_weights(weights, self.domains).values(), np.float64, self.num_domains)
        start = self.effective_batch()
        n = len(self._schedule)
        last_start = int(self._schedule.starts()[n - 1])
        if n > 1 and start <= last_start:
            # the last change has not taken effect (no worker planned a batch >= last_start: it was
            # >= the lag when set): overwrite its row in place; its start stays, so readers agree
            self._schedule.replace_last(row)
            return last_start
        self._schedule.append(max(start, last_start + 1), row, self._lowest_needed_batch)
        return max(start, last_start + 1)

    def mark_consumed(self, batch: Mapping[str, Any]) -> None:
        """Record that the training loop consumed `batch` (call once per batch, in order)."""
        index = int(batch["batch_index"])
        if index != self.next_batch:
            raise RuntimeError(
                f"sampler expected batch {self.next_batch} but the training loop consumed batch {index}; "
                "batches must be consumed in order (was the sampler state restored twice?)"
            )
        self._progress[0] = index + 1
        self._progress[1:] = torch.from_numpy(np.asarray(batch["domain_counts"], dtype=np.int64))

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
        schedule = checked_schedule(state.get("schedule"), int(state["next_batch"]), self.domains)
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
        self._schedule.clear()
        self._schedule.reserve(len(schedule))  # the whole schedule, where the buffer may still grow
        for start, w in schedule:
            self._append_entry(int(math.ceil(start * scale)), w)

    def begin_iteration(self) -> None:
        """Freeze the start of a new iteration at the consumer's position (main process only)."""
        self._iter_start.copy_(self._progress)
        # a new generation: low-water marks of workers of an earlier iteration no longer count
        self._generation[0] += 1
        self._lows.fill_((int(self._generation[0]) << _LOW_BITS) | int(self._iter_start[0]))

    def _append_entry(self, start: int, weights: Mapping[str, float]) -> None:
        row = np.fromiter((weights[d] for d in self.domains), np.float64, self.num_domains)
        self._schedule.append(start, row, self._lowest_needed_batch)

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

    # ----------------------------------------------------------------- stream (any process)
    def _plan(self, first: int, count: int) -> np.ndarray:
        """Domain of every position of global batches first..first+count-1 (one window) -> int64[count, G]."""
        starts, table = self._schedule.slice(first, first + count - 1)
        return plan_domains(self.seed, self.mode, first, count, self.window_batches, self.global_batch_size,
                            starts, table)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is None:  # iterated in the main process: start where the consumer is
            self.begin_iteration()
        if self._readers is None:  # opened here, inside the process that reads, never in __init__
            self._readers = DomainReaders(self._blocks, self.block_size, self.max_open_chunks)
            self._locator = BlockLocator(self._blocks, self.seed)
        progress = self._iter_start.numpy().copy()  # frozen by begin_iteration() in the main process
        generation = int(self._generation[0]) << _LOW_BITS
        low_slot = worker_id if info is not None else 0
        batch = first = int(progress[0])
        counts = progress[1:].astype(np.int64)
        B, M = self.batch_size, self.window_batches
        own = slice(self.rank * B, (self.rank + 1) * B)
        while True:
            window_end = (batch // M + 1) * M
            # publish before reading the schedule: compaction keeps what governs `batch` on
            self._lows[low_slot] = generation | batch
            plan = self._plan(batch, window_end - batch)  # [n, G]
            # ordinal of each position within its domain, counted over all ranks in order
            ordinals, counts_after = count_ordinals(plan, counts)  # [n, G], [n, D]
            # the DataLoader asks worker 0 first: worker k makes batches first + k, first + k + K, ...
            mine = [i for i in range(plan.shape[0]) if (batch + i - first) % num_workers == worker_id]
            if mine:
                domain_ids = plan[mine][:, own]  # [m, B]
                chunks, blocks = self._locator.locate(domain_ids.reshape(-1), ordinals[mine][:, own].reshape(-1))
                chunks, blocks = chunks.reshape(domain_ids.shape), blocks.reshape(domain_ids.shape)
                for j, i in enumerate(mine):
                    yield {
                        "input_ids": self._readers.read(domain_ids[j].tolist(), chunks[j].tolist(), blocks[j].tolist()),
                        "domain": domain_ids[j].copy(),
                        "block": blocks[j].copy(),  # block index within its domain's train shards
                        "batch_index": batch + i,
                        "domain_counts": counts_after[i].copy(),  # int64[D]
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
        if self.num_workers > 0:  # worker processes now hold the schedule's buffer: it may no longer be replaced
            self.dataset._schedule.shared_with_workers = True
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
