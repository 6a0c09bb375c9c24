"""Entropy measures on sources with known answers, the shard reader, the stats.json cache and the strategy."""

from __future__ import annotations

import json
import os
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixtrain.prepare.domain_entropy import (
    document_spans,
    entropy_weights,
    load_or_compute_entropies,
    read_domain_tokens,
    token_entropies,
    von_neumann_entropy,
)
from mixtrain.mixing.base import DataContext
from mixtrain.mixing.entropy_rule import Entropy

REPO = Path(__file__).resolve().parents[2]


def markov_stream(P: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cum = np.cumsum(P, axis=1)
    u = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    s = 0
    for i in range(n):  # generating the test source, not the code under test
        s = int(np.searchsorted(cum[s], u[i], side="right"))
        out[i] = s
    return out


def test_markov_chain_entropies_match_theory():
    P = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.25, 0.25, 0.5]])
    evals, evecs = np.linalg.eig(P.T)
    pi = np.real(evecs[:, np.argmin(np.abs(evals - 1))])
    pi = pi / pi.sum()
    h_rows = np.array([-sum(p * math.log(p) for p in row if p > 0) for row in P])
    ce_true = float(pi @ h_rows)
    se_true = float(-(pi * np.log(pi)).sum())
    got = token_entropies(markov_stream(P, 200_000, seed=1), vocab_size=3)
    assert got["ce"] == pytest.approx(ce_true, abs=0.01)
    assert got["se"] == pytest.approx(se_true, abs=0.01)
    assert got["je"] == pytest.approx(se_true + ce_true, abs=0.02)


def test_iid_and_deterministic_limits():
    rng = np.random.default_rng(0)
    iid = token_entropies(rng.integers(0, 16, 400_000), vocab_size=16)
    assert iid["se"] == pytest.approx(math.log(16), abs=1e-3) and iid["ce"] == pytest.approx(math.log(16), abs=5e-3)
    cycle = token_entropies(np.tile(np.arange(8), 1000), vocab_size=8)
    assert cycle["se"] == pytest.approx(math.log(8)) and cycle["ce"] == pytest.approx(0.0, abs=1e-9)


def test_pairs_across_document_ends_are_not_counted():
    eos = 9
    # inside documents token 1 is always followed by 2; only across EOS would other pairs appear
    docs = [np.array([1, 2, 1, 2, eos]), np.array([3, 1, 2, eos])] * 500
    stream = np.concatenate(docs)
    with_eos = token_entropies(stream, vocab_size=10, eos_id=eos)
    without = token_entropies(stream, vocab_size=10, eos_id=None)
    assert with_eos["ce"] < without["ce"]


def test_dense_and_sorted_pair_counts_agree(monkeypatch):
    import mixtrain.prepare.domain_entropy as ent

    stream = np.random.default_rng(3).integers(0, 50, 20_000)
    dense = token_entropies(stream, 50)
    monkeypatch.setattr(ent, "_DENSE_PAIR_LIMIT", 0)  # force the sort path used for large vocabularies
    assert token_entropies(stream, 50) == pytest.approx(dense)


def test_token_entropies_reject_bad_streams():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        token_entropies(np.array([0, 1, 7]), vocab_size=4)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        token_entropies(np.array([1]), vocab_size=4)


def test_document_spans_cut_long_documents():
    tokens = np.array([5] * 10 + [0] + [6] * 3 + [0] + [7] * 4)
    starts, ends = document_spans(tokens, eos_id=0, max_doc_tokens=4)
    assert (ends - starts).sum() == len(tokens) and (ends - starts).max() <= 4
    assert list(zip(starts.tolist(), ends.tolist()))[:3] == [(0, 4), (4, 8), (8, 11)]


def test_von_neumann_entropy_limits():
    dim = 64
    same = np.concatenate([np.array([3, 4, 5, 0])] * 200)
    assert von_neumann_entropy(same, 16, eos_id=0, dim=dim, ignore_ids=[0]) == pytest.approx(0.0, abs=1e-9)
    # documents each made of one distinct token: many orthogonal directions -> higher entropy
    varied = np.concatenate([np.array([t, t, 0]) for t in range(1, 200)])
    s = von_neumann_entropy(varied, 200, eos_id=0, dim=dim, ignore_ids=[0])
    assert 2.0 < s <= math.log(dim) + 1e-9


