"""`mixtrain embed RAW --out E`: one vector per document of a raw corpus (argparse entry point).

Place in the flow: RAW -> **cli.py** -> embed/pipeline.py -> E (embed/store.py) -> `mixtrain cluster`,
`mixing=chameleon` / `mixing=domain2vec` (mixing.embeddings=E).

    mixtrain embed RAW --out E                                  # hashing embedder (default), 64-d
    mixtrain embed RAW --out E --embedder hf --model-path DIR   # a local encoder folder, never downloaded
    mixtrain embed NEW_RAW --out E2 --fitted E                  # the same fitted embedder as E (no refit)
    mixtrain embed RAW --out E --embedder run --run RUN         # a run's middle-layer hidden states (Chameleon)
    mixtrain embed RAW --out E --fields quality                 # keep a numeric field (a pruning score)
    sbatch --array=0-7 --wrap "mixtrain embed RAW --out E"      # 8 tasks, a share each; the last one joins
"""

from __future__ import annotations

import argparse
import sys

from mixtrain.errors import MixtrainError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixtrain embed", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="raw corpus folder (any nesting; a first-level folder is a document's domain)")
    p.add_argument("--out", required=True, help="embeddings folder to write (replaced if it exists)")
    p.add_argument("--embedder", default="hashing", help="hashing (default) | hf | run")
    p.add_argument("--fitted", default=None, help="an embeddings folder whose fitted embedder to reuse (no refit)")
    p.add_argument("--dim", type=int, default=64, help="hashing: vector size (TruncatedSVD components)")
    p.add_argument("--max-chars", type=int, default=4000, help="hashing: characters of a document read")
    p.add_argument("--model-path", default=None, help="hf: local encoder folder")
    p.add_argument("--max-tokens", type=int, default=512, help="hf, run: tokens of a document read")
    p.add_argument("--run", default=None, help="run: a mixtrain run directory, checkpoint or HF export")
    p.add_argument("--layer", type=int, default=None, help="run: hidden state after this block (default: the middle)")
    p.add_argument("--fit-docs", type=int, default=50_000, help="documents the embedder is fitted on (a seeded sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--num-workers", type=int, default=1, help="processes that transform batches")
    p.add_argument("--text-field", default="text", help="jsonl field / parquet column of the text")
    p.add_argument("--txt-mode", default="file", help="file | lines | blocks (how a .txt file splits into documents)")
    p.add_argument("--fields", default="", help="comma-separated numeric jsonl/parquet fields to keep (e.g. quality)")
    p.add_argument("--node-rank", type=int, default=None, help="this task's rank (default: SLURM/torchrun variables)")
    p.add_argument("--num-nodes", type=int, default=None, help="number of tasks (default: SLURM/torchrun variables)")
    p.add_argument("--join-only", action="store_true", help="join the tasks' complete shares into --out; embed nothing")
    p.add_argument("--setup-timeout-s", type=float, default=3600.0, help="how long tasks > 0 wait for task 0's fit")
    return p


def main(argv: list[str] | None = None) -> None:
    from mixtrain.embed.tasks import embed_tasks

    args = parser().parse_args(argv)
    fields = tuple(f for f in args.fields.split(",") if f)
    try:
        manifest = embed_tasks(
            args.root, args.out, node_rank=args.node_rank, num_nodes=args.num_nodes, join_only=args.join_only,
            setup_timeout_s=args.setup_timeout_s, embedder=args.embedder, fitted=args.fitted, fit_docs=args.fit_docs, seed=args.seed,
            options={"dim": args.dim, "max_chars": args.max_chars, "model_path": args.model_path,
                     "max_tokens": args.max_tokens, "run": args.run, "layer": args.layer},
            batch_size=args.batch_size, num_workers=args.num_workers, text_field=args.text_field,
            txt_mode=args.txt_mode, fields=fields)
    except MixtrainError as e:
        print(f"mixtrain embed: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if manifest is None:
        print(f"embedded this task's share of {args.root}; the last task to finish joins it into {args.out}")
        return
    skipped = f"; skipped {manifest['num_skipped']} ({manifest['skipped']}, listed in {args.out}/skipped.csv)" \
        if manifest["num_skipped"] else ""
    print(f"embedded {manifest['num_docs']:,} documents of {manifest['num_files']} files -> {args.out} "
          f"({manifest['embedder']['embedder']}, dim {manifest['dim']}){skipped}")


if __name__ == "__main__":
    main()
