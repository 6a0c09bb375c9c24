"""The documented path end to end: unlabelled text -> mixtrain cluster -> prepare -> a run with chameleon / domain2vec."""

from __future__ import annotations

import json

import pytest

from conftest import smoke_cfg, train_composed
from topic_corpus import write_unlabelled

from mixtrain.cluster.cli import main as cluster_main


@pytest.mark.slow
def test_unlabelled_text_to_clustered_domains_to_a_trained_run(tmp_path):
    from mixtrain.prepare.pipeline import prepare_corpus
    from mixtrain.prepare.shards import ShardSettings

    write_unlabelled(tmp_path / "raw", per_topic=80, topics=("python", "cooking", "law", "astronomy"))
    cluster_main([str(tmp_path / "raw"), "--out", str(tmp_path / "OUT"), "--k", "12", "--merge-to", "4", "--dim", "16"])
    prepare_corpus(tmp_path / "OUT", tmp_path / "DIR", vocab_size=320, sample_bytes_per_domain=200_000,
                   settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=600, val_fraction=0.05))
    for strategy, extra in (("chameleon", []), ("domain2vec", ["mixing.meta_domains=4", "mixing.target=[c00" + "]"])):
        domains = sorted(p.name for p in (tmp_path / "OUT").iterdir() if p.is_dir() and not p.name.startswith("."))
        extra = [e.replace("[c00]", f"[{domains[0]}]") for e in extra]
        cfg = smoke_cfg(tmp_path / "DIR", tmp_path / strategy, f"mixing={strategy}",
                        f"mixing.embeddings={tmp_path / 'OUT' / '.embeddings'}", *extra)
        train_composed(cfg)
        summary = json.loads((tmp_path / strategy / "summary.json").read_text())
        assert summary["strategy"] == strategy
        weights = summary["initial_weights"]
        assert sorted(weights) == domains and abs(sum(weights.values()) - 1) < 1e-6
        assert len({round(w, 6) for w in weights.values()}) > 1  # not uniform: the strategy set them
