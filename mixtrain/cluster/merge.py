"""Merging (CLIMB step 4): Ward linkage of the surviving k-means centroids, cut at a distance; names.

Place in the flow: cluster/prune.py (which centroids survive) -> **merge.py** -> cluster/write.py.
Merged clusters are numbered by size (largest first; ties by their lowest k-means index), so the
numbering, like everything else here, is fixed by the data and the seed. A name is
`c<number>-<three most distinctive terms>` (describe.py picks the terms), e.g. `c07-python-def-import`.
"""

from __future__ import annotations

import re

import numpy as np


def ward_merge(centroids: np.ndarray, keep: np.ndarray, sizes: np.ndarray, distance: float | None,
               max_clusters: int | None = None) -> np.ndarray:
    """k-means index -> merged cluster number (0 = largest), -1 where not kept (pruned or empty).

    `distance`: cut the Ward tree at this cophenetic distance (CLIMB: 1.5); `max_clusters`: cut it
    into at most this many instead; neither: no merge (every surviving centroid is its own cluster).
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    kept = np.flatnonzero(keep & (sizes > 0))
    group = np.full(len(centroids), -1, dtype=np.int64)
    if len(kept) == 0:
        return group
    if len(kept) == 1 or (distance is None and max_clusters is None):
        flat = np.arange(len(kept))
    else:
        tree = linkage(np.asarray(centroids[kept], dtype=np.float64), method="ward")
        flat = (fcluster(tree, t=max_clusters, criterion="maxclust") if max_clusters
                else fcluster(tree, t=float(distance), criterion="distance")) - 1
    members = {g: kept[flat == g] for g in np.unique(flat)}
    order = sorted(members, key=lambda g: (-int(sizes[members[g]].sum()), int(members[g].min())))
    for number, g in enumerate(order):
        group[members[g]] = number
    return group


def slug(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", term.lower())[:16]


def cluster_name(number: int, terms: list[str], width: int) -> str:
    words = [w for w in (slug(t) for t in terms) if w][:3]
    return "-".join([f"c{number:0{width}d}", *words])
