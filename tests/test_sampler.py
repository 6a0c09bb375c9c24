"""Tests for mixtrain.sampler on real litdata shards written in tmp_path.

Every token of domain i is i * 1_000_000 + (its position in the domain's token stream), so the
first token of a block names the domain and the block: reads can be checked exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from mixtrain.sampler import MixtureStream, make_loader, read_domain_blocks

BLOCK = 17
DOMAIN_TOKENS = {"big": 6000, "mid": 2500, "tiny": 700}


def _write_domain(i: int, num_tokens: int, out_dir: str) -> None:
    from litdata import TokensLoader, optimize

    # documents of uneven length, consecutive ids, so the stream is 0..num_tokens-1 (+ offset)
    cuts = np.cumsum(np.random.default_rng(i).integers(20, 120, size=num_tokens // 20))
    cuts = [0] + [int(c) for c in cuts if c < num_tokens] + [num_tokens]
    docs = [(i * 1_000_000 + cuts[k], cuts[k + 1] - cuts[k]) for k in range(len(cuts) - 1)]
    optimize(
        fn=_doc_tokens,
        inputs=docs,
        output_dir=out_dir,
        chunk_size=BLOCK * 8,
        item_loader=TokensLoader(),
        num_workers=1,
        mode="overwrite",
    )


def _doc_tokens(doc):
    start, length = doc
    yield torch.arange(start, start + length, dtype=torch.int32)


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampler_shards")
    out = []
    for i, (name, n) in enumerate(DOMAIN_TOKENS.items()):
        path = root / name / "train"
        _write_domain(i, n, str(path))
        out.append(read_domain_blocks(name, path, BLOCK))
    return out


def _stream(domains, weights=None, **kw):
    weights = weights or {"big": 0.5, "mid": 0.3, "tiny": 0.2}
    kw.setdefault("block_size", BLOCK)
    kw.setdefault("batch_size", 4)
    kw.setdefault("seed", 7)
    return MixtureStream(domains, weights, **kw)


def _take(stream, num_batches, on_batch=None, **loader_kw):
    """Consume like the training loop: mark each batch consumed; return the batches."""
    out = []
    for batch in make_loader(stream, **loader_kw):
        stream.mark_consumed(batch)
        out.append(batch)
        if on_batch is not None:
            on_batch(batch)
        if len(out) == num_batches:
            break
    return out


def _signature(batches):
    return [(b["batch_index"], b["domain"].tolist(), b["input_ids"][:, 0].tolist()) for b in batches]


def test_blocks_match_litdata_index(domains):
    for i, d in enumerate(domains):
        assert d.num_blocks > 0
        # a block never straddles a chunk: every chunk holds whole blocks only
        assert d.num_blocks <= DOMAIN_TOKENS[d.name] // BLOCK


def test_reads_real_blocks_with_correct_domain(domains):
    batches = _take(_stream(domains), 50)
    for b in batches:
        assert b["input_ids"].dtype == torch.int32 and b["input_ids"].shape == (4, BLOCK)
        first = b["input_ids"][:, 0]
        assert torch.equal(first // 1_000_000, b["domain"])  # the block came from the drawn domain
        # blocks are contiguous token runs: a block read back whole and in order
        assert torch.equal(b["input_ids"] - first[:, None], torch.arange(BLOCK).expand(4, BLOCK).int())


@pytest.mark.parametrize("bad, message", [
    ({"big": 1.0, "mid": 1.0}, "no weight for domain"),
    ({"big": 1.0, "mid": 1.0, "tiny": 1.0, "other": 1.0}, "unknown domain"),
    ({"big": -1.0, "mid": 1.0, "tiny": 1.0}, "'big' is negative"),
    ({"big": float("nan"), "mid": 1.0, "tiny": 1.0}, "'big' is nan"),
    ({"big": 0.0, "mid": 0.0, "tiny": 0.0}, "all weights are zero"),
])
def test_bad_weights_raise_naming_the_problem(domains, bad, message):
    with pytest.raises(ValueError, match=message):
        _stream(domains, bad)
    s = _stream(domains)
    with pytest.raises(ValueError, match=message):
        s.set_weights(bad)


def test_weights_are_normalised(domains):
    s = _stream(domains, {"big": 2.0, "mid": 1.0, "tiny": 1.0})
    assert s.current_weights() == pytest.approx({"big": 0.5, "mid": 0.25, "tiny": 0.25})


def test_small_domain_cycles_with_reshuffled_passes(domains):
    tiny = next(d for d in domains if d.name == "tiny")
    s = _stream(domains, {"big": 0.0, "mid": 0.0, "tiny": 1.0}, batch_size=5)
    n = tiny.num_blocks
    batches = _take(s, (3 * n) // 5 + 1)
    firsts = np.concatenate([b["input_ids"][:, 0].numpy() for b in batches])
    pass1, pass2 = firsts[:n], firsts[n : 2 * n]
    # each pass reads every block exactly once, and the second pass is in a new order
    assert len(set(pass1.tolist())) == n and set(pass1.tolist()) == set(pass2.tolist())
    assert not np.array_equal(pass1, pass2)
    assert s.passes()["tiny"] >= 3.0 and s.passes()["big"] == 0.0


def test_deterministic_for_seed_and_different_across_seeds(domains):
    a = _signature(_take(_stream(domains, seed=1), 30))
    b = _signature(_take(_stream(domains, seed=1), 30))
    c = _signature(_take(_stream(domains, seed=2), 30))
    assert a == b and a != c


@pytest.mark.parametrize("mode", ["random", "stratified"])
def test_realised_proportions_match_weights(domains, mode):
    weights = {"big": 0.6, "mid": 0.3, "tiny": 0.1}
    s = _stream(domains, weights, batch_size=16, mode=mode, window_samples=1024)
    domain_ids = np.concatenate([b["domain"].numpy() for b in _take(s, 250)])
    observed = np.bincount(domain_ids, minlength=3)
    expected = np.array(list(weights.values())) * len(domain_ids)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    if mode == "stratified":  # exact per-batch composition: floor or ceil of w * batch
        for b in _take(_stream(domains, weights, batch_size=10, mode=mode), 20):
            counts = np.bincount(b["domain"].numpy(), minlength=3)
            assert np.all(np.abs(counts - np.array(list(weights.values())) * 10) < 1)


def test_workers_and_ranks_get_decorrelated_domain_sequences(domains):
    s = _stream(domains, {"big": 0.34, "mid": 0.33, "tiny": 0.33}, batch_size=8, num_workers=2)
    batches = _take(s, 40, persistent_workers=False)
    even = [b["domain"].tolist() for b in batches[0::2]]
    odd = [b["domain"].tolist() for b in batches[1::2]]
    assert even != odd  # litdata's mixer would give both workers the same sequence
    r0 = _stream(domains, {"big": 0.34, "mid": 0.33, "tiny": 0.33}, batch_size=8, rank=0, world_size=2)
    r1 = _stream(domains, {"big": 0.34, "mid": 0.33, "tiny": 0.33}, batch_size=8, rank=1, world_size=2)
    seq0 = [b["domain"].tolist() for b in _take(r0, 20)]
    seq1 = [b["domain"].tolist() for b in _take(r1, 20)]
    assert seq0 != seq1


def test_ranks_read_disjoint_blocks_and_agree_on_global_counts(domains):
    kw = dict(batch_size=6, world_size=2, weights={"big": 0.8, "mid": 0.15, "tiny": 0.05})
    r0, r1 = _stream(domains, rank=0, **kw), _stream(domains, rank=1, **kw)
    b0, b1 = _take(r0, 10), _take(r1, 10)
    assert max(r0.passes().values()) < 1.0
    blocks0 = {int(x) for b in b0 for x in b["input_ids"][:, 0]}
    blocks1 = {int(x) for b in b1 for x in b["input_ids"][:, 0]}
    assert blocks0.isdisjoint(blocks1)
    # both ranks count every rank's samples: identical global accounting
    assert r0.domain_samples() == r1.domain_samples()
    local = np.bincount(np.concatenate([b["domain"].numpy() for b in b0 + b1]), minlength=3)
    assert list(r0.domain_samples().values()) == local.tolist()


def test_same_stream_for_any_num_workers(domains):
    ref = _signature(_take(_stream(domains), 60))
    assert _signature(_take(_stream(domains, num_workers=2), 60)) == ref


@pytest.mark.parametrize("num_workers", [0, 2])
def test_set_weights_governs_every_batch_after_the_documented_bound(domains, num_workers):
    s = _stream(domains, {"big": 1.0, "mid": 0.0, "tiny": 0.0}, num_workers=num_workers, window_samples=8)
    changes = {}

    def on_batch(batch):
        if batch["batch_index"] == 10:
            bound = s.next_batch + s.weight_change_delay
            changes["start"] = s.set_weights({"big": 0.0, "mid": 0.0, "tiny": 1.0})
            assert changes["start"] <= bound + s.window_batches - 1

    batches = _take(s, 60, on_batch=on_batch, persistent_workers=True)
    start = changes["start"]
    for b in batches:
        expected = 0 if b["batch_index"] < start else 2
        assert set(b["domain"].tolist()) == {expected}, b["batch_index"]
    assert s.schedule()[-1] == (start, {"big": 0.0, "mid": 0.0, "tiny": 1.0})


@pytest.mark.parametrize("num_workers", [0, 2])
def test_exact_resume_across_weight_changes(domains, num_workers):
    def change(stream):
        def on_batch(batch):
            if batch["batch_index"] in (5, 23):
                w = {"big": 0.1, "mid": 0.1, "tiny": 0.8} if batch["batch_index"] == 5 else {"big": 0.7, "mid": 0.3, "tiny": 0.0}
                stream.set_weights(w)
        return on_batch

    full_stream = _stream(domains, num_workers=num_workers)
    full = _signature(_take(full_stream, 60, on_batch=change(full_stream)))

    first = _stream(domains, num_workers=num_workers)
    head = _signature(_take(first, 17, on_batch=change(first)))
    state = first.state_dict()
    # resume in a fresh object (as after a crash); the other worker count must not matter either
    other = 2 - num_workers
    resumed = _stream(domains, num_workers=other)
    resumed.load_state_dict(state)
    tail = _signature(_take(resumed, 43, on_batch=change(resumed)))
    assert head + tail == full
    assert resumed.schedule() == full_stream.schedule()
    assert resumed.domain_samples() == full_stream.domain_samples()


def test_accounting_is_exact(domains):
    s = _stream(domains, tokens_per_sample=BLOCK - 1)
    batches = _take(s, 33)
    counted = np.bincount(np.concatenate([b["domain"].numpy() for b in batches]), minlength=3)
    assert list(s.domain_samples().values()) == counted.tolist()
    assert s.domain_tokens() == {d: int(n) * (BLOCK - 1) for d, n in zip(s.domains, counted)}
    state = s.state_dict()
    assert state["domain_samples"] == s.domain_samples() and state["next_batch"] == 33


def test_state_from_other_domains_or_shards_is_refused(domains):
    s = _stream(domains)
    _take(s, 3)
    state = s.state_dict()
    two = MixtureStream(domains[:2], {"big": 1.0, "mid": 1.0}, block_size=BLOCK, batch_size=4, seed=7)
    with pytest.raises(ValueError, match="written for domains"):
        two.load_state_dict(state)
    state_changed = dict(state, num_blocks={**state["num_blocks"], "tiny": 1})
    with pytest.raises(ValueError, match="shards changed"):
        _stream(domains).load_state_dict(state_changed)
    with pytest.raises(ValueError, match="seed"):
        _stream(domains, seed=8).load_state_dict(state)


def test_consuming_out_of_order_is_an_error(domains):
    s = _stream(domains)
    batch = next(iter(make_loader(s)))
    s.mark_consumed(batch)
    with pytest.raises(RuntimeError, match="expected batch 1"):
        s.mark_consumed(batch)


def test_missing_or_corrupt_index_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="mixtrain.prepare"):
        read_domain_blocks("ghost", tmp_path / "ghost", BLOCK)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt litdata index"):
        read_domain_blocks("bad", tmp_path / "bad", BLOCK)
