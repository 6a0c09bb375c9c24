"""Domain2Vec's law feature on the command line: fit a law on meta-domain mixtures, score other domains.

    mixtrain fit-meta --vectors-from E [E2 ...] [--clustering OUT | --meta-domains 64] --out V.json
    mixtrain fit-meta --table A.csv [--table B.csv ...] --domain-vectors V.json [--law ridge] --out law.json
    mixtrain fit-meta --law-file law.json --domain-vectors V.json --predict MIX.csv [--step S] --out PRED.csv

Place in the flow: embed/ (E) + cluster/ (meta-domains) -> V.json (each domain's share of documents per
meta-domain, as mixing=domain2vec computes it) ; `mixtrain collect` tables of one or more proxy sweeps,
over any domain sets -> **meta_fit.py** (laws/meta_domains.py: every run's mixture r becomes V^T r, the
tables are joined in meta-domain space, any registered law or `auto` is fitted there) -> law.json, and
predictions for mixtures over domains the law never saw a run of (MIX.csv: `w/<domain>` columns of any
domains in V.json). bench/domain2vec_law.py measures when this helps (docs/embed_cluster.md): a few runs on
the new domain set joined with many runs on an old set beat a law fitted on the few runs alone.
"""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np

from mixtrain.laws import fit_law, load_law
from mixtrain.laws.meta_domains import meta_table, read_domain_vectors, vector_matrix
from mixtrain.laws.table import WEIGHT_PREFIX, ObservationTable, make_table, read_mixtures, read_table


def join_tables(tables: list[ObservationTable]) -> ObservationTable:
    """Meta-domain tables of several sweeps as one (same eval domains; run names kept apart per table)."""
    first = tables[0]
    for t in tables[1:]:
        if t.eval_domains != first.eval_domains:
            raise ValueError(f"{t.source}: eval domains {list(t.eval_domains)} differ from {first.source}'s "
                             f"{list(first.eval_domains)}; collect the sweeps with the same eval domains")
    runs = [f"t{i}/{r}" if len(tables) > 1 else r for i, t in enumerate(tables) for r in t.runs]
    tokens = np.concatenate([t.tokens for t in tables]) if all(t.tokens is not None for t in tables) else None
    return make_table(first.train_domains, first.eval_domains, runs, np.concatenate([t.steps for t in tables]),
                      np.vstack([t.W for t in tables]), np.vstack([t.L for t in tables]), tokens,
                      source=" + ".join(t.source for t in tables))


def _vectors_from(args) -> None:
    from pathlib import Path

    from mixtrain.mixing.domain2vec import domain_histograms

    hist, (_, _, num) = domain_histograms([Path(p) for p in args.vectors_from], args.clustering, args.meta_domains,
                                          args.seed, args.sample)
    with open(args.out, "w") as f:
        json.dump({d: [float(x) for x in v] for d, v in sorted(hist.items())}, f, indent=1)
    print(f"fit-meta: {len(hist)} domain vectors over {num} meta-domains -> {args.out}")


def _fit(args) -> None:
    from mixtrain.fitting.fit import quality_table

    vectors = read_domain_vectors(args.domain_vectors)
    table = join_tables([meta_table(read_table(t), vectors) for t in args.table])
    law = fit_law(table, args.law, cv_folds=args.folds, seed=args.seed)
    print(quality_table(law))
    law.to_json(args.out)
    print(f"fit-meta: wrote {args.out} (a law over {len(table.train_domains)} meta-domains; predict with "
          f"--law-file {args.out} --domain-vectors {args.domain_vectors})")


def _predict(args) -> None:
    law = load_law(args.law_file)
    vectors = read_domain_vectors(args.domain_vectors)
    with open(args.predict, newline="") as f:
        header = next(csv.reader(f), [])
    domains = [c[len(WEIGHT_PREFIX):] for c in header if c.startswith(WEIGHT_PREFIX)]
    _, rows, W, steps = read_mixtures(args.predict, domains)
    V = vector_matrix(domains, vectors, args.predict)
    if V.shape[1] != len(law.train_domains):
        raise ValueError(f"{args.domain_vectors}: vectors over {V.shape[1]} meta-domains, the law in {args.law_file} "
                         f"over {len(law.train_domains)}; use the vectors the law was fitted with")
    if steps is None:
        if args.step is None:
            raise ValueError(f"{args.predict} has no 'step' column: pass --step S")
        steps = np.full(len(rows), float(args.step))
    from mixtrain.fitting.fit import write_predictions

    write_predictions(args.out, header, rows, steps, law.eval_domains, law.predict(W @ V, steps))
    print(f"fit-meta: predicted {len(rows)} mixtures over {domains} with {law.name} ({args.law_file}) -> {args.out}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="mixtrain fit-meta", description=__doc__.split("\n")[0])
    p.add_argument("--vectors-from", nargs="+", metavar="E", help="embeddings folders: write V.json (--out)")
    p.add_argument("--clustering", help="a `mixtrain cluster` OUT whose clusters are the meta-domains")
    p.add_argument("--meta-domains", type=int, default=64, help="k-means meta-domains when --clustering is not given")
    p.add_argument("--sample", type=int, default=200_000, help="documents the meta-domains are fitted on")
    p.add_argument("--table", action="append", help="an observation table (repeat for sweeps over other domains)")
    p.add_argument("--domain-vectors", help="V.json: {domain: [share per meta-domain]}")
    p.add_argument("--law", default="ridge", help="a registered law or auto (fitted on the meta-domain mixtures)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--law-file")
    p.add_argument("--predict", metavar="MIX.csv")
    p.add_argument("--step", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.vectors_from:
        return _vectors_from(args)
    if not args.domain_vectors:
        p.error("--domain-vectors V.json is needed (write it with --vectors-from E ... --out V.json)")
    if args.predict:
        if not args.law_file:
            p.error("--predict needs --law-file")
        return _predict(args)
    if not args.table:
        p.error("give --table T.csv (fit), --predict MIX.csv (predict) or --vectors-from E (vectors)")
    return _fit(args)


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain fit-meta")
