"""Pruning (CLIMB step 3): drop the k-means clusters whose mean per-document quality is below a threshold.

Place in the flow: cluster/kmeans.py (labels) -> **prune.py** -> cluster/merge.py (surviving centroids).
The user names the scorer: a numeric column of the embeddings (`mixtrain embed --fields quality`
kept it from the input's jsonl field / parquet column) or a Python callable "module:function"
taking a document's text and returning a float (called on every document, read again from RAW).
A document the scorer gives no number (NaN) is left out of its cluster's mean, and counted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mixtrain.errors import ConfigError


def load_scorer(spec: str) -> Callable[[str], float]:
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"--quality {spec!r}: give a column of the embeddings or a callable as module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"--quality {spec}: cannot import it ({e}); put the module on PYTHONPATH") from None
    if not callable(fn):
        raise ConfigError(f"--quality {spec}: {name} is not callable")
    return fn


def document_quality(spec: str, docs: dict[str, np.ndarray], manifest: dict, embeddings: str | Path) -> np.ndarray:
    """One float per embedded document (row order of docs.parquet)."""
    if ":" not in spec:
        if spec not in docs:
            kept = [c for c in docs if c not in ("source", "doc", "domain", "num_chars", "raw_domain")]
            raise ConfigError(f"--quality {spec!r}: {embeddings} has no such column (numeric columns kept: {kept}); "
                              f"re-embed with `mixtrain embed RAW --out E --fields {spec}` or give module:function")
        return np.asarray(docs[spec], dtype=np.float64)
    from tqdm import tqdm

    from mixtrain.embed.documents import Skipped, iter_corpus

    fn = load_scorer(spec)
    row = {(s, int(d)): i for i, (s, d) in enumerate(zip(docs["source"], docs["doc"]))}
    scores = np.full(len(row), np.nan)
    for source, doc, text, _ in tqdm(iter_corpus(manifest["root"], Skipped(), text_field=manifest["text_field"],
                                                 txt_mode=manifest["txt_mode"]), desc="cluster: quality",
                                     unit=" docs", total=len(row), mininterval=2):
        i = row.get((source, doc))
        if i is not None:
            scores[i] = float(fn(text))
    return scores


def prune_clusters(labels: np.ndarray, quality: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask over the k clusters, mean quality per cluster); an empty cluster is kept out."""
    sums = np.bincount(labels, weights=np.nan_to_num(quality), minlength=k)
    counts = np.bincount(labels, weights=np.isfinite(quality).astype(float), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    keep = np.isfinite(mean) & (mean >= threshold)
    return keep, mean
