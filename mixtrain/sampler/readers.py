"""Reading planned blocks from litdata chunk files, with a budget on open files across domains.

Place in the flow: plan.py says (domain, chunk, block) for every sample -> **readers.py** reads
the tokens -> stream.py batches them.

* A domain's files are opened on its first read, inside the reading process: a run over 2,000
  domains opens only what its batches touch, and nothing crosses a fork.
* Uncompressed, unencrypted TokensLoader chunks (what shards.py writes) are read with one
  `os.preadv` per block straight into the batch array, at the byte offset litdata's own
  TokensLoader uses (header of (2 + items) uint32, then blocks of block_size tokens). litdata's
  per-item path (`Cache[ChunkedIndex]`: a config lookup, a file check, a memory map per chunk
  and a tensor copy per item) costs more than the rest of the sampler together once hundreds of
  domains' maps are read at random; a positioned read has no per-chunk map and no page-fault
  storm. Other chunk formats go through litdata's cache as before (`_LitdataDomain`).
* Open chunk files are LRU-capped at `max_open_chunks` per process; the least recently read is
  closed (reopened on its next read). The default budget is the soft RLIMIT_NOFILE minus
  `FD_RESERVE` descriptors for everything else (sockets, logs, checkpoints, the DataLoader's
  pipes); `raise_open_file_limit` first lifts the soft limit towards the hard one where the OS
  allows. A budget that cannot hold even `MIN_OPEN_CHUNKS` is an error naming the limit and the fix.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from mixtrain.store.chunk_check import ChunkVerifier
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
    """Chunk files this process may keep open: `max_open_chunks`, or one per domain (+16) if the limit allows."""
    wanted = num_domains + 16 if max_open_chunks is None else int(max_open_chunks)
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


def _token_dtype(data_format: str) -> np.dtype | None:
    """numpy dtype of a TokensLoader chunk's tokens from litdata's `data_format` entry."""
    from litdata.constants import _NUMPY_DTYPES_MAPPING, _TORCH_DTYPES_MAPPING

    serializer, _, index = data_format.partition(":")
    if serializer == "no_header_numpy":
        return np.dtype(_NUMPY_DTYPES_MAPPING[int(index)])
    if serializer == "no_header_tensor":
        import torch

        return torch.empty(0, dtype=_TORCH_DTYPES_MAPPING[int(index)]).numpy().dtype
    return None


class _ChunkFiles:
    """One domain's chunk files, read by position: paths, header bytes, first block of each chunk."""

    def __init__(self, blocks: DomainBlocks, block_size: int, config: dict[str, Any], chunks: list[dict[str, Any]]):
        self.paths = [os.path.join(blocks.train_dir, c["filename"]) for c in chunks]
        self.header_bytes = [(2 + int(c["chunk_size"])) * 4 for c in chunks]  # TokensLoader's item offset
        self.first_block = np.concatenate([[0], np.cumsum(blocks.blocks_per_chunk)[:-1]]).tolist()
        self.dtype = _token_dtype(config["data_format"][0])
        self.block_bytes = block_size * self.dtype.itemsize


class _LitdataDomain:
    """litdata's own read path (compressed or encrypted chunks, other loaders): one item at a time."""

    def __init__(self, blocks: DomainBlocks, block_size: int):
        from litdata import StreamingDataset, TokensLoader

        self.dataset = StreamingDataset(blocks.train_dir, item_loader=TokensLoader(block_size=block_size),
                                        shuffle=False)
        self.dataset[0]  # noqa: B018 - the first read creates the dataset's cache (litdata does it lazily)
        self.cache = self.dataset.cache

    def read(self, chunk: int, block: int) -> np.ndarray:
        from litdata.streaming.sampler import ChunkedIndex

        return np.asarray(self.cache[ChunkedIndex(block, chunk)])


def _domain_source(blocks: DomainBlocks, block_size: int) -> _ChunkFiles | _LitdataDomain:
    with open(os.path.join(blocks.train_dir, "index.json")) as f:
        index = json.load(f)
    config = index.get("config") or {}
    formats = config.get("data_format") or [""]
    plain = (config.get("item_loader") == "TokensLoader" and not config.get("compression")
             and not config.get("encryption") and len(formats) == 1 and _token_dtype(formats[0]) is not None)
    return _ChunkFiles(blocks, block_size, config, index["chunks"]) if plain else _LitdataDomain(blocks, block_size)


class DomainReaders:
    """One process's readers over every domain's train shards, opened lazily, open files LRU-capped."""

    def __init__(self, domains: Sequence[DomainBlocks], block_size: int, max_open_chunks: int | None = None):
        self._blocks = list(domains)
        self.block_size = int(block_size)
        self.max_open_chunks = open_chunk_budget(len(self._blocks), max_open_chunks)
        self._sources: list[_ChunkFiles | _LitdataDomain | None] = [None] * len(self._blocks)
        self._fds: OrderedDict[tuple[int, int], int] = OrderedDict()  # (domain, chunk) -> fd, least recent first
        self._verifier = ChunkVerifier([b.train_dir for b in self._blocks])  # chunk_check.py: sha256 on first read

    @property
    def num_open(self) -> int:
        return len(self._fds)

    def _source(self, d: int) -> _ChunkFiles | _LitdataDomain:
        src = self._sources[d]
        if src is None:
            src = self._sources[d] = _domain_source(self._blocks[d], self.block_size)
        return src

    def _fd(self, d: int, c: int, path: str) -> int:
        key = (d, c)
        fd = self._fds.get(key)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            self._fds[key] = fd
            if len(self._fds) > self.max_open_chunks:
                os.close(self._fds.popitem(last=False)[1])
        else:
            self._fds.move_to_end(key)
        return fd

    def read(self, domain_ids: list[int], chunks: list[int], blocks: list[int]) -> np.ndarray:
        """[len, block_size] tokens: block `blocks[i]` (in chunk `chunks[i]`) of domain `domain_ids[i]`."""
        out: np.ndarray | None = None
        self._verifier.check(zip(domain_ids, chunks))
        for i, (d, c, b) in enumerate(zip(domain_ids, chunks, blocks)):
            src = self._source(d)
            if isinstance(src, _ChunkFiles):
                if out is None:
                    out = np.empty((len(blocks), self.block_size), dtype=src.dtype)
                offset = src.header_bytes[c] + (b - src.first_block[c]) * src.block_bytes
                got = os.preadv(self._fd(d, c, src.paths[c]), [out[i]], offset)
                if got != src.block_bytes:
                    raise OSError(f"domain {self._blocks[d].name!r}: short read of block {b} from {src.paths[c]} "
                                  f"({got} of {src.block_bytes} bytes); the shard is truncated: re-run prepare")
            else:
                row = src.read(c, b)
                if out is None:
                    out = np.empty((len(blocks), self.block_size), dtype=row.dtype)
                out[i] = row
        assert out is not None
        return out

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the OS closes them anyway
            pass
