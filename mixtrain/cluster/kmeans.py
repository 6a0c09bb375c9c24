"""k-means on document vectors: fitted on a seeded sample, then every document assigned in batches.

Place in the flow: embed/store.py (vectors) -> **kmeans.py** -> cluster/prune.py, merge.py.
Two backends, the same interface: `sklearn` (KMeans, one k-means++ init; the default) and `faiss`
(faiss-cpu, random init). bench/cluster.py measured both on the same sample and vectors
(BENCHMARKS.md): on 2 shared cores scikit-learn was faster, and its k-means++ start found the
planted topics where faiss's random start merged some; faiss stays for machines with many cores.
Memory: the vectors are read through a memory map and assigned `batch_size` rows at a time.
"""

from __future__ import annotations

import numpy as np

BACKENDS = ("faiss", "sklearn")


def sample_rows(num_docs: int, sample: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample (all rows when sample >= num_docs)."""
    if sample >= num_docs:
        return np.arange(num_docs)
    return np.sort(np.random.default_rng(seed).choice(num_docs, size=sample, replace=False))


def fit_centroids(train: np.ndarray, k: int, *, seed: int, backend: str = "sklearn", niter: int = 20) -> np.ndarray:
    """(k, dim) float32 centroids of `train`."""
    from mixtrain.errors import ConfigError

    train = np.ascontiguousarray(train, dtype=np.float32)
    if backend == "faiss":
        import faiss

        km = faiss.Kmeans(train.shape[1], k, niter=niter, seed=seed, verbose=False,
                          max_points_per_centroid=max(256, len(train) // k + 1))
        km.train(train)
        return np.asarray(km.centroids, dtype=np.float32)
    if backend == "sklearn":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=1, max_iter=niter, random_state=seed).fit(train)
        return km.cluster_centers_.astype(np.float32)
    raise ConfigError(f"--backend {backend!r}: use one of {BACKENDS}")


def assign(vectors: np.ndarray, centroids: np.ndarray, *, backend: str = "sklearn",
           batch_size: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centroid index int32, squared distance float32) of every row, `batch_size` rows at a time."""
    from tqdm import tqdm

    labels = np.empty(len(vectors), dtype=np.int32)
    dist = np.empty(len(vectors), dtype=np.float32)
    if backend == "faiss":
        import faiss

        index = faiss.IndexFlatL2(centroids.shape[1])
        index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    for start in tqdm(range(0, len(vectors), batch_size), desc="cluster: assign", unit=" batches", mininterval=2):
        block = np.ascontiguousarray(vectors[start:start + batch_size], dtype=np.float32)
        if backend == "faiss":
            d, i = index.search(block, 1)
            labels[start:start + len(block)], dist[start:start + len(block)] = i[:, 0], d[:, 0]
        else:
            from sklearn.metrics import pairwise_distances_argmin_min

            i, d = pairwise_distances_argmin_min(block, centroids)
            labels[start:start + len(block)], dist[start:start + len(block)] = i, d ** 2
    return labels, dist
