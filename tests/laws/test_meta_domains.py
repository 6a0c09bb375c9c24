"""Domain2Vec's law feature (laws/meta_domains.py): a law fitted on V^T r scores mixtures of other domains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixtrain.errors import ConfigError
from mixtrain.laws.cross_validation import spearman
from mixtrain.laws.meta_domains import MetaDomainLaw, meta_table, read_domain_vectors
from mixtrain.laws.synthetic import World, synthetic_table


def _world(seed=0, m=4, k=5, runs=40):
    rng = np.random.default_rng(seed)
    world = World(m, seed)
    V = rng.dirichlet(np.full(m, 0.5), size=k)
    names = [f"a{i}" for i in range(k)]
    W = rng.dirichlet(np.ones(k), size=runs)
    table = synthetic_table(lambda W_, s: world.loss(W_ @ V, s), W, [world.s_ref], names, eval_domains=world.domains,
                            noise=0.0, seed=1, run_prefix="A")
    return world, V, names, table, rng


def test_meta_table_replaces_each_mixture_by_its_meta_domain_mixture():
    world, V, names, table, _ = _world()
    meta = meta_table(table, dict(zip(names, V)))
    assert meta.train_domains == ("meta000", "meta001", "meta002", "meta003")
    assert np.allclose(meta.W, table.W @ V) and np.allclose(meta.W.sum(axis=1), 1.0)
    assert np.array_equal(meta.L, table.L) and list(meta.runs) == list(table.runs)


def test_a_law_fitted_on_one_domain_set_ranks_mixtures_of_another():
    world, V, names, table, rng = _world()
    vectors = dict(zip(names, V))
    # set B: three new domains, each a blend of A's domains (so inside what A's runs taught the law)
    blends = rng.dirichlet(np.ones(len(names)), size=3)
    vectors.update({f"b{i}": b @ V for i, b in enumerate(blends)})
    law = MetaDomainLaw("ridge", vectors).fit(table, cv_folds=0)
    cand = rng.dirichlet(np.ones(3), size=200)
    pred = law.predict(cand, ["b0", "b1", "b2"], np.full(200, world.s_ref)).mean(axis=1)
    true = world.loss(cand @ (blends @ V), np.full(200, world.s_ref)).mean(axis=1)
    assert spearman(pred, true) > 0.9
    # a renamed copy of an A domain is the same point to the law: the same prediction
    vectors["copy"] = V[0]
    law.vectors = {d: v / v.sum() for d, v in vectors.items()}
    one_a = law.predict(np.eye(len(names))[:1], names, [world.s_ref])
    assert np.allclose(law.predict([[1.0]], ["copy"], [world.s_ref]), one_a)


def test_missing_or_bad_domain_vectors_are_refused_naming_the_domain(tmp_path):
    world, V, names, table, _ = _world()
    with pytest.raises(ConfigError, match=r"no domain vector for \['a4'\]"):
        MetaDomainLaw("ridge", dict(zip(names[:4], V[:4]))).fit(table, cv_folds=0)
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"a0": [0.5, 0.5], "a1": [1, 0, 0]}))
    with pytest.raises(ConfigError, match="different lengths"):
        read_domain_vectors(path)
    path.write_text(json.dumps({"a0": [0.0, 0.0], "a1": [1, 0]}))
    with pytest.raises(ConfigError, match="'a0' has no valid vector"):
        read_domain_vectors(path)
    path.write_text(json.dumps({"a0": [2, 2], "a1": [1, 0]}))
    assert np.allclose(read_domain_vectors(path)["a0"], [0.5, 0.5])  # normalised onto the simplex
