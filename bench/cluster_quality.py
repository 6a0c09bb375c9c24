"""Evidence: how well `mixtrain cluster` recovers the demo corpus's domains once their labels are removed,
and the weights chameleon and domain2vec give the demo domains and the found clusters.

    python bench/cluster_quality.py [--k 20] [--seeds 0,1,2] [--out results/cluster_quality.json]

The demo corpus (mixtrain/prepare/demo_corpus.py: code, cpp, prose, legal, data; 300 kB per domain)
is written with its labels, and again as 4 shuffled unlabelled jsonl files. For each seed:
`embed` (hashing, 64-d) + `cluster` with K k-means clusters, merged (a) by the Ward distance cut
1.5 (CLIMB's) and (b) into 5 clusters (`--merge-to 5`, the true count); purity and NMI of the
final clusters against the hidden labels. Then the weights of chameleon (lambda 10, tau 5) and
domain2vec (target: the held-out `legal` domain; meta-domains: 16 k-means clusters) on the
labelled domains, next to uniform and natural (documents' share of characters).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def unlabelled_copy(raw: Path, out: Path, seed: int) -> dict[tuple[str, int], str]:
    docs = []
    for domain_file in sorted(raw.glob("*/demo.jsonl")):
        docs += [(domain_file.parent.name, line) for line in domain_file.read_text().splitlines() if line.strip()]
    order = np.random.default_rng(seed).permutation(len(docs))
    out.mkdir(parents=True)
    truth = {}
    for f in range(4):
        with open(out / f"crawl{f}.jsonl", "w") as fh:
            for doc, i in enumerate(order[f::4]):
                fh.write(docs[i][1] + "\n")
                truth[(f"crawl{f}.jsonl", doc)] = docs[i][0]
    return truth


def scores(truth, out: Path) -> dict:
    import csv

    from sklearn.metrics import normalized_mutual_info_score

    found = {}
    with open(out / "assignments.csv") as f:
        for r in csv.DictReader(f):
            found[(r["source"], int(r["doc"]))] = r["cluster"]
    keys = [k for k in truth if k in found]
    groups = {}
    for k in keys:
        groups.setdefault(found[k], []).append(truth[k])
    purity = sum(max(v.count(t) for t in set(v)) for v in groups.values()) / len(keys)
    return {"clusters": len(groups), "purity": round(purity, 4), "documents": len(keys),
            "nmi": round(normalized_mutual_info_score([truth[k] for k in keys], [found[k] for k in keys]), 4)}


def weights(raw: Path, embeddings: Path) -> dict:
    from mixtrain.embed.store import load_docs
    from mixtrain.mixing import build_mixing
    from mixtrain.mixing.base import DataContext

    docs = load_docs(embeddings, ["domain", "num_chars"])
    train = ["code", "cpp", "prose", "data"]
    chars = {d: int(docs["num_chars"][docs["domain"] == d].sum()) for d in train}
    ctx = DataContext(data_dir=str(raw), domains=train, stats={d: {"num_train_tokens": chars[d]} for d in train})
    out = {"uniform": {d: 0.25 for d in train}, "natural": {d: chars[d] / sum(chars.values()) for d in train}}
    out["chameleon"] = build_mixing({"strategy": "chameleon", "embeddings": str(embeddings)}).strategy.initial_weights(ctx)
    out["domain2vec(target=legal)"] = build_mixing({"strategy": "domain2vec", "embeddings": str(embeddings),
                                                    "target": ["legal"], "meta_domains": 16}).strategy.initial_weights(ctx)
    return {k: {d: round(float(v), 3) for d, v in w.items()} for k, w in out.items()}


def main() -> None:
    from mixtrain.cluster.pipeline import ClusterSettings, cluster_corpus
    from mixtrain.embed.pipeline import embed_corpus
    from mixtrain.prepare.demo_corpus import build_demo_corpus

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--bytes-per-domain", type=int, default=300_000)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    result = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="cluster_quality") as tmp:
        tmp = Path(tmp)
        build_demo_corpus(tmp / "raw", max_bytes_per_domain=args.bytes_per_domain)
        embed_corpus(tmp / "raw", tmp / "E_labelled")
        result["weights"] = weights(tmp / "raw", tmp / "E_labelled")
        for seed in [int(s) for s in args.seeds.split(",")]:
            truth = unlabelled_copy(tmp / "raw", tmp / f"unlabelled{seed}", seed)
            embed_corpus(tmp / f"unlabelled{seed}", tmp / f"E{seed}", seed=seed)
            for label, settings in (("ward-1.5", ClusterSettings(k=args.k, seed=seed)),
                                    ("merge-to-5", ClusterSettings(k=args.k, merge_to=5, seed=seed))):
                out = tmp / f"OUT{seed}-{label}"
                info = cluster_corpus(tmp / f"E{seed}", out, settings)
                row = {"seed": seed, "merge": label, **scores(truth, out), "names": info["names"][:8]}
                result["runs"].append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps(result["weights"], indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
