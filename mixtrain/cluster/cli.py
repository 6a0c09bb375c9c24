"""`mixtrain cluster RAW --out OUT --k K`: domains from unlabelled text (argparse entry point).

Place in the flow: RAW (+ its embeddings E, or embedded here with the hashing embedder) ->
**cli.py** -> cluster/pipeline.py -> OUT/<cluster>/ -> `mixtrain prepare data=dir data.root=OUT`.

    mixtrain cluster RAW --out OUT --k 64                               # embed (hashing), k-means, Ward 1.5
    mixtrain cluster RAW --out OUT --k 256 --merge-to 20 --embeddings E # E from `mixtrain embed RAW --out E`
    mixtrain cluster RAW --out OUT --k 64 --quality quality --prune-below 3 --embeddings E   # E kept --fields quality
    mixtrain cluster RAW --out OUT --k 64 --quality mypkg.scores:quality --prune-below 0.5   # a callable text -> float
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from mixtrain.errors import MixtrainError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixtrain cluster", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="raw corpus folder (the text files to cluster)")
    p.add_argument("--out", required=True, help="output folder: OUT/<cluster>/ (data=dir), assignments.csv, report.md")
    p.add_argument("--k", type=int, required=True, help="k-means clusters before pruning and merging")
    p.add_argument("--embeddings", default=None, help="embeddings of RAW (mixtrain embed); default: embed RAW here")
    p.add_argument("--merge-distance", type=float, default=1.5, help="Ward cut distance (CLIMB: 1.5); <=0: no merge")
    p.add_argument("--merge-to", type=int, default=None, help="instead: merge into at most this many clusters")
    p.add_argument("--quality", default=None, help="pruning score: a column of the embeddings or module:function")
    p.add_argument("--prune-below", type=float, default=None, help="drop clusters whose mean quality is below this")
    p.add_argument("--sample", type=int, default=None, help="documents k-means is fitted on (default 256 per cluster)")
    p.add_argument("--backend", default="sklearn", help="sklearn (default: faster and better in bench/cluster.py) | faiss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=64, help="when embedding here: vector size")
    p.add_argument("--text-field", default="text")
    p.add_argument("--txt-mode", default="file", help="file | lines | blocks")
    p.add_argument("--num-workers", type=int, default=1, help="when embedding here: processes")
    return p


def run(args: argparse.Namespace) -> dict:
    from mixtrain.cluster.pipeline import ClusterSettings, cluster_corpus, embeddings_for
    from mixtrain.embed.pipeline import embed_corpus

    settings = ClusterSettings(
        k=args.k, merge_distance=(args.merge_distance if args.merge_distance and args.merge_distance > 0 else None),
        merge_to=args.merge_to, quality=args.quality, prune_below=args.prune_below, sample=args.sample,
        backend=args.backend, seed=args.seed)
    embeddings = embeddings_for(args.root, args.embeddings)
    scratch = None
    if embeddings is None:
        out = Path(args.out)
        scratch = out.with_name(f".{out.name}.embed")
        embed_corpus(args.root, scratch, options={"dim": args.dim}, seed=args.seed, text_field=args.text_field,
                     txt_mode=args.txt_mode, num_workers=args.num_workers)
        embeddings = scratch
    try:
        return cluster_corpus(embeddings, args.out, settings)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)  # OUT/.embeddings holds its files (hard links or copies)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        info = run(args)
    except MixtrainError as e:
        print(f"mixtrain cluster: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{len(info['names'])} clusters from {info['num_docs']:,} documents ({info['num_pruned_docs']:,} pruned) "
          f"-> {args.out}/<cluster>/; see {args.out}/report.md")
    for name, size in zip(info["names"], info["sizes"]):
        print(f"  {name:<40} {size:>10,}")
    print(f"next: mixtrain prepare data=dir data.root={args.out} data_dir=DIR")


if __name__ == "__main__":
    main()
