"""`cluster_corpus`: CLIMB's four steps from embeddings to a data=dir layout of domains.

Place in the flow: embed/ (E) -> kmeans.py -> prune.py -> merge.py -> describe.py / write.py -> OUT.
Everything random (the embedder's sample, the k-means sample and initialisation, the description
sample) is drawn from `seed`: the same RAW and seed give the same clusters, names and files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mixtrain.cluster.describe import distinctive_terms, plot_2d, write_report
from mixtrain.cluster.kmeans import assign, fit_centroids, sample_rows
from mixtrain.cluster.merge import cluster_name, ward_merge
from mixtrain.cluster.prune import document_quality, prune_clusters
from mixtrain.cluster.write import EMBEDDINGS, finish, write_documents
from mixtrain.embed.store import load_docs, load_vectors, read_manifest
from mixtrain.errors import ConfigError, DataError


@dataclass(frozen=True)
class ClusterSettings:
    k: int = 64                           # k-means clusters (CLIMB: 1000 on 400B tokens)
    merge_distance: float | None = 1.5    # Ward cut (CLIMB's 1.5); None: no distance cut
    merge_to: int | None = None           # or: cut the Ward tree into at most this many clusters
    quality: str | None = None            # a column of E or "module:function"; None: no pruning
    prune_below: float | None = None      # clusters whose mean quality is below this are dropped
    sample: int | None = None             # documents k-means is fitted on (None: 256 per centroid)
    backend: str = "sklearn"              # bench/cluster.py: faster and better than faiss here (BENCHMARKS.md)
    seed: int = 0
    describe_docs: int = 200              # documents per cluster read for its distinctive terms


def _check(settings: ClusterSettings, num_docs: int, embeddings: Path) -> None:
    if settings.k < 1:
        raise ConfigError(f"--k {settings.k}: give at least 1 cluster")
    if settings.k > num_docs:
        raise ConfigError(f"--k {settings.k} is larger than the {num_docs:,} documents of {embeddings}; "
                          f"use --k {max(1, num_docs // 10)} or fewer (about 10+ documents per cluster)")
    if (settings.quality is None) != (settings.prune_below is None):
        raise ConfigError("--quality and --prune-below go together: name the scorer and the threshold")


def _wanted_rows(groups: np.ndarray, dist: np.ndarray, num_groups: int, per_group: int, seed: int):
    """Rows whose text describes the clusters: a seeded sample per cluster and its 3 most typical."""
    rng = np.random.default_rng(seed)
    sample, typical = [], []
    for g in range(num_groups):
        rows = np.flatnonzero(groups == g)
        sample.append(np.sort(rng.choice(rows, size=min(per_group, len(rows)), replace=False)))
        typical.append(rows[np.argsort(dist[rows], kind="stable")[:3]])
    return sample, typical


def cluster_corpus(embeddings: str | os.PathLike, out: str | os.PathLike, settings: ClusterSettings) -> dict:
    """Run the four steps; returns clustering.json's content (names, sizes, settings)."""
    embeddings, out = Path(embeddings), Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "clustering.json").is_file():
        raise ConfigError(f"--out {out} exists and is not an earlier `mixtrain cluster` output (no clustering.json); "
                          "it would be replaced: give a new folder or remove it yourself")
    manifest = read_manifest(embeddings)
    vectors, docs = load_vectors(embeddings), load_docs(embeddings)
    _check(settings, len(vectors), embeddings)
    train_rows = sample_rows(len(vectors), settings.sample or 256 * settings.k, settings.seed)
    centroids = fit_centroids(np.asarray(vectors[train_rows]), settings.k, seed=settings.seed, backend=settings.backend)
    labels, dist = assign(vectors, centroids, backend=settings.backend)
    sizes = np.bincount(labels, minlength=settings.k)
    keep, mean_q = np.ones(settings.k, bool), None
    if settings.quality:
        keep, mean_q = prune_clusters(labels, document_quality(settings.quality, docs, manifest, embeddings),
                                      settings.k, settings.prune_below)
        if not (keep & (sizes > 0)).any():
            raise DataError(f"--prune-below {settings.prune_below} prunes every cluster (best mean quality "
                            f"{np.nanmax(mean_q):.3g}); lower the threshold")
    to_merged = ward_merge(centroids, keep, sizes, settings.merge_distance, settings.merge_to)
    groups = to_merged[labels]
    num_groups = int(to_merged.max()) + 1
    sample, typical = _wanted_rows(groups, dist, num_groups, settings.describe_docs, settings.seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    texts = write_documents(tmp, manifest, docs, groups, np.concatenate([*sample, *typical]))
    sample_rows_all = np.concatenate(sample)
    terms = distinctive_terms([texts[int(i)] for i in sample_rows_all], groups[sample_rows_all], num_groups)
    width = max(2, len(str(num_groups - 1)))
    names = [cluster_name(g, terms[g], width) for g in range(num_groups)]
    merged_sizes = [int(sizes[to_merged == g].sum()) for g in range(num_groups)]
    info = {"embeddings": str(embeddings.resolve()), "embedder": manifest["embedder"],
            "embedder_sha256": manifest["embedder_sha256"], "settings": asdict(settings), "sizes": merged_sizes,
            "num_docs": int(len(vectors)), "num_pruned_docs": int((groups < 0).sum())}
    arrays = {"centroids": centroids, "kmeans_to_cluster": to_merged, "kmeans_sizes": sizes}
    finish(tmp, names, docs, groups, embeddings, arrays, info)
    plot_rows = sample_rows(len(vectors), 20_000, settings.seed)
    plot_2d(np.asarray(vectors[plot_rows]), groups[plot_rows], names, tmp / "report.png", settings.seed)
    quality = [float(np.nanmean(mean_q[to_merged == g])) for g in range(num_groups)] if mean_q is not None else None
    pruned = [(k, int(sizes[k]), float(mean_q[k])) for k in np.flatnonzero(~keep & (sizes > 0))] if mean_q is not None else []
    write_report(tmp / "report.md", names=names, sizes=merged_sizes, terms=terms,
                 typical=[[texts[int(i)] for i in t] for t in typical], quality=quality, pruned=pruned,
                 settings=asdict(settings), skipped=manifest.get("skipped", {}))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return {**info, "names": names}


def embeddings_for(raw: str | os.PathLike, embeddings: str | os.PathLike | None) -> Path | None:
    """The given embeddings folder after checking it was made from RAW; None: embed RAW first."""
    if embeddings is None:
        return None
    manifest = read_manifest(embeddings)
    if Path(manifest["root"]).resolve() != Path(raw).resolve():
        raise ConfigError(f"--embeddings {embeddings} embeds {manifest['root']}, not {raw}; give the embeddings "
                          f"of {raw} or leave --embeddings out to embed it")
    return Path(embeddings)


__all__ = ["ClusterSettings", "cluster_corpus", "embeddings_for", "EMBEDDINGS"]