def test_entropy_weights_normalisations_and_errors():
    w = entropy_weights({"a": 1.0, "b": 3.0})
    assert w == pytest.approx({"a": 0.25, "b": 0.75})
    s = entropy_weights({"a": 1.0, "b": 3.0}, "softmax", temperature=2.0)
    assert s["b"] / s["a"] == pytest.approx(math.exp(1.0))
    assert entropy_weights({"a": 1.0, "b": 3.0}, "softmax", 100.0)["a"] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="finite"):
        entropy_weights({"a": float("nan"), "b": 1.0})
    with pytest.raises(ValueError, match="normalization"):
        entropy_weights({"a": 1.0}, "rank")
    with pytest.raises(ValueError, match="temperature"):
        entropy_weights({"a": 1.0}, "softmax", 0.0)


def test_shard_reader_returns_exactly_the_prepared_tokens(tiny_data_dir):
    """The chunk files read with numpy hold the same tokens litdata's TokensLoader serves."""
    from litdata import StreamingDataset, TokensLoader

    train = tiny_data_dir / "code" / "train"
    ours = read_domain_tokens(train)
    stats = json.loads((tiny_data_dir / "code" / "stats.json").read_text())
    assert len(ours) == stats["num_train_tokens"]
    block = json.loads((tiny_data_dir / "manifest.json").read_text())["block_size"]
    index = json.loads((train / "index.json").read_text())
    first_chunk_blocks = int(index["chunks"][0]["dim"]) // block
    assert first_chunk_blocks >= 2
    ds = StreamingDataset(str(train), item_loader=TokensLoader(block_size=block), shuffle=False)
    head = np.concatenate([ds[i].numpy() for i in range(first_chunk_blocks)])
    assert np.array_equal(ours[: len(head)], head)
    sample = read_domain_tokens(train, sample_tokens=100, seed=1)
    assert len(sample) == 100


