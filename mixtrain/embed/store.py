"""The embeddings folder E: one vector per document, its document table, and what made it.

Place in the flow: embed/pipeline.py writes E -> **store.py** -> cluster/ (k-means on the vectors),
mixing/chameleon.py and mixing/domain2vec.py (domain vectors). numpy + pyarrow + joblib only.

    E/manifest.json     embedder name and settings, its sha256, dim, counts, skipped counts, the input
    E/vectors.npy       float32 (num_docs, dim), row i = document i of docs.parquet
    E/docs.parquet      source (path relative to RAW), doc (index in the file), domain, num_chars,
                        and any numeric --fields (e.g. a quality score)
    E/skipped.csv       source, doc, reason of every document left out (empty, non-UTF-8, ...)
    E/embedder.joblib   the fitted embedder: new text is embedded by the same model, never refitted
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import DataError

MANIFEST, VECTORS, DOCS, SKIPPED, EMBEDDER = "manifest.json", "vectors.npy", "docs.parquet", "skipped.csv", "embedder.joblib"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_embeddings(out: str | os.PathLike, vectors: np.ndarray, docs: dict[str, Sequence], skipped_rows,
                     embedder: Any, manifest: dict[str, Any]) -> Path:
    """Write E into a temporary sibling folder, then rename it into place (a reader never sees half of E)."""
    import joblib
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
    pq.write_table(pa.table({k: list(v) if not isinstance(v, np.ndarray) else v for k, v in docs.items()}),
                   tmp / DOCS)
    with open(tmp / SKIPPED, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "doc", "reason"])
        writer.writerows(skipped_rows)
    joblib.dump(embedder, tmp / EMBEDDER)
    full = {**manifest, "num_docs": int(len(vectors)), "dim": int(vectors.shape[1]),
            "embedder_sha256": sha256_file(tmp / EMBEDDER)}
    (tmp / MANIFEST).write_text(json.dumps(full, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise DataError(f"{path} is not an embeddings folder (no {MANIFEST}); write one with `mixtrain embed RAW --out {path}`")
    return json.loads((path / MANIFEST).read_text())


def load_vectors(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    return np.load(Path(path) / VECTORS, mmap_mode="r" if mmap else None)


def load_docs(path: str | os.PathLike, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(Path(path) / DOCS, columns=list(columns) if columns else None)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def load_embedder(path: str | os.PathLike):
    """The fitted embedder of E, after checking it is the file the manifest names."""
    import joblib

    path = Path(path)
    manifest = read_manifest(path)
    if sha256_file(path / EMBEDDER) != manifest.get("embedder_sha256"):
        raise DataError(f"{path / EMBEDDER} is not the embedder {path / MANIFEST} was written with; re-run `mixtrain embed`")
    return joblib.load(path / EMBEDDER)


def embedder_identity(manifest: dict[str, Any]) -> tuple[str, str]:
    """(embedder name, sha256 of the fitted embedder): two vectors are comparable only if these agree."""
    return str(manifest.get("embedder", {}).get("embedder")), str(manifest.get("embedder_sha256"))


def check_same_embedder(paths: Sequence[str | os.PathLike], what: str = "embeddings") -> str:
    """The one embedder identity every folder shares; DataError naming the folders that differ."""
    identities = {str(p): embedder_identity(read_manifest(p)) for p in paths}
    first = next(iter(identities.values()))
    for p, ident in identities.items():
        if ident != first:
            raise DataError(
                f"{what}: {p} was embedded by {ident[0]} (embedder sha256 {ident[1][:12]}) but {next(iter(identities))} "
                f"by {first[0]} ({first[1][:12]}); vectors of different embedders cannot be compared - re-embed "
                f"with `mixtrain embed RAW --out E --fitted {next(iter(identities))}` (the same fitted embedder)")
    return first[1]


def domain_vectors(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> dict[str, np.ndarray]:
    """Mean document vector per domain over one or more embeddings folders (same embedder required);
    a domain found in two folders is an error (which one would it be?)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    check_same_embedder(paths)
    out: dict[str, np.ndarray] = {}
    where: dict[str, str] = {}
    for p in paths:
        vectors = load_vectors(p)
        domains = load_docs(p, ["domain"])["domain"].astype(str)
        for d in sorted(set(domains)):
            if d in out:
                raise DataError(f"domain {d!r} is in both {where[d]} and {p}; give each domain's text once")
            out[d] = np.asarray(vectors[domains == d], dtype=np.float64).mean(axis=0)
            where[d] = str(p)
    return out
