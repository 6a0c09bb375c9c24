"""mixtrain embed: one vector per document, bad documents skipped and counted, the fitted embedder reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixtrain.embed.pipeline import embed_corpus
from mixtrain.embed.store import domain_vectors, load_docs, load_vectors, read_manifest, sha256_file
from mixtrain.errors import ConfigError, DataError


def test_embed_writes_one_unit_vector_per_document_and_counts_the_skipped(tiny_raw_dir, tmp_path):
    raw = tmp_path / "raw"
    (raw / "notes").mkdir(parents=True)
    (raw / "notes" / "ok.txt").write_text("a readable note about tables and code")
    (raw / "notes" / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (raw / "notes" / "empty.txt").write_text("   \n")
    with open(raw / "notes" / "mixed.jsonl", "w") as f:
        f.write(json.dumps({"text": "first good record"}) + "\n{not json\n" + json.dumps({"text": ""}) + "\n")
        f.write(json.dumps({"text": "fourth good record"}) + "\n")
    for i in range(40):
        (raw / "notes" / f"n{i}.txt").write_text(f"note {i} about mixtures of domains and tokens " * (1 + i % 3))
    manifest = embed_corpus(raw, tmp_path / "E", options={"dim": 8}, fit_docs=1000)
    assert manifest["num_docs"] == 43 and manifest["dim"] == 8
    assert manifest["skipped"] == {"non-utf8": 1, "empty": 2, "invalid-json": 1}
    skipped = (tmp_path / "E" / "skipped.csv").read_text().splitlines()
    assert "notes/latin1.txt,0,non-utf8: byte 3" in skipped and any(r.startswith("notes/mixed.jsonl,1,") for r in skipped)
    docs = load_docs(tmp_path / "E")
    assert set(zip(docs["source"][:0], docs["doc"][:0])) == set()
    kept = set(zip(docs["source"], docs["doc"].tolist()))
    assert ("notes/mixed.jsonl", 0) in kept and ("notes/mixed.jsonl", 3) in kept and ("notes/mixed.jsonl", 1) not in kept
    vectors = load_vectors(tmp_path / "E")
    assert vectors.shape == (43, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert set(docs["domain"]) == {"notes"}


def test_embed_separates_domains_and_the_fitted_embedder_is_reused_unchanged(tiny_raw_dir, tmp_path):
    first = embed_corpus(tiny_raw_dir, tmp_path / "E", options={"dim": 16}, num_workers=2, batch_size=32)
    again = embed_corpus(tiny_raw_dir, tmp_path / "E_again", options={"dim": 16})
    assert np.allclose(load_vectors(tmp_path / "E"), load_vectors(tmp_path / "E_again"), atol=1e-5)  # seeded, any workers
    means = domain_vectors(tmp_path / "E")
    assert sorted(means) == ["code", "prose", "tables"]
    # documents sit closer to their own domain's mean than to any other (the vectors carry the domain)
    vectors, labels = load_vectors(tmp_path / "E"), load_docs(tmp_path / "E")["domain"]
    names = sorted(means)
    nearest = np.argmax(vectors @ np.stack([means[d] for d in names]).T, axis=1)
    assert (np.array(names)[nearest] == labels).mean() > 0.95
    sha = sha256_file(tmp_path / "E" / "embedder.joblib")
    reused = embed_corpus(tiny_raw_dir / "code", tmp_path / "E_code", fitted=str(tmp_path / "E"))
    assert reused["fitted_sha256"] == first["embedder_sha256"] == reused["embedder_sha256"] == again["embedder_sha256"]
    assert sha256_file(tmp_path / "E" / "embedder.joblib") == sha
    code_rows = labels == "code"
    assert np.allclose(load_vectors(tmp_path / "E_code"), vectors[code_rows], atol=1e-5)


def test_hf_embedder_never_downloads(tmp_path, tiny_raw_dir):
    with pytest.raises(ConfigError, match="does not exist.*never downloads"):
        embed_corpus(tiny_raw_dir, tmp_path / "E", embedder="hf", options={"model_path": str(tmp_path / "nope")})
    (tmp_path / "half").mkdir()
    with pytest.raises(ConfigError, match="no config.json, so loading it would need a download"):
        embed_corpus(tiny_raw_dir, tmp_path / "E", embedder="hf", options={"model_path": str(tmp_path / "half")})
    with pytest.raises(ConfigError, match="--embedder 'bert'"):
        embed_corpus(tiny_raw_dir, tmp_path / "E", embedder="bert")


def test_embed_refuses_a_corpus_without_text(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("")
    with pytest.raises(DataError, match="no document with text.*empty"):
        embed_corpus(tmp_path / "raw", tmp_path / "E", fitted=None, options={"dim": 2})
    (tmp_path / "raw" / "b.pdf").write_bytes(b"%PDF")
    with pytest.raises(DataError, match="b.pdf: unsupported file type"):
        embed_corpus(tmp_path / "raw", tmp_path / "E")
    assert not (tmp_path / "E").exists()
    with pytest.raises(DataError, match="not an embeddings folder"):
        read_manifest(tmp_path / "raw")
