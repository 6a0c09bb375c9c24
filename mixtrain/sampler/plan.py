"""The pure plan: which domain and which block every global sample position reads.

Place in the flow: blocks.py (blocks per chunk) + shared_schedule.py (weights per global batch) ->
**plan.py** -> stream.py reads the planned blocks through readers.py. numpy only (no torch):
the whole stream is a pure function of (seed, weight schedule, shards), testable in milliseconds.

* Global batch g holds G = world_size * batch_size positions. Batches are planned a window of
  M = `window_batches` at a time; randomness is keyed by (seed, window), so the plan of a batch
  does not depend on where iteration started (`plan_domains`).
* The domain of a position: i.i.d. draws ("random") or systematic sampling with a shuffled
  order ("stratified": exact floor/ceil of w_i * G per global batch).
* The k-th sample of domain d (counted over all ranks, `count_ordinals`) is block
  `perm_{d,pass}(k mod N_d)`, pass = k // N_d: a domain that runs out starts a new, reshuffled
  pass. Shuffling is chunk-local (chunk order and order within a chunk, both re-drawn every
  pass) so reads stay sequential inside litdata chunks (`DomainPermutation`, the definition).
* `BlockLocator` maps (domain, ordinal) arrays to blocks in one vectorised lookup: every domain
  keeps the permutation of the chunk it is reading in one flat table, so the per-window cost does
  not grow with the number of domains; only a domain that moves to a new chunk or pass goes
  through `DomainPermutation` (once per chunk it reads).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from mixtrain.sampler.blocks import DomainBlocks

MODES = ("random", "stratified")


def plan_domains(seed: int, mode: str, first: int, count: int, window_batches: int, global_batch_size: int,
                 starts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Domain of every position of global batches first..first+count-1 -> int64[count, G].

    `first` and `first + count` lie inside one planning window. `starts`/`table` are the schedule
    entries governing those batches (`table` rows: weights, any positive scale). A window has one
    governing entry unless a resume with another global batch size moved a change inside it, so
    the loop below runs once per distinct entry, never per domain.
    """
    G, M = global_batch_size, window_batches
    window = first // M
    lo = first - window * M
    rng = np.random.default_rng([seed, 0, window])
    if mode == "random":
        u = rng.random((M, G))[lo: lo + count]
    else:
        u0 = rng.random((M, 1))
        order = np.argsort(rng.random((M, G)), axis=1)
        u = ((order + u0) / G)[lo: lo + count]
    rows = np.maximum(np.searchsorted(starts, np.arange(first, first + count), side="right") - 1, 0)
    domains = np.empty((count, G), dtype=np.int64)
    for r in np.unique(rows):
        sel = rows == r
        cum = np.cumsum(table[r])
        cum /= cum[-1]
        cum[-1] = 1.0  # a u just below 1 never falls past the last domain through rounding
        domains[sel] = np.searchsorted(cum, u[sel], side="right")
    return domains


