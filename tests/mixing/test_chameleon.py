"""Chameleon: hand-worked leverage scores, the direction of the weights, and adding a domain without refitting."""

from __future__ import annotations

import numpy as np
import pytest

from mixtrain.embed.pipeline import embed_corpus
from mixtrain.embed.store import domain_vectors, sha256_file
from mixtrain.errors import ConfigError, DataError
from mixtrain.mixing import build_mixing
from mixtrain.mixing.base import DataContext
from mixtrain.mixing.chameleon import chameleon_weights, leverage_scores


def test_leverage_scores_match_the_hand_worked_3x3_case():
    # X = e1, e2, 0: the centred kernel is (1/9)[[5,-4,-1],[-4,5,-1],[-1,-1,2]], eigenvalues 1 (u=(1,-1,0)/sqrt2)
    # and 1/3 (u=(1,1,-2)/sqrt6); with lambda k = 30: S_ii = sum mu/(mu+30) u_i^2
    s0 = (1 / 31) * (1 / 2) + (1 / 91) * (1 / 6)  # = 1/62 + 1/546
    s2 = (1 / 91) * (4 / 6)
    expected = np.array([s0, s0, s2]) / (2 * s0 + s2)
    scores = leverage_scores(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), lam=10.0)
    assert np.allclose(scores, expected, rtol=1e-10)
    assert np.allclose(scores, [76 / 183, 76 / 183, 31 / 183], rtol=1e-10)  # 608/1464, 248/1464
    inv = 1 / expected
    w = np.exp(inv / 5) / np.exp(inv / 5).sum()
    assert np.allclose(chameleon_weights(scores, 5.0, "pretrain"), w)


def test_common_domains_are_favoured_in_pretraining_and_distinctive_ones_in_finetuning():
    rng = np.random.default_rng(0)
    a = rng.normal(size=8)
    b = rng.normal(size=8)
    b -= (b @ a) / (a @ a) * a  # B orthogonal to A
    x = np.stack([a, a + 1e-3 * rng.normal(size=8), b])  # A, A' = A + eps, B
    s = leverage_scores(x, lam=10.0)
    assert s[2] > s[0] and s[0] == pytest.approx(s[1], rel=1e-2)
    pre = chameleon_weights(s, 5.0, "pretrain")
    fine = chameleon_weights(s, 0.2, "finetune")
    assert pre[0] > pre[2] and pre[1] > pre[2]  # S instead of 1/S would favour B here
    assert fine[2] > fine[0] and fine[2] > fine[1]
    with pytest.raises(ConfigError, match="at least 3 domains"):
        leverage_scores(x[:2])


def _context(domains):
    return DataContext(data_dir="unused", domains=list(domains),
                       stats={d: {"num_train_tokens": 1000} for d in domains})


def test_adding_a_domain_recomputes_the_weights_without_refitting_the_embedder(tiny_raw_dir, tmp_path):
    embed_corpus(tiny_raw_dir, tmp_path / "E", options={"dim": 16})
    sha = sha256_file(tmp_path / "E" / "embedder.joblib")
    three = build_mixing({"strategy": "chameleon", "embeddings": str(tmp_path / "E")}).strategy
    w3 = three.initial_weights(_context(["code", "prose", "tables"]))
    assert sum(w3.values()) == pytest.approx(1.0) and len(set(np.round(list(w3.values()), 6))) == 3
    new = tmp_path / "new" / "legal"
    new.mkdir(parents=True)
    for i in range(20):
        new.joinpath(f"{i}.txt").write_text(f"Section {i}. The tenant shall pay the landlord within {i + 3} days "
                                            "of the notice, subject to the terms of this agreement.")
    embed_corpus(tmp_path / "new", tmp_path / "E_new", fitted=str(tmp_path / "E"))
    assert sha256_file(tmp_path / "E" / "embedder.joblib") == sha  # the embedding model was not retrained
    four = build_mixing({"strategy": "chameleon", "embeddings": [str(tmp_path / "E"), str(tmp_path / "E_new")]}).strategy
    w4 = four.initial_weights(_context(["code", "prose", "tables", "legal"]))
    means = domain_vectors([tmp_path / "E", tmp_path / "E_new"])
    x = np.stack([means[d] for d in ["code", "prose", "tables", "legal"]])
    expected = chameleon_weights(leverage_scores(x, 10.0), 5.0)
    assert np.allclose([w4[d] for d in ["code", "prose", "tables", "legal"]], expected)
    assert w4["legal"] > 0 and w4 != w3
    with pytest.raises(ConfigError, match=r"no embedded documents of domain\(s\) \['wiki'\]"):
        three.initial_weights(_context(["code", "prose", "wiki"]))
    embed_corpus(tmp_path / "new", tmp_path / "E_other", options={"dim": 4})  # a second, different embedder
    other = build_mixing({"strategy": "chameleon", "embeddings": [str(tmp_path / "E"), str(tmp_path / "E_other")]})
    with pytest.raises(DataError, match="vectors of different embedders cannot be compared"):
        other.strategy.initial_weights(_context(["code", "prose", "tables", "legal"]))


def test_embeddings_and_embed_run_together_are_refused():
    with pytest.raises(ConfigError, match="give one"):
        build_mixing({"strategy": "chameleon", "embeddings": "E", "embed_run": "RUN"})
    with pytest.raises(ConfigError, match="mixing.proxy_steps=0"):
        build_mixing({"strategy": "chameleon", "proxy_steps": 0})
