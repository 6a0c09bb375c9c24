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


def _pair_independence_pvalue(a, b) -> float:
    """Chi-square test of independence of two aligned domain sequences (3 domains)."""
    table = np.zeros((3, 3))
    for x, y in zip(a, b):
        table[x, y] += 1
    return stats.chi2_contingency(table + 1e-9).pvalue


def test_workers_and_ranks_get_decorrelated_domain_sequences(domains):
    uniform = {"big": 1 / 3, "mid": 1 / 3, "tiny": 1 / 3}
    s = _stream(domains, uniform, batch_size=8, num_workers=2)
    batches = _take(s, 80, persistent_workers=False)
    even = np.concatenate([b["domain"].numpy() for b in batches[0::2]])  # worker 0's batches
    odd = np.concatenate([b["domain"].numpy() for b in batches[1::2]])  # worker 1's
    # litdata's mixer gives every worker the same sequence: agreement 1.0; independent draws agree
    # at chance (1/3 for 3 uniform domains; 320 positions: sd 0.026)
    assert abs(np.mean(even == odd) - 1 / 3) < 0.12
    assert _pair_independence_pvalue(even, odd) > 1e-3
    r0 = _stream(domains, uniform, batch_size=8, rank=0, world_size=2)
    r1 = _stream(domains, uniform, batch_size=8, rank=1, world_size=2)
    seq0 = np.concatenate([b["domain"].numpy() for b in _take(r0, 40)])
    seq1 = np.concatenate([b["domain"].numpy() for b in _take(r1, 40)])
    assert abs(np.mean(seq0 == seq1) - 1 / 3) < 0.12
    assert _pair_independence_pvalue(seq0, seq1) > 1e-3


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


W0 = {"big": 0.5, "mid": 0.3, "tiny": 0.2}
W1 = {"big": 0.0, "mid": 0.2, "tiny": 0.8}  # no "big": a batch governed by W1 has none
W2 = {"big": 0.7, "mid": 0.3, "tiny": 0.0}  # no "tiny"


def _governed(batches, start1, start2):
    """Batch indices whose domains are consistent only with W1 (resp. W2), checked per batch."""
    in1 = [b for b in batches if start1 <= b["batch_index"] < start2]
    in2 = [b for b in batches if b["batch_index"] >= start2]
    assert all(0 not in b["domain"].tolist() for b in in1), "a batch after the first change drew 'big'"
    assert all(2 not in b["domain"].tolist() for b in in2), "a batch after the second change drew 'tiny'"
    before = [b for b in batches if b["batch_index"] < start1]
    assert {0, 2} <= {d for b in before for d in b["domain"].tolist()}  # the initial weights drew both
    return len(in1), len(in2)


def _changer(stream, at=(5, 23)):
    """Set W1 after batch at[0] and W2 after batch at[1] (as a refit would); records the effective batches."""
    starts = {}

    def on_batch(batch):
        if batch["batch_index"] == at[0]:
            starts[1] = stream.set_weights(W1)
        elif batch["batch_index"] == at[1]:
            starts[2] = stream.set_weights(W2)
    return on_batch, starts


@pytest.mark.parametrize("num_workers", [0, 2])
def test_set_weights_governs_every_batch_after_the_documented_bound(domains, num_workers):
    s = _stream(domains, {"big": 1.0, "mid": 0.0, "tiny": 0.0}, num_workers=num_workers, window_samples=8)
    changes = {}

    def on_batch(batch):
        if batch["batch_index"] == 10:
            bound = s.next_batch + s.weight_lag_batches
            changes["start"] = s.set_weights({"big": 0.0, "mid": 0.0, "tiny": 1.0})
            assert bound <= changes["start"] <= bound + s.window_batches - 1

    batches = _take(s, 60, on_batch=on_batch, persistent_workers=True)
    start = changes["start"]
    assert start == 20  # next 11 + lag 8 = 19, rounded up to a window of 2 batches: the same for any num_workers
    for b in batches:
        expected = 0 if b["batch_index"] < start else 2
        assert set(b["domain"].tolist()) == {expected}, b["batch_index"]
    assert s.schedule()[-1] == (start, {"big": 0.0, "mid": 0.0, "tiny": 1.0})


def test_weight_changes_land_on_the_same_batch_for_any_num_workers(domains):
    runs = {}
    for num_workers in (0, 2):
        s = _stream(domains, W0, num_workers=num_workers, window_samples=8)
        on_batch, starts = _changer(s)
        runs[num_workers] = (_signature(_take(s, 50, on_batch=on_batch)), dict(starts))
    assert runs[0] == runs[2]
    assert runs[0][1] == {1: 14, 2: 32}  # next 6 + 8 -> 14; next 24 + 8 -> 32 (windows of 2 batches)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_exact_resume_across_weight_changes(domains, num_workers):
    # windows of 2 batches, so each change lands in its own window; the checkpoint (after batch 26)
    # falls after the first change took effect (batch 14) and while the second (batch 32) is pending
    kw = dict(window_samples=8)
    full_stream = _stream(domains, W0, num_workers=num_workers, **kw)
    on_batch, starts = _changer(full_stream)
    full_batches = _take(full_stream, 60, on_batch=on_batch)
    full = _signature(full_batches)
    n1, n2 = _governed(full_batches, starts[1], starts[2])
    assert n1 >= 15 and n2 >= 25  # both changed weights govern many batches, each checked above

    first = _stream(domains, W0, num_workers=num_workers, **kw)
    on_batch, _ = _changer(first)
    head = _signature(_take(first, 27, on_batch=on_batch))
    state = first.state_dict()
    assert [start for start, _ in state["schedule"]] == [0, 14, 32]  # the second change is pending
    # resume in a fresh object (as after a crash); the other worker count must not matter either
    other = 2 - num_workers
    resumed = _stream(domains, W0, num_workers=other, **kw)
    resumed.load_state_dict(state)
    tail = _signature(_take(resumed, 33))
    assert head + tail == full
    assert resumed.schedule() == full_stream.schedule()
    assert resumed.domain_samples() == full_stream.domain_samples()