def count_ordinals(plan: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordinal of every planned position within its domain, and the running per-domain counts.

    plan: int64[n, G] domains; counts: int64[D] samples of each domain before plan[0, 0].
    Returns (ordinals int64[n, G], counts_after int64[n, D]: counts up to and including batch i).
    O(n G log(n G) + n D): a stable sort, no one-hot matrix.
    """
    n, G = plan.shape
    D = counts.shape[0]
    flat = plan.reshape(-1)
    order = np.argsort(flat, kind="stable")  # positions grouped by domain, in stream order
    per_domain = np.bincount(flat, minlength=D)
    first_of = np.cumsum(per_domain) - per_domain
    before = np.empty_like(flat)
    before[order] = np.arange(flat.size) - first_of[flat[order]]
    ordinals = (before + counts[flat]).reshape(n, G)
    batch_of = np.repeat(np.arange(n) * D, G)
    per_batch = np.bincount(batch_of + flat, minlength=n * D).reshape(n, D)
    return ordinals, counts + np.cumsum(per_batch, axis=0)


class DomainPermutation:
    """Maps a domain's k-th sample to (chunk, global block index); chunk-local reshuffle per pass.

    The definition of the block order. `BlockLocator` asks it once per chunk a domain enters;
    the caches are small because a domain reads its chunks in order.
    """

    def __init__(self, blocks: DomainBlocks, seed: int, domain_index: int):
        self.blocks_per_chunk = blocks.blocks_per_chunk
        self.chunk_offset = np.concatenate([[0], np.cumsum(self.blocks_per_chunk)[:-1]])
        self.num_blocks = blocks.num_blocks
        self.seed = seed
        self.domain_index = domain_index
        self._pass_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._within_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def pass_order(self, pass_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk order, cumulative blocks along that order) of one pass."""
        hit = self._pass_cache.get(pass_index)
        if hit is None:
            rng = np.random.default_rng([self.seed, 1, self.domain_index, pass_index])
            order = rng.permutation(len(self.blocks_per_chunk))
            hit = (order, np.cumsum(self.blocks_per_chunk[order]))
            self._pass_cache[pass_index] = hit
            while len(self._pass_cache) > 2:
                self._pass_cache.popitem(last=False)
        return hit

    def within(self, pass_index: int, chunk: int) -> np.ndarray:
        """The order of the blocks inside `chunk` in pass `pass_index` (chunk-relative indices)."""
        key = (pass_index, chunk)
        hit = self._within_cache.get(key)
        if hit is None:
            rng = np.random.default_rng([self.seed, 2, self.domain_index, pass_index, chunk])
            hit = rng.permutation(int(self.blocks_per_chunk[chunk]))
            self._within_cache[key] = hit
            while len(self._within_cache) > 4:
                self._within_cache.popitem(last=False)
        return hit

    def segment(self, ordinal: int) -> tuple[int, int, int, int]:
        """(pass, chunk, first, end): the stretch of in-pass offsets [first, end) that `ordinal` lies in."""
        p, offset = divmod(int(ordinal), self.num_blocks)
        order, ends = self.pass_order(p)
        slot = int(np.searchsorted(ends, offset, side="right"))
        chunk = int(order[slot])
        return p, chunk, int(ends[slot] - self.blocks_per_chunk[chunk]), int(ends[slot])

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """positions: the domain's sample ordinals -> (chunk index, global block index) arrays."""
        passes = positions // self.num_blocks
        offsets = positions - passes * self.num_blocks
        chunks = np.empty_like(positions)
        blocks = np.empty_like(positions)
        for p in np.unique(passes):
            sel = passes == p
            order, ends = self.pass_order(int(p))
            slot = np.searchsorted(ends, offsets[sel], side="right")
            chunk = order[slot]
            within = offsets[sel] - (ends[slot] - self.blocks_per_chunk[chunk])
            out = np.empty_like(within)
            for c in np.unique(chunk):
                m = chunk == c
                out[m] = self.chunk_offset[c] + self.within(int(p), int(c))[within[m]]
            chunks[sel] = chunk
            blocks[sel] = out
        return chunks, blocks


class BlockLocator:
    """(domain, ordinal) arrays -> (chunk, block) arrays for all domains at once.

    For every domain it holds the chunk it is reading now: pass, chunk, the in-pass offsets
    [first, end) that chunk covers, and its within-chunk order in a slot of one flat table
    (slot size: the domain's largest chunk). A position inside that stretch is a table lookup;
    a position outside goes through `DomainPermutation`, and the domain's slot moves to the
    chunk of its last position. Memory: sum over domains of their largest chunk's block count.
    """

    def __init__(self, domains: Sequence[DomainBlocks], seed: int):
        self.perms = [DomainPermutation(b, seed, i) for i, b in enumerate(domains)]
        D = len(domains)
        self.num_blocks = np.array([b.num_blocks for b in domains], dtype=np.int64)
        slot = np.array([int(b.blocks_per_chunk.max()) for b in domains], dtype=np.int64)
        self.base = np.concatenate([[0], np.cumsum(slot)[:-1]]).astype(np.int64)
        self.table = np.zeros(int(slot.sum()), dtype=np.int64)
        self.pass_ = np.full(D, -1, dtype=np.int64)  # -1: no chunk active yet
        self.first = np.zeros(D, dtype=np.int64)
        self.end = np.zeros(D, dtype=np.int64)
        self.chunk = np.zeros(D, dtype=np.int64)
        self.chunk_offset = np.zeros(D, dtype=np.int64)

    def _activate(self, d: int, ordinal: int) -> None:
        perm = self.perms[d]
        p, chunk, first, end = perm.segment(ordinal)
        self.table[self.base[d]: self.base[d] + end - first] = perm.within(p, chunk)
        self.pass_[d], self.first[d], self.end[d] = p, first, end
        self.chunk[d], self.chunk_offset[d] = chunk, perm.chunk_offset[chunk]

    def locate(self, domain_ids: np.ndarray, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Same result as `DomainPermutation.locate` per domain; ordinals of one domain must come in
        increasing order over calls for the lookups to hit (the stream's order)."""
        d = domain_ids
        passes = ordinals // self.num_blocks[d]
        offsets = ordinals - passes * self.num_blocks[d]
        hit = (passes == self.pass_[d]) & (offsets >= self.first[d]) & (offsets < self.end[d])
        within = np.where(hit, offsets - self.first[d], 0)
        chunks = self.chunk[d].copy()
        blocks = self.chunk_offset[d] + self.table[self.base[d] + within]
        miss = np.flatnonzero(~hit)
        if miss.size:  # only domains that entered a new chunk or pass: once per chunk read
            for dom in np.unique(d[miss]).tolist():
                sel = miss[d[miss] == dom]
                chunks[sel], blocks[sel] = self.perms[dom].locate(ordinals[sel])
                self._activate(dom, int(ordinals[sel].max()))
        return chunks, blocks
