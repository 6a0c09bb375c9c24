"""Domain2Vec: a known mixture is recovered by the Huber solve, on oracle vectors and from real text."""

from __future__ import annotations

import numpy as np
import pytest

from topic_corpus import write_mixture_domain

from mixtrain.cluster.pipeline import ClusterSettings, cluster_corpus
from mixtrain.embed.pipeline import embed_corpus
from mixtrain.errors import ConfigError, DataError
from mixtrain.mixing import build_mixing
from mixtrain.mixing.base import DataContext
from mixtrain.mixing.domain2vec import huber_mixture


def test_oracle_vectors_give_back_the_hidden_mixture_and_respect_the_epoch_cap():
    rng = np.random.default_rng(1)
    for _ in range(5):
        v = rng.dirichlet(np.ones(12) * 0.5, size=5).T  # 12 meta-domains x 5 domains
        r_star = rng.dirichlet(np.ones(5))
        r = huber_mixture(v, v @ r_star, delta=0.01)
        assert np.abs(r - r_star).sum() < 0.01
    upper = np.array([0.1, 1, 1, 1, 1])
    r_star = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    r = huber_mixture(v, v @ r_star, delta=0.01, upper=upper)
    assert r[0] == pytest.approx(0.1, abs=1e-6) and r.sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="epoch caps allow only"):
        huber_mixture(v, v @ r_star, delta=0.01, upper=np.full(5, 0.1))


MIXTURES = {
    "web": {"python": 0.25, "cooking": 0.25, "law": 0.25, "astronomy": 0.25},
    "code": {"python": 0.8, "law": 0.2},
    "food": {"cooking": 0.7, "astronomy": 0.3},
    "legal": {"law": 0.6, "astronomy": 0.4},
}


def _context(domains, tokens=10_000, budget=None):
    return DataContext(data_dir="unused", domains=list(domains), budget_tokens=budget,
                       stats={d: {"num_train_tokens": tokens} for d in domains})


def test_a_known_mixture_of_real_domains_is_recovered_from_text(tmp_path):
    rng = np.random.default_rng(0)
    for name, mixture in MIXTURES.items():
        write_mixture_domain(tmp_path / "raw" / name, mixture, 80, rng)
    r_star = {"web": 0.1, "code": 0.4, "food": 0.2, "legal": 0.3}
    topics = {}
    for name, w in r_star.items():
        for t, share in MIXTURES[name].items():
            topics[t] = topics.get(t, 0.0) + w * share
    write_mixture_domain(tmp_path / "target", topics, 200, rng)
    embed_corpus(tmp_path / "raw", tmp_path / "E", options={"dim": 16})
    d2v = build_mixing({"strategy": "domain2vec", "embeddings": str(tmp_path / "E"), "target": str(tmp_path / "target"),
                        "meta_domains": 4}).strategy
    w = d2v.initial_weights(_context(MIXTURES))
    assert sum(abs(w[d] - r_star[d]) for d in r_star) < 0.25
    # a saved clustering as the meta-domains gives the same answer
    cluster_corpus(tmp_path / "E", tmp_path / "CL", ClusterSettings(k=8, merge_to=4))
    saved = build_mixing({"strategy": "domain2vec", "embeddings": str(tmp_path / "E"),
                          "target": str(tmp_path / "target"), "clustering": str(tmp_path / "CL")}).strategy
    w_saved = saved.initial_weights(_context(MIXTURES))
    assert sum(abs(w_saved[d] - r_star[d]) for d in r_star) < 0.25
    # target.importance over embedded domains: the target is that mixture itself
    imp = build_mixing({"strategy": "domain2vec", "embeddings": str(tmp_path / "E"), "meta_domains": 4,
                        "target": {"code": 1.0, "food": 1.0}}).strategy.initial_weights(_context(MIXTURES))
    assert imp["code"] + imp["food"] > 0.9


def test_domain2vec_bad_inputs_name_the_key_and_the_fix(tmp_path):
    rng = np.random.default_rng(0)
    for name, mixture in MIXTURES.items():
        write_mixture_domain(tmp_path / "raw" / name, mixture, 40, rng)
    embed_corpus(tmp_path / "raw", tmp_path / "E", options={"dim": 8})
    (tmp_path / "empty_target").mkdir()
    (tmp_path / "empty_target" / "a.txt").write_text("  ")
    strategy = build_mixing({"strategy": "domain2vec", "embeddings": str(tmp_path / "E"), "meta_domains": 4,
                             "target": str(tmp_path / "empty_target")}).strategy
    with pytest.raises(DataError, match="the target set has no text"):
        strategy.initial_weights(_context(MIXTURES))
    with pytest.raises(ConfigError, match="needs mixing.target"):
        build_mixing({"strategy": "domain2vec", "embeddings": str(tmp_path / "E")}).strategy.initial_weights(
            _context(MIXTURES))
    embed_corpus(tmp_path / "raw", tmp_path / "E_other", options={"dim": 6})
    cluster_corpus(tmp_path / "E_other", tmp_path / "CL_other", ClusterSettings(k=4, merge_distance=None))
    mismatched = build_mixing({"strategy": "domain2vec", "embeddings": str(tmp_path / "E"), "target": ["web"],
                               "clustering": str(tmp_path / "CL_other")}).strategy
    with pytest.raises(DataError, match="mixing.clustering: .* fitted on vectors of embedder"):
        mismatched.initial_weights(_context(["code", "food", "legal"]))
