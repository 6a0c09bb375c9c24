"""Reading planned blocks from litdata, with a budget on open chunk files across domains.

Place in the flow: plan.py says (domain, chunk, block) for every sample -> **readers.py** reads
the tokens through litdata's own cache (`StreamingDataset.cache[ChunkedIndex]`) -> stream.py.

* A domain's `StreamingDataset` is opened on its first read, inside the reading process (litdata
  reads the distributed/worker environment when it is constructed): a run over 2,000 domains of
  which a batch touches a few opens only those.
* Every domain being read holds one memory-mapped chunk file (one file descriptor). At most
  `max_open_chunks` do at once per process; beyond that the least recently read domain's chunk
  is unmapped (litdata maps it again on its next read). The default budget is the soft
  RLIMIT_NOFILE minus `FD_RESERVE` descriptors for everything else (sockets, logs, checkpoints,
  the DataLoader's pipes); `raise_open_file_limit` first lifts the soft limit towards the hard
  one where the OS allows. A budget that cannot hold even `MIN_OPEN_CHUNKS` is an error naming
  the limit and the fix.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mixtrain.sampler.blocks import DomainBlocks

log = logging.getLogger(__name__)

FD_RESERVE = 256  # descriptors kept for everything that is not a chunk file
MIN_OPEN_CHUNKS = 8


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to min(wanted, hard) if it is lower; return the soft limit in force."""
    try:
        import resource
    except ImportError:  # not POSIX: no limit to read or raise
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:  # some containers refuse even a raise below hard
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, e)
    return wanted if soft == resource.RLIM_INFINITY else int(soft)


def open_chunk_budget(num_domains: int, max_open_chunks: int | None = None) -> int:
    """Chunk files this process may keep open: `max_open_chunks`, or all domains if the limit allows."""
    wanted = num_domains if max_open_chunks is None else int(max_open_chunks)
    soft = raise_open_file_limit(wanted + FD_RESERVE)
    budget = min(wanted, soft - FD_RESERVE)
    if budget < min(MIN_OPEN_CHUNKS, wanted):
        raise OSError(
            f"the open-file limit (RLIMIT_NOFILE soft={soft}) leaves {soft - FD_RESERVE} descriptors for chunk files "
            f"after {FD_RESERVE} reserved; reading {num_domains} domains needs at least {min(MIN_OPEN_CHUNKS, wanted)}. "
            f"Raise it (`ulimit -n {wanted + FD_RESERVE}`) or ask the cluster admin for a higher hard limit"
        )
    if budget < wanted:
        log.info("open chunk files capped at %d (RLIMIT_NOFILE %d) for %d domains", budget, soft, num_domains)
    return budget


class DomainReaders:
    """One process's readers over every domain's train shards, opened lazily, LRU-capped."""

    def __init__(self, domains: Sequence[DomainBlocks], block_size: int, max_open_chunks: int | None = None):
        self._blocks = list(domains)
        self.block_size = int(block_size)
        self.max_open_chunks = open_chunk_budget(len(self._blocks), max_open_chunks)
        self._caches: list[Any] = [None] * len(self._blocks)
        self._datasets: list[Any] = [None] * len(self._blocks)  # keeps each dataset (owner of its cache) alive
        self._open: OrderedDict[int, None] = OrderedDict()  # domains holding a mapped chunk, least recent first

    @property
    def num_open(self) -> int:
        return len(self._open)

    def _cache(self, d: int) -> Any:
        cache = self._caches[d]
        if cache is None:
            from litdata import StreamingDataset, TokensLoader

            ds = StreamingDataset(self._blocks[d].train_dir, item_loader=TokensLoader(block_size=self.block_size),
                                  shuffle=False)
            ds[0]  # noqa: B018 - the first read creates the dataset's cache (litdata does it lazily)
            self._datasets[d], self._caches[d] = ds, ds.cache
            cache = ds.cache
            self._open[d] = None
            self._open.move_to_end(d)
        return cache

    def _release(self, d: int) -> None:
        """Unmap the chunk domain `d` holds; litdata maps it again on the next read."""
        reader = self._caches[d]._reader
        reader._item_loader._close_open_chunk()
        reader._last_chunk_index = None  # nothing to close on its next chunk change

    def read(self, domain_ids: list[int], chunks: list[int], blocks: list[int]) -> np.ndarray:
        """int32[len, block_size]: block `blocks[i]` (in chunk `chunks[i]`) of domain `domain_ids[i]`."""
        from litdata.streaming.sampler import ChunkedIndex

        # Passing the chunk index skips litdata's linear search over chunks per item, and going
        # to the dataset's cache (litdata's own read path) skips per-item dispatch in __getitem__.
        rows = []
        is_open, budget = self._open, self.max_open_chunks
        for d, c, b in zip(domain_ids, chunks, blocks):
            rows.append(self._cache(d)[ChunkedIndex(b, c)])
            if d in is_open:
                is_open.move_to_end(d)
            else:
                is_open[d] = None
            if len(is_open) > budget:
                self._release(is_open.popitem(last=False)[0])
        return torch.stack(rows).numpy()
