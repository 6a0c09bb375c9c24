"""Chameleon's own proxy run (train/chameleon_proxy.py): trained once, reused, new domains embedded by it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import prepare_corpus_for_test, smoke_cfg, train_composed
from mixtrain.embed.store import domain_vectors, sha256_file
from mixtrain.mixing.chameleon import chameleon_weights, leverage_scores
from mixtrain.train.run import train

PROXY = ("mixing=chameleon", "mixing.proxy_steps=3", "mixing.windows=6", "mixing.window_tokens=32")


def _config(data_dir, tmp_path, *extra):
    from mixtrain.hydra_app import bind
    from mixtrain.train.config import TrainConfig

    return bind(smoke_cfg(data_dir, tmp_path / "runs" / "main", *PROXY, f"mixing.proxy_dir={tmp_path / 'proxies'}",
                          *extra), TrainConfig)


@pytest.fixture(scope="module")
def four_domains(tmp_path_factory):
    return prepare_corpus_for_test(tmp_path_factory.mktemp("four"))  # code, noise, prose, tables (slow tests)


def _ckpt(proxies):
    ckpts = sorted(proxies.glob("*/run/checkpoints/*.ckpt"))
    assert ckpts, list(proxies.rglob("*"))
    return {str(c): sha256_file(c) for c in ckpts}


def test_the_proxy_is_trained_once_and_an_added_domain_is_embedded_without_retraining(tiny_data_dir, tmp_path, capfd,
                                                                                      monkeypatch):
    from mixtrain.train.chameleon_proxy import with_domain_embeddings

    proxies = tmp_path / "proxies"
    two = _config(tiny_data_dir, tmp_path, "eval_only_domains=[tables]")
    before = with_domain_embeddings(two, str(tiny_data_dir), train)
    assert "training its uniform proxy run (3 steps" in capfd.readouterr().err
    assert [p.name for p in proxies.iterdir() if p.is_dir()].__len__() == 1
    summary = json.loads(next(proxies.glob("*/run/summary.json")).read_text())
    assert summary["step"] == 3 and set(summary["initial_weights"]) == {"code", "prose"}
    assert all(w == pytest.approx(1 / 2) for w in summary["initial_weights"].values())  # a uniform proxy
    ckpt = _ckpt(proxies)
    old_vectors = {p: sha256_file(f"{p}/vectors.npy") for p in before.mixing["embeddings"]}

    # the same run again: nothing trained, nothing re-embedded
    again = with_domain_embeddings(two, str(tiny_data_dir), train)
    assert again.mixing["embeddings"] == before.mixing["embeddings"]
    assert "reusing the proxy run" in capfd.readouterr().err

    # a 3rd training domain: the same proxy (checkpoint bytes unchanged), only `tables` embedded
    after = with_domain_embeddings(_config(tiny_data_dir, tmp_path), str(tiny_data_dir), train)
    err = capfd.readouterr().err
    assert "embedding the added domain(s) ['tables'] with it, no retraining" in err and "training its" not in err
    assert _ckpt(proxies) == ckpt
    assert {p: sha256_file(f"{p}/vectors.npy") for p in after.mixing["embeddings"] if p in old_vectors} == old_vectors
    new = [p for p in after.mixing["embeddings"] if p not in old_vectors]
    assert len(new) == 1 and "tables" in new[0]
    vectors = np.load(f"{new[0]}/vectors.npy")
    assert vectors.shape[0] == 6 and np.isfinite(vectors).all()

    # the weights of the 3 domains come from the proxy's window embeddings, recomputed
    from mixtrain.mixing import build_mixing
    from mixtrain.mixing.base import DataContext

    order = ["code", "prose", "tables"]
    strategy = build_mixing(after.mixing).strategy
    weights = strategy.compute(DataContext(str(tiny_data_dir), order, {}))
    means = domain_vectors(after.mixing["embeddings"])
    expected = chameleon_weights(leverage_scores(np.stack([means[d] for d in order]), 10.0), 5.0)
    assert np.allclose([weights[d] for d in order], expected) and sum(weights.values()) == pytest.approx(1.0)
    assert len(set(np.round(list(weights.values()), 6))) == 3  # distinct domain vectors, distinct weights

    # another rank reads rank 0's resolved folders: it trains and embeds nothing
    monkeypatch.setenv("RANK", "1")
    other = with_domain_embeddings(_config(tiny_data_dir, tmp_path), str(tiny_data_dir), train)
    assert other.mixing["embeddings"] == after.mixing["embeddings"] and "chameleon:" not in capfd.readouterr().err
    assert _ckpt(proxies) == ckpt
    monkeypatch.setenv("MIXTRAIN_RANK0_WAIT_S", "0.3")  # nothing resolved for other settings: a clear timeout
    with pytest.raises(TimeoutError, match="chameleon's domain embeddings"):
        with_domain_embeddings(_config(tiny_data_dir, tmp_path, "mixing.proxy_steps=5"), str(tiny_data_dir), train)


@pytest.mark.slow
def test_other_proxy_settings_train_another_proxy_and_embed_run_skips_training(four_domains, tmp_path, capfd):
    from mixtrain.train.chameleon_proxy import with_domain_embeddings

    proxies = tmp_path / "proxies"
    first = with_domain_embeddings(_config(four_domains, tmp_path), str(four_domains), train)
    capfd.readouterr()
    run = next(proxies.glob("*/run"))
    # an explicit embed_run: no proxy trained, the same vectors as the proxy's own embedding of itself
    given = with_domain_embeddings(_config(four_domains, tmp_path, f"mixing.embed_run={run}"), str(four_domains),
                                   train)
    err = capfd.readouterr().err
    assert f"mixing.embed_run={run} (no proxy training)" in err and "training its" not in err
    assert len(list(proxies.glob("*/run"))) == 1
    for a, b in zip(sorted(first.mixing["embeddings"]), sorted(given.mixing["embeddings"])):
        assert a != b and np.array_equal(np.load(f"{a}/vectors.npy"), np.load(f"{b}/vectors.npy"))
    # other proxy settings are another proxy (never a silent reuse of a different model)
    with_domain_embeddings(_config(four_domains, tmp_path, "mixing.proxy_steps=2"), str(four_domains), train)
    assert "training its uniform proxy run (2 steps" in capfd.readouterr().err
    assert len(list(proxies.glob("*/run"))) == 2


@pytest.mark.slow
def test_mixing_chameleon_trains_with_its_proxy_end_to_end_and_a_child_process_proxy(four_domains, tmp_path, capfd):
    """`python -m mixtrain.train mixing=chameleon` with no embeddings: proxy, embedding, weights, run;
    then the child-process proxy (what rank 0 does under torchrun/srun) gives the same checkpoint."""
    from mixtrain.train.chameleon_proxy import train_proxy

    cfg = smoke_cfg(four_domains, tmp_path / "runs" / "cham", *PROXY, "trainer.max_steps=4")
    summary = train_composed(cfg)
    assert "training its uniform proxy run" in capfd.readouterr().err
    weights = summary["initial_weights"]
    assert set(weights) == {"code", "noise", "prose", "tables"} and sum(weights.values()) == pytest.approx(1.0)
    proxy_run = next((tmp_path / "runs" / ".chameleon-proxy").glob("*/run"))
    child = tmp_path / "child" / "run"
    train_proxy(_config(four_domains, tmp_path), child, train, child_process=True)
    assert json.loads((child / "summary.json").read_text())["step"] == 3
    a = json.loads((proxy_run / "summary.json").read_text())["final"]["val/loss"]
    b = json.loads((child / "summary.json").read_text())["final"]["val/loss"]
    assert a == pytest.approx(b, rel=1e-5)  # the same seed and data: the same proxy in a child process