def test_lag_below_what_the_loader_prefetches_is_refused(domains):
    with pytest.raises(ValueError, match=r"sampler.weight_lag_batches=5 .* >= 6"):
        _stream(domains, num_workers=2, prefetch_factor=2, weight_lag_batches=5)
    assert _stream(domains, num_workers=0, weight_lag_batches=2).weight_lag_batches == 2


@pytest.mark.parametrize("key, value", [("window_samples", 16), ("weight_lag_batches", 12)])
def test_resume_that_changes_when_weights_take_effect_is_refused(domains, key, value):
    s = _stream(domains, window_samples=8)
    _take(s, 3)
    state = s.state_dict()
    with pytest.raises(ValueError, match=rf"sampler.{key}=.* resume with sampler.{key}"):
        _stream(domains, **{"window_samples": 8, key: value}).load_state_dict(state)


@pytest.mark.parametrize("schedule, message", [
    ([[0, W0], [40, W1], [20, W2]], "entry 2: start 20 is not after entry 1's 40"),
    ([[0, W0], [20, W1], [20, W2]], "entry 2: start 20 is not after"),
    ([[5, W0]], "starts at batch 5, after its next batch 3"),
    ([[0, W0], [8, {"big": "1", "mid": 0, "tiny": 0}]], "entry 1 .*'big' is not a number"),
    ([[0.5, W0]], "start 0.5 is not a batch index"),
    ([], "non-empty"),
])
def test_corrupt_schedule_in_state_is_refused(domains, schedule, message):
    s = _stream(domains)
    _take(s, 3)
    state = dict(s.state_dict(), schedule=schedule)
    with pytest.raises(ValueError, match=message):
        _stream(domains).load_state_dict(state)


def _run_with_change_every_batch(stream, num_batches, first_call=0):
    """Set alternating one-domain weights after every batch: a schedule far longer than the buffer."""
    def on_batch(batch):
        i = batch["batch_index"]
        if i >= first_call:
            stream.set_weights({d: float(d == ("big", "mid", "tiny")[i % 3]) for d in stream.domains})
    return _take(stream, num_batches, on_batch=on_batch, persistent_workers=True)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_schedule_is_unbounded_and_exact_with_persistent_workers(domains, num_workers):
    # buffer of 16 entries, 80 changes: compaction runs many times while the workers read it
    kw = dict(window_samples=4, max_schedule_entries=16, num_workers=num_workers)
    s = _stream(domains, W0, **kw)
    batches = _run_with_change_every_batch(s, 80)
    lag = s.weight_lag_batches
    # the change made after batch i governs batch i + 1 + lag (windows of one batch): its one domain
    for b in batches[1 + lag:]:
        i = b["batch_index"]
        assert set(b["domain"].tolist()) == {(i - 1 - lag) % 3}, i
    kept = s.schedule()
    assert len(kept) <= 16 and kept[0][0] <= s.next_batch  # compacted, and still governs the position
    assert s.weights_at(s.next_batch + lag) == kept[-1][1]
    with pytest.raises(ValueError, match="compacted away"):
        s.weights_at(0)

    # exact resume from a state taken mid-way (its schedule was compacted too)
    first = _stream(domains, W0, **kw)
    head = _run_with_change_every_batch(first, 41)
    state = first.state_dict()
    resumed = _stream(domains, W0, **{**kw, "num_workers": 2 - num_workers})
    resumed.load_state_dict(state)
    tail = _run_with_change_every_batch(resumed, 39, first_call=41)
    assert _signature(head + tail) == _signature(batches)


def test_weights_at_on_a_long_schedule_matches_the_definition(domains):
    s = _stream(domains, W0, window_samples=4)
    rng = np.random.default_rng(0)
    starts = np.concatenate([[0], np.cumsum(rng.integers(1, 5, size=4999))])
    table = rng.random((5000, 3)) + 0.01
    state = dict(s.state_dict(), next_batch=int(starts[-1]) + 1,
                 schedule=[[int(a), dict(zip(s.domains, row.tolist()))] for a, row in zip(starts, table)])
    s.load_state_dict(state)
    assert len(s.schedule()) == 5000
    for g in [0, 1, int(starts[1234]), int(starts[1234]) + 1, int(starts[-1]), int(starts[-1]) + 99]:
        i = int(np.flatnonzero(starts <= g)[-1])
        assert s.weights_at(g) == pytest.approx(dict(zip(s.domains, (table[i] / table[i].sum()).tolist())))


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


def test_open_chunk_budget_caps_open_domains_without_changing_the_stream(domains):
    ref = _signature(_take(_stream(domains), 40))
    capped = _stream(domains, max_open_chunks=2)
    assert _signature(_take(capped, 40)) == ref
    assert capped._readers.max_open_chunks == 2 and capped._readers.num_open <= 2


def test_open_file_limit_too_low_is_a_clear_error(domains, monkeypatch):
    import resource

    from mixtrain.sampler import readers

    monkeypatch.setattr(resource, "getrlimit", lambda what: (260, 260))
    with pytest.raises(OSError, match=r"RLIMIT_NOFILE soft=260.*ulimit -n"):
        readers.open_chunk_budget(1000)
