"""mixtrain cluster: CLIMB's four steps on word-list topics with a planted spam topic."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from topic_corpus import write_unlabelled

from mixtrain.cluster.cli import main as cluster_main
from mixtrain.cluster.pipeline import ClusterSettings, cluster_corpus
from mixtrain.embed.pipeline import embed_corpus
from mixtrain.errors import ConfigError


def _assignments(out):
    with open(out / "assignments.csv") as f:
        return {(r["source"], int(r["doc"])): r["cluster"] for r in csv.DictReader(f)}


def _purity(truth, found) -> float:
    keys = list(truth)
    clusters = {}
    for key in keys:
        clusters.setdefault(found[key], []).append(truth[key])
    return sum(max(v.count(t) for t in set(v)) for v in clusters.values()) / len(keys)


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    root = tmp_path_factory.mktemp("topics")
    truth = write_unlabelled(root / "raw", per_topic=60)
    embed_corpus(root / "raw", root / "E", options={"dim": 16}, fields=("quality",))
    return root, truth


def test_spam_cluster_is_pruned_and_four_topics_are_recovered(topics):
    root, truth = topics
    info = cluster_corpus(root / "E", root / "OUT", ClusterSettings(k=20, quality="quality", prune_below=2.0))
    found = _assignments(root / "OUT")
    assert len(found) == len(truth) == 300
    spam = [k for k, t in truth.items() if t == "spam"]
    assert all(found[k] == "pruned" for k in spam)  # every planted spam document pruned ...
    assert not any(found[k] == "pruned" for k in truth if truth[k] != "spam")  # ... and nothing else
    kept = {k: t for k, t in truth.items() if t != "spam"}
    assert len(info["names"]) == 4 and _purity(kept, found) >= 0.9
    labels = sorted(set(kept.values()))
    assert normalized_mutual_info_score([kept[k] for k in kept], [found[k] for k in kept]) > 0.9
    # names carry the topic's words; folders are a data=dir layout, pruned text kept aside
    by_topic = {t: {found[k] for k in kept if kept[k] == t}.pop() for t in labels}
    assert any(w in by_topic["python"] for w in ("def", "import", "return", "self", "class", "lambda", "yield"))
    for name in info["names"]:
        assert name.startswith("c0") and (root / "OUT" / name / "part-00000.jsonl").is_file()
    assert sum(1 for _ in open(root / "OUT" / ".pruned" / "part-00000.jsonl")) == 60
    report = (root / "OUT" / "report.md").read_text()
    assert "Pruned k-means clusters" in report and (root / "OUT" / "report.png").stat().st_size > 1000
    docs = sum(sum(1 for _ in open(root / "OUT" / n / "part-00000.jsonl")) for n in info["names"])
    assert docs == 240


def test_cluster_is_deterministic_for_a_seed_and_refuses_k_above_the_documents(topics, tmp_path):
    root, _ = topics
    first = cluster_corpus(root / "E", tmp_path / "a", ClusterSettings(k=12, seed=3))
    second = cluster_corpus(root / "E", tmp_path / "b", ClusterSettings(k=12, seed=3))
    assert first["names"] == second["names"]
    assert (tmp_path / "a" / "assignments.csv").read_bytes() == (tmp_path / "b" / "assignments.csv").read_bytes()
    assert np.array_equal(np.load(tmp_path / "a" / "clustering.npz")["centroids"],
                          np.load(tmp_path / "b" / "clustering.npz")["centroids"])
    with pytest.raises(ConfigError, match="--k 301 is larger than the 300 documents"):
        cluster_corpus(root / "E", tmp_path / "c", ClusterSettings(k=301))
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not an earlier `mixtrain cluster` output"):
        cluster_corpus(root / "E", tmp_path / "precious", ClusterSettings(k=5))
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="not an embeddings folder"):
        embed_corpus(root / "raw", tmp_path / "precious")
    with pytest.raises(ConfigError, match="no such column"):
        cluster_corpus(root / "E", tmp_path / "c", ClusterSettings(k=5, quality="stars", prune_below=1))


def spam_score(text: str) -> float:  # a --quality callable: named as module:function
    return 0.0 if "casino" in text or "pills" in text else 1.0


def test_cluster_command_embeds_prunes_by_a_callable_and_prepares(tmp_path, capsys):
    write_unlabelled(tmp_path / "raw", per_topic=30, topics=("python", "law", "spam"))
    cluster_main([str(tmp_path / "raw"), "--out", str(tmp_path / "OUT"), "--k", "9", "--dim", "12",
                  "--quality", "test_cluster:spam_score", "--prune-below", "0.5", "--backend", "sklearn"])
    out = capsys.readouterr().out
    assert "2 clusters from 90 documents (30 pruned)" in out and "mixtrain prepare data=dir" in out
    from mixtrain.prepare.corpus import list_domains

    domains = list_domains(tmp_path / "OUT")  # hidden .embeddings / .pruned are not domains
    assert len(domains) == 2 and all(d.startswith("c0") for d in domains)
    assert not (tmp_path / ".OUT.embed").exists()  # the scratch embeddings were removed
    from mixtrain.embed.store import load_docs

    assert set(load_docs(tmp_path / "OUT" / ".embeddings")["domain"]) == {*domains, "pruned"}
