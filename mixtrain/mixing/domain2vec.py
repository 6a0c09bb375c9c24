"""Domain2Vec (Zhang et al., ICML'25, arXiv 2506.10952): a mixture whose meta-domain vector matches the target's.

Place in the flow: embed/ (E: document vectors) + cluster/ (the meta-domains: a saved clustering.npz,
or k-means fitted here on a sample of all domains) -> **domain2vec.py** -> sampler/, once per run.
No proxy training. Pure: numpy/scipy (+ scikit-learn k-means through cluster/kmeans.py when it fits meta-domains).

    v(D) = the share of D's documents in each meta-domain      (the paper: the mean of a 260-way
                                                                classifier's probabilities; here the
                                                                nearest-centroid rule, i.e. k-means'
                                                                own classifier, hard-assigned)
    r*   = argmin_{r on the simplex, r_i <= cap_i} sum_j Huber_delta((V r - v_target)_j)   (DA^2)
The target (`mixing.target`) is one of: a list of domain names (eval-only domains embedded with
the rest), a {domain: importance} mapping (`target.importance`), a folder of target text (embedded
with E's fitted embedder) or an embeddings folder of it. cap_i = max_epochs * tokens_i / budget
(the paper rejects mixtures that need more than one epoch of any domain: max_epochs = 1).
The solve is scipy's SLSQP on the convex problem (the paper samples Dirichlet candidates instead).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import ConfigError, DataError
from mixtrain.mixing.base import DataContext, MixingStrategy
from mixtrain.mixing.strategy_registry import register_strategy


def huber_mixture(vectors: np.ndarray, target: np.ndarray, delta: float,
                  upper: np.ndarray | None = None) -> np.ndarray:
    """argmin over the simplex (0 <= r_i <= upper_i) of sum Huber_delta(vectors @ r - target); vectors: (n, m)."""
    from scipy.optimize import minimize
    from scipy.special import huber

    v, t = np.asarray(vectors, dtype=np.float64), np.asarray(target, dtype=np.float64)
    m = v.shape[1]
    hi = np.ones(m) if upper is None else np.minimum(np.asarray(upper, dtype=np.float64), 1.0)
    if hi.sum() < 1.0 - 1e-9:
        raise ConfigError(f"domain2vec: the epoch caps allow only {hi.sum():.3f} of the budget; raise "
                          "mixing.max_epochs or train for fewer steps")
    x0 = np.minimum(np.full(m, 1.0 / m), hi)
    while x0.sum() < 1.0 - 1e-12:  # give the missing mass to domains below their cap (feasible start)
        room = hi - x0
        x0 = x0 + room / room.sum() * (1.0 - x0.sum())
    # scaled so the objective is O(1) whatever delta is (SLSQP's tolerances are absolute)
    scale = 1.0 / max(delta * float(np.abs(v @ x0 - t).sum()), 1e-12)

    def f(r):
        return scale * float(huber(delta, v @ r - t).sum())

    def grad(r):
        return scale * (v.T @ np.clip(v @ r - t, -delta, delta))

    res = minimize(f, x0, jac=grad, method="SLSQP", bounds=list(zip(np.zeros(m), hi)),
                   constraints=[{"type": "eq", "fun": lambda r: r.sum() - 1.0, "jac": lambda r: np.ones(m)}],
                   options={"maxiter": 1000, "ftol": 1e-12})
    r = np.clip(res.x, 0.0, hi)
    return r / r.sum()


def _meta_domains(paths: Sequence[Path], clustering: str | None, num_meta: int, seed: int, sample: int):
    """(centroids, k-means index -> meta-domain index, number of meta-domains)."""
    from mixtrain.embed.store import check_same_embedder, load_vectors

    sha = check_same_embedder(paths, "mixing.embeddings")
    if clustering:
        folder = Path(clustering)
        if not (folder / "clustering.npz").is_file():
            raise ConfigError(f"mixing.clustering: {folder} holds no clustering.npz; give an OUT of `mixtrain cluster`")
        info = json.loads((folder / "clustering.json").read_text())
        if info.get("embedder_sha256") != sha:
            raise DataError(f"mixing.clustering: {folder} was fitted on vectors of embedder {info.get('embedder', {})} "
                            f"(sha256 {str(info.get('embedder_sha256'))[:12]}), mixing.embeddings on another "
                            f"({sha[:12]}); re-embed with `mixtrain embed RAW --out E --fitted {info.get('embeddings')}` "
                            "or leave mixing.clustering out to fit meta-domains here")
        arrays = np.load(folder / "clustering.npz")
        to_meta = arrays["kmeans_to_cluster"].astype(np.int64)
        num = int(to_meta.max()) + 2  # the merged clusters + one for documents of pruned clusters
        return arrays["centroids"], np.where(to_meta < 0, num - 1, to_meta), num
    from mixtrain.cluster.kmeans import fit_centroids

    rng = np.random.default_rng(seed)
    pool = []
    for p in paths:  # a seeded sample of every folder, in proportion to its size
        vectors = load_vectors(p)
        take = min(len(vectors), max(1, sample // len(paths)))
        pool.append(np.asarray(vectors[np.sort(rng.choice(len(vectors), size=take, replace=False))]))
    pool = np.concatenate(pool)
    k = min(num_meta, len(pool))
    return fit_centroids(pool, k, seed=seed), np.arange(k), k


def domain_histograms(paths: Sequence[Path], clustering: str | None, num_meta: int, seed: int, sample: int):
    """({domain: its vector over the meta-domains}, (centroids, k-means -> meta index, number of meta-domains))."""
    from mixtrain.embed.store import load_docs, load_vectors
    from mixtrain.mixing.domain_vectors import histograms, nearest

    centroids, to_meta, num = _meta_domains(paths, clustering, num_meta, seed, sample)
    hist: dict[str, np.ndarray] = {}
    for p in paths:
        labels = load_docs(p, ["domain"])["domain"].astype(str)
        for d, h in histograms(to_meta[nearest(load_vectors(p), centroids)], labels, num).items():
            if d in hist:
                raise DataError(f"mixing.embeddings: domain {d!r} is in two folders; give each domain's text once")
            hist[d] = h
    return hist, (centroids, to_meta, num)


@register_strategy
class Domain2Vec(MixingStrategy):
    """The mixture whose meta-domain vector is nearest (Huber) to the target's (mixing.embeddings, mixing.target)."""

    name = "domain2vec"

    def __init__(self, embeddings: str | Sequence[str] | None = None, target: Any = None,
                 clustering: str | None = None, meta_domains: int = 64, huber_delta: float = 0.01,
                 sample: int = 200_000, seed: int = 0, max_epochs: float | None = None):
        super().__init__(max_epochs)
        self.embeddings, self.target, self.clustering = embeddings, target, clustering
        self.meta_domains, self.huber_delta, self.sample, self.seed = int(meta_domains), float(huber_delta), int(sample), int(seed)
        self.vectors: dict[str, list[float]] | None = None

    def _target(self, hist: Mapping[str, np.ndarray], centroids, to_meta, num, first: Path) -> np.ndarray:
        from mixtrain.mixing.domain_vectors import histograms, nearest, target_folder_vectors, target_mixture

        target = self.target
        if target is None or (hasattr(target, "__len__") and len(target) == 0):
            raise ConfigError("mixing=domain2vec needs mixing.target: eval-only domain names, {domain: importance}, "
                              "or a folder of target text")
        if isinstance(target, Mapping):
            return target_mixture(target, hist)
        if isinstance(target, (list, tuple)):
            return target_mixture({str(d): 1.0 for d in target}, hist)
        folder = Path(str(target))
        if (folder / "manifest.json").is_file():
            self_paths = [first, folder]
            from mixtrain.embed.store import check_same_embedder, load_vectors

            check_same_embedder(self_paths, "mixing.target")
            vectors = load_vectors(folder)
        elif folder.is_dir():
            vectors = target_folder_vectors(str(folder), first)
        else:
            raise ConfigError(f"mixing.target={target!r}: not a folder, a list of domains or a mapping")
        if len(vectors) == 0:
            raise DataError(f"mixing.target={folder}: the target set has no text")
        meta = to_meta[nearest(vectors, centroids)]
        return histograms(meta, np.zeros(len(meta), dtype=np.int64), num)["0"]

    def compute(self, ctx: DataContext) -> dict[str, float]:
        from mixtrain.mixing.domain_vectors import embeddings_paths

        paths = embeddings_paths(self.embeddings, "domain2vec")
        hist, (centroids, to_meta, num) = domain_histograms(paths, self.clustering, self.meta_domains, self.seed,
                                                            self.sample)
        missing = [d for d in ctx.domains if d not in hist]
        if missing:
            raise ConfigError(f"mixing=domain2vec: no embedded documents of domain(s) {missing} (embedded: "
                              f"{sorted(hist)}); add their embeddings to mixing.embeddings")
        t = self._target(hist, centroids, to_meta, num, paths[0])
        upper = None
        if self.max_epochs is not None and ctx.budget_tokens:
            tokens = ctx.num_train_tokens()
            upper = np.array([self.max_epochs * tokens[d] / ctx.budget_tokens for d in ctx.domains])
        r = huber_mixture(np.stack([hist[d] for d in ctx.domains], axis=1), t, self.huber_delta, upper)
        self.vectors = {d: [round(float(x), 6) for x in hist[d]] for d in ctx.domains}
        return {d: float(w) for d, w in zip(ctx.domains, r)}
