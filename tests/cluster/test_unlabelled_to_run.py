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


@pytest.mark.slow
def test_launch_unlabelled_sh_goes_from_raw_text_to_a_domain2vec_run(tmp_path):
    """launch/unlabelled.sh, the README's one command: cluster -> prepare -> train, as real processes;
    the target folder is cooking text, so domain2vec must put the most weight on the cooking cluster."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from topic_corpus import topic_doc

    repo = Path(__file__).resolve().parents[2]
    truth = write_unlabelled(tmp_path / "raw", per_topic=80, topics=("python", "cooking", "law", "astronomy"))
    rng = np.random.default_rng(7)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "recipes.jsonl").write_text(
        "".join(json.dumps({"text": topic_doc(rng, "cooking")}) + "\n" for _ in range(30)))
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHON": sys.executable, "MIXING": "domain2vec",
           "TARGET": str(tmp_path / "target"), "CLUSTER_ARGS": "--dim 16",
           "PREPARE_ARGS": "tokenizer.vocab_size=320 tokenizer.sample_bytes_per_domain=200000 shards.block_size=65 "
                           "shards.blocks_per_chunk=8 shards.min_val_tokens=600 shards.val_fraction=0.05"}
    work = tmp_path / "work"
    command = ["bash", str(repo / "launch" / "unlabelled.sh"), str(tmp_path / "raw"), str(work), "12", "4",
               "experiment=smoke", "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false",
               "mixing.meta_domains=4"]
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "[unlabelled] 3/3 training" in proc.stdout
    summary = json.loads((work / "run-domain2vec" / "summary.json").read_text())
    weights = summary["initial_weights"]
    clusters = sorted(p.name for p in (work / "clusters").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert sorted(weights) == clusters and len(clusters) == 4
    import csv

    with open(work / "clusters" / "assignments.csv") as f:  # the cluster most of the cooking documents went to
        cooking = [r["cluster"] for r in csv.DictReader(f) if truth[(r["source"], int(r["doc"]))] == "cooking"]
    assert max(weights, key=weights.get) == max(set(cooking), key=cooking.count)
    # without TARGET, domain2vec refuses before any work
    again = subprocess.run(command[:4], cwd=repo, env={**env, "TARGET": ""}, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "MIXING=domain2vec needs TARGET" in again.stderr
    # chameleon on the same WORK: the clustering is kept, and the strategy trains its own short proxy
    chameleon = subprocess.run(command[:-1] + ["mixing.proxy_steps=4"], cwd=repo, env={**env, "MIXING": "chameleon"},
                               capture_output=True, text=True, timeout=900)
    assert chameleon.returncode == 0, (chameleon.stdout[-3000:], chameleon.stderr[-3000:])
    assert "clustering kept" in chameleon.stdout
    summary = json.loads((work / "run-chameleon" / "summary.json").read_text())
    assert summary["strategy"] == "chameleon" and sorted(summary["initial_weights"]) == clusters