def test_cache_in_stats_and_strategy(tiny_data_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    table = load_or_compute_entropies(data, sample_tokens=None)
    assert set(table) == {"code", "prose", "tables"}
    for d, v in table.items():
        cached = json.loads((data / d / "stats.json").read_text())["entropy"]
        assert cached["ce"] == pytest.approx(v["ce"]) and cached["settings"]["sample_tokens"] is None
        assert 0 <= v["ce"] <= v["se"] <= v["je"]
    # a second call reads the cache: corrupting the shards does not change the answer
    (data / "code" / "train" / "index.json").write_text("{}")
    assert load_or_compute_entropies(data, sample_tokens=None)["code"]["ce"] == pytest.approx(table["code"]["ce"])
    with pytest.raises(ValueError, match="corrupt litdata index"):
        load_or_compute_entropies(data, sample_tokens=123)  # other settings: recompute, and say what is broken

    stats = {d: json.loads((tiny_data_dir / d / "stats.json").read_text()) for d in table}
    ctx = DataContext(str(tiny_data_dir), list(table), stats)
    w = Entropy(measure="ce", sample_tokens=None).initial_weights(ctx)
    expect = entropy_weights({d: table[d]["ce"] for d in table})
    assert w == pytest.approx(expect)


def test_cli_prints_table(tiny_data_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mixtrain.prepare.entropy_cli", f"data_dir={tiny_data_dir}", "write=false",
                           "sample_tokens=null"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # nothing left in the working directory (no entropy.log)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3 and "w(ce,prop)" in rows[0]


def test_shards_of_another_dtype_are_refused(tiny_data_dir, tmp_path):
    import shutil

    train = tmp_path / "train"
    shutil.copytree(tiny_data_dir / "code" / "train", train)
    index = json.loads((train / "index.json").read_text())
    index["config"]["data_format"] = ["no_header_tensor:15"]  # not int32: reading it as int32 would be garbage
    (train / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="data_format.*re-prepare"):
        read_domain_tokens(train)


def _zipf(vocab: int) -> np.ndarray:
    p = 1.0 / np.arange(1, vocab + 1)
    return p / p.sum()


def test_miller_madow_is_closer_to_truth_than_plug_in_on_small_samples():
    """iid source with known entropy H (so je = 2H, ce = H); 2,000 tokens of a 64-symbol Zipf source."""
    p = _zipf(64)
    h = float(-(p * np.log(p)).sum())
    truth = {"se": h, "je": 2 * h, "ce": h}
    err = {"none": {m: [] for m in truth}, "miller_madow": {m: [] for m in truth}}
    for seed in range(10):
        tokens = np.random.default_rng(seed).choice(64, size=2000, p=p)
        for kind in err:
            got = token_entropies(tokens, 64, bias_correction=kind)
            for m in truth:
                err[kind][m].append(got[m] - truth[m])
    for m in truth:
        plug, mm = np.mean(err["none"][m]), np.mean(err["miller_madow"][m])
        assert plug < 0  # the plug-in estimate is biased low ...
        assert abs(mm) < 0.7 * abs(plug), (m, plug, mm)  # ... and the correction is closer to the truth
    # se (64 symbols, N >> m) loses almost all its bias; pairs (4,096 possible, N = 2,000) keep some:
    # first-order correction cannot account for pairs never observed (module doc)
    assert abs(np.mean(err["miller_madow"]["se"])) < 0.2 * abs(np.mean(err["none"]["se"]))


def test_unknown_bias_correction_is_refused(tiny_data_dir):
    with pytest.raises(ValueError, match="bias_correction"):
        token_entropies(np.array([0, 1, 2]), 4, bias_correction="jackknife")
    with pytest.raises(ValueError, match="bias_correction"):
        load_or_compute_entropies(tiny_data_dir, bias_correction="jackknife", write=False)


@pytest.fixture(scope="module")
def same_source_data_dir(tmp_path_factory):
    """Two domains drawn from one source, one 5x larger: iid Zipf words from a 2,000-word lexicon, so
    the small domain's sample sees only part of the pairs (the regime where sample size biases je)."""
    from mixtrain.prepare.pipeline import prepare_corpus
    from mixtrain.prepare.shards import ShardSettings

    raw = tmp_path_factory.mktemp("same_source_raw")
    rng = np.random.default_rng(7)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lexicon = ["".join(rng.choice(letters, size=rng.integers(2, 7))) for _ in range(2000)]
    p = _zipf(len(lexicon))
    for name, n_docs in (("big", 250), ("small", 50)):
        (raw / name).mkdir()
        for i in range(n_docs):
            words = rng.choice(len(lexicon), size=200, p=p)
            (raw / name / f"doc{i:03d}.txt").write_text(" ".join(lexicon[w] for w in words) + ".")
    out = tmp_path_factory.mktemp("same_source")
    prepare_corpus(raw, out, vocab_size=320, sample_bytes_per_domain=100_000,
                   settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05))
    return out


def test_equal_size_samples_give_same_source_domains_near_equal_entropies(same_source_data_dir):
    stats = {d: json.loads((same_source_data_dir / d / "stats.json").read_text()) for d in ("big", "small")}
    assert stats["big"]["num_train_tokens"] > 4 * stats["small"]["num_train_tokens"]
    table = load_or_compute_entropies(same_source_data_dir, sample_tokens=None, write=False)
    assert table["big"]["num_tokens"] == table["small"]["num_tokens"] == stats["small"]["num_train_tokens"]
    assert table["big"]["vne_windows"] == table["small"]["vne_windows"]
    for m in ("se", "je", "ce"):
        assert table["big"][m] == pytest.approx(table["small"][m], rel=0.01), m
    assert table["big"]["vne"] == pytest.approx(table["small"]["vne"], rel=0.05)  # 47 windows each: noisier
    # the plug-in on each domain's whole data (the old semantics) is off by far more for je
    whole = {d: token_entropies(read_domain_tokens(same_source_data_dir / d / "train"), 320) for d in ("big", "small")}
    gap_whole, gap_equal = (abs(whole["big"]["je"] - whole["small"]["je"]), abs(table["big"]["je"] - table["small"]["je"]))
    assert gap_whole > 3 * gap_equal, (gap_whole, gap_equal)


def test_cache_is_keyed_by_the_new_semantics(same_source_data_dir, tmp_path):
    """An entry written by the old code (plug-in, per-domain sample size) is not reused."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(same_source_data_dir, data)
    stats_file = data / "big" / "stats.json"
    stats = json.loads(stats_file.read_text())
    stats["entropy"] = {"se": 1.0, "ce": 1.0, "je": 1.0, "vne": 1.0, "num_tokens": 10,
                        "settings": {"sample_tokens": None, "seed": 0, "vne_dim": 256, "max_doc_tokens": 1024}}
    stats_file.write_text(json.dumps(stats))
    table = load_or_compute_entropies(data, sample_tokens=None)
    assert table["big"]["se"] != 1.0
    cached = json.loads(stats_file.read_text())["entropy"]
    assert cached["settings"]["version"] == 2 and cached["settings"]["bias_correction"] == "miller_madow"
    # the measures depend on the comparison set: alone, big is measured on all of its tokens
    alone = load_or_compute_entropies(data, ["big"], sample_tokens=None, write=False)
    assert alone["big"]["num_tokens"] == stats["num_train_tokens"] > table["big"]["num_tokens"]
