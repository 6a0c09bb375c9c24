"""Domain representations for the training-free strategies (chameleon, domain2vec), read from embeddings.

Place in the flow: embed/store.py (E folders) and cluster/ (clustering.npz) -> **domain_vectors.py**
-> mixing/chameleon.py, mixing/domain2vec.py. Pure numpy: the vectors were computed outside mixing/
(`mixtrain embed`); a target folder of text is embedded here with E's fitted embedder (scikit-learn,
no refit, no torch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mixtrain.errors import ConfigError, DataError


def embeddings_paths(embeddings, strategy: str) -> list[Path]:
    if not embeddings:
        raise ConfigError(f"mixing={strategy} needs mixing.embeddings: the embeddings folder(s) of the domains' raw "
                          "text (`mixtrain embed RAW --out E`, or OUT/.embeddings written by `mixtrain cluster`)")
    paths = [embeddings] if isinstance(embeddings, (str, os.PathLike)) else list(embeddings)
    for p in paths:
        if not (Path(p) / "manifest.json").is_file():
            raise ConfigError(f"mixing.embeddings: {p} is not an embeddings folder (no manifest.json); "
                              f"write it with `mixtrain embed RAW --out {p}`")
    return [Path(p) for p in paths]


def training_domain_means(paths: Sequence[Path], domains: Sequence[str], strategy: str) -> dict[str, np.ndarray]:
    from mixtrain.embed.store import domain_vectors

    means = domain_vectors(paths)
    missing = [d for d in domains if d not in means]
    if missing:
        raise ConfigError(f"mixing={strategy}: no embedded documents of domain(s) {missing} in "
                          f"{[str(p) for p in paths]} (embedded domains: {sorted(means)}); embed RAW/<domain>/ with "
                          f"`mixtrain embed RAW --out E2 --fitted {paths[0]}` and add E2 to mixing.embeddings")
    return means


def nearest(vectors: np.ndarray, centroids: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of every row, in batches."""
    c = np.asarray(centroids, dtype=np.float64)
    c2 = (c ** 2).sum(axis=1)
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), batch_size):
        x = np.asarray(vectors[start:start + batch_size], dtype=np.float64)
        out[start:start + len(x)] = np.argmin(c2[None, :] - 2.0 * x @ c.T, axis=1)
    return out


def histograms(meta: np.ndarray, labels: np.ndarray, num_meta: int) -> dict[str, np.ndarray]:
    """Per label: the share of its documents in each meta-domain (a point on the simplex)."""
    out = {}
    for d in sorted(set(labels)):
        counts = np.bincount(meta[labels == d], minlength=num_meta).astype(np.float64)
        out[str(d)] = counts / counts.sum()
    return out


def target_folder_vectors(folder: str, fitted: Path, text_field: str = "text") -> np.ndarray:
    """Every document of a folder of target text, embedded by E's fitted embedder (no refit)."""
    from mixtrain.embed.documents import Skipped, iter_corpus
    from mixtrain.embed.store import load_embedder

    skipped = Skipped()
    try:
        texts = [t for _, _, t, _ in iter_corpus(folder, skipped, text_field=text_field)]
    except DataError as e:
        raise DataError(f"mixing.target={folder}: {e}") from None
    if not texts:
        raise DataError(f"mixing.target={folder}: the target set has no text ({len(skipped.rows)} document(s) "
                        f"skipped: {skipped.counts()}); put UTF-8 text files in it")
    return load_embedder(fitted).transform(texts)


def target_mixture(target: Mapping[str, float], vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """The importance-weighted mixture of the named domains' vectors (target.importance)."""
    missing = [d for d in target if d not in vectors]
    if missing:
        raise ConfigError(f"mixing.target: domain(s) {missing} have no embedded documents (embedded: {sorted(vectors)})")
    total = float(sum(float(w) for w in target.values()))
    if total <= 0:
        raise ConfigError(f"mixing.target: importance weights {dict(target)} sum to {total}; give positive weights")
    return sum(float(w) / total * vectors[d] for d, w in target.items())
