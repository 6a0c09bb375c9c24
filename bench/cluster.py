"""Benchmark: clustering N short unlabelled documents (hashing embedder, K=256), and faiss vs scikit-learn k-means.

    python bench/cluster.py --docs 100000,300000,1000000 --k 256 [--workers 2] [--out results/bench_cluster.json]

For each N: a synthetic corpus of N short documents (30-50 words from one of 64 topic vocabularies
plus common words, jsonl files of 100k documents) is written, then `mixtrain embed` (hashing,
64-d, fitted on 50k documents) and `mixtrain cluster` (K on a sample of 256 per centroid, every
document assigned, Ward 1.5, OUT/<cluster>/ written) run in this process; wall seconds of each step
and memory are recorded: the peak proportional set size of the whole process tree (this process and
its embedding workers, sampled every 0.5 s; shared pages counted once), and ru_maxrss of this process
and of its largest child.
Then the k-means step alone on the N vectors: faiss-cpu against scikit-learn KMeans (one init,
the same 20 iterations, the same sample, the same assignment of all N), in the same process, the
ratio sklearn/faiss. Purity of the clusters against the planted topics is printed as a sanity check.
"""

from __future__ import annotations

import argparse
import os
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def write_corpus(root: Path, n: int, seed: int = 0, topics: int = 64, per_file: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "nu", "re", "sa", "ti", "vo", "ze", "ba", "de", "fi", "go", "hu", "ja", "pe"]
    vocab = ["".join(rng.choice(syllables, size=3)) + str(t) for t in range(topics) for _ in range(40)]
    vocab = np.array(vocab).reshape(topics, 40)
    common = np.array("the a of and to in is it that for on with as was at by".split())
    truth = rng.integers(0, topics, size=n)
    root.mkdir(parents=True, exist_ok=True)
    for start in range(0, n, per_file):
        with open(root / f"part{start // per_file:04d}.jsonl", "w") as f:
            for i in range(start, min(n, start + per_file)):
                length = int(rng.integers(30, 50))
                own = rng.random(length) < 0.6
                words = np.where(own, rng.choice(vocab[truth[i]], size=length), rng.choice(common, size=length))
                f.write(json.dumps({"text": " ".join(words)}) + "\n")
    return truth


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of `pid` and all its descendants (MB): shared pages (the forked workers'
    copy-on-write view of the fitted embedder) are split among the processes sharing them, so the sum
    is what the process tree really holds in RAM."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue  # the process ended between the listing and the read
    return total


class PeakMemory:
    """Samples the tree's PSS every `interval_s` in a thread; `.peak_mb` after `stop()`."""

    def __init__(self, interval_s: float = 0.5):
        import threading

        self.peak_mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(os.getpid(), interval_s), daemon=True)
        self._thread.start()

    def _run(self, pid: int, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.peak_mb = max(self.peak_mb, _tree_pss_mb(pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def rss_mb() -> tuple[float, float]:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def kmeans_compare(vectors: np.ndarray, k: int, seed: int = 0) -> dict:
    from mixtrain.cluster.kmeans import assign, fit_centroids, sample_rows

    rows = sample_rows(len(vectors), 256 * k, seed)
    out = {}
    for backend in ("faiss", "sklearn"):
        t = time.perf_counter()
        centroids = fit_centroids(np.asarray(vectors[rows]), k, seed=seed, backend=backend)
        fit = time.perf_counter() - t
        labels, dist = assign(vectors, centroids, backend=backend)
        out[backend] = {"fit_s": fit, "total_s": time.perf_counter() - t, "inertia": float(dist.mean())}
    out["ratio_sklearn_over_faiss"] = out["sklearn"]["total_s"] / out["faiss"]["total_s"]
    return out


def purity(truth: np.ndarray, out: Path, docs: dict) -> float:
    import csv

    index = {(s, int(d)): i for i, (s, d) in enumerate(zip(docs["source"], docs["doc"]))}
    per = {}
    with open(out / "assignments.csv") as f:
        for r in csv.DictReader(f):
            i = int(r["source"][4:8]) * 100_000 + int(r["doc"])
            per.setdefault(r["cluster"], []).append(truth[i])
    return sum(np.bincount(v).max() for v in per.values()) / len(truth)


def run(n: int, k: int, workers: int, tmp: Path) -> dict:
    from mixtrain.cluster.pipeline import ClusterSettings, cluster_corpus
    from mixtrain.embed.pipeline import embed_corpus
    from mixtrain.embed.store import load_docs, load_vectors

    t = time.perf_counter()
    truth = write_corpus(tmp / f"raw{n}", n)
    write_s = time.perf_counter() - t
    memory = PeakMemory()
    t = time.perf_counter()
    embed_corpus(tmp / f"raw{n}", tmp / f"E{n}", num_workers=workers)
    embed_s = time.perf_counter() - t
    t = time.perf_counter()
    info = cluster_corpus(tmp / f"E{n}", tmp / f"OUT{n}", ClusterSettings(k=k))
    cluster_s = time.perf_counter() - t
    peak_tree_pss_mb = memory.stop()
    self_mb, child_mb = rss_mb()
    result = {"docs": n, "k": k, "workers": workers, "corpus_write_s": write_s, "embed_s": embed_s,
              "cluster_s": cluster_s, "total_s": embed_s + cluster_s, "peak_rss_mb": self_mb,
              "peak_child_rss_mb": child_mb,
              "peak_tree_pss_mb": peak_tree_pss_mb, "load_avg_1min_end": os.getloadavg()[0], "merged_clusters": len(info["names"]),
              "purity": purity(truth, tmp / f"OUT{n}", load_docs(tmp / f"E{n}", ["source", "doc"]))}
    result["kmeans"] = kmeans_compare(load_vectors(tmp / f"E{n}"), k)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", default="100000")
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_cluster") as tmp:
        for n in [int(x) for x in args.docs.split(",")]:
            r = run(n, args.k, args.workers, Path(tmp))
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
