"""The pure planning of mixtrain.sampler.plan (numpy only, milliseconds): checked against definitions."""

from __future__ import annotations

import numpy as np

from mixtrain.sampler.blocks import DomainBlocks
from mixtrain.sampler.plan import BlockLocator, DomainPermutation, count_ordinals, plan_domains


def _domains(sizes_per_chunk):
    return [DomainBlocks(f"d{i}", f"/nowhere/d{i}", np.array(s, dtype=np.int64)) for i, s in enumerate(sizes_per_chunk)]


def test_count_ordinals_matches_the_one_hot_definition():
    rng = np.random.default_rng(0)
    D = 7
    plan = rng.integers(0, D, size=(5, 12))
    counts = rng.integers(0, 50, size=D)
    ordinals, after = count_ordinals(plan, counts)
    onehot = (plan.reshape(-1, 1) == np.arange(D)).astype(np.int64)
    before = np.cumsum(onehot, axis=0) - onehot
    flat = plan.reshape(-1)
    assert np.array_equal(ordinals.reshape(-1), before[np.arange(flat.size), flat] + counts[flat])
    assert np.array_equal(after, counts + np.cumsum(onehot.reshape(5, 12, D).sum(axis=1), axis=0))


def test_block_locator_equals_the_permutation_definition_across_chunks_and_passes():
    domains = _domains([[5, 3, 7], [4], [2, 2, 2, 2]])
    locator = BlockLocator(domains, seed=3)
    perms = [DomainPermutation(b, 3, i) for i, b in enumerate(domains)]
    rng = np.random.default_rng(1)
    next_ordinal = np.zeros(3, dtype=np.int64)
    for _ in range(60):  # streaming calls, each domain's ordinals increasing, crossing passes
        d = rng.integers(0, 3, size=rng.integers(1, 9))
        ords = np.empty_like(d)
        for k, dom in enumerate(d):
            ords[k] = next_ordinal[dom]
            next_ordinal[dom] += 1
        chunks, blocks = locator.locate(d, ords)
        for k, dom in enumerate(d):
            c, b = perms[dom].locate(np.array([ords[k]]))
            assert (chunks[k], blocks[k]) == (c[0], b[0])
    assert next_ordinal.min() > 2 * min(b.num_blocks for b in domains)  # several passes were crossed


def test_plan_follows_the_governing_entry_and_is_keyed_by_window():
    starts = np.array([0, 4])
    table = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    plan = plan_domains(5, "random", 0, 8, 8, 6, starts, table)
    assert (plan[:4] == 0).all() and (plan[4:] == 2).all()
    # a batch's plan does not depend on where planning of its window started
    uniform = np.array([0]), np.array([[1.0, 2.0, 3.0]])
    whole = plan_domains(5, "stratified", 8, 8, 8, 6, *uniform)
    assert np.array_equal(plan_domains(5, "stratified", 11, 5, 8, 6, *uniform), whole[3:])
