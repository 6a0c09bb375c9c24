"""Does Domain2Vec's law feature help? A law fitted on meta-domain mixtures of domain set A scores set B.

    python bench/domain2vec_law.py [--worlds 20] [--meta 8] [--domains 6] [--runs-a 64] [--runs-b 8,16,32]
                                   [--vector-noise 0,0.3] [--law ridge] [--domain-effect 0]
                                   [--out results.jsonl]

SYNTHETIC EVIDENCE ONLY. Per world (seed): M meta-domains with a known loss (laws/synthetic.py's World
over M "domains": transfer, Chinchilla-like per meta-domain loss, repetition penalty); domain sets A and
B of `--domains` domains each, every domain a mixture of meta-domains v ~ Dirichlet(0.3) (a few
meta-domains each: the Distribution Alignment Assumption holds exactly: a domain mixture r trains on
meta-domain mixture p = V^T r and the loss is World.loss(p)). Proxy runs: `--runs-a` on A, n_B on B
(Dirichlet mixtures around uniform, RegMix-style concentrations), 0.5% multiplicative noise.
The law sees estimated vectors: V_est = (1 - eps) V + eps Dirichlet(1) noise per domain (`--vector-noise`).
`--domain-effect X` breaks the assumption: each domain also has its own quality q_i ~ U(-1, 1), and
every eval loss gains X * sum_i r_i q_i (a domain is then more than its meta-domain histogram).

Compared on 1000 held-out Dirichlet mixtures over B (noise-free true mean loss over the M eval domains):
  plain_B    the law fitted on B's n_B runs, on r                  (what `mixtrain fit` does today)
  meta_A     the law fitted on A's runs, on V_A r; B scored via V_B r (no run on B at all)
  meta_AB    the law fitted on A's and B's runs, on V r
Metrics: rho (Spearman of predicted vs true mean loss) and pick% (top-1 regret: the true loss of the
mixture the law ranks first minus the best of the 1000, relative to the best). A refused fit (too few
runs for the law) is counted as 'refused' and left out of that method's means.
Per-world results are appended to --out as they finish (a stopped run still reports).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixtrain.laws.cross_validation import spearman  # noqa: E402
from mixtrain.laws.law_registry import make_law  # noqa: E402
from mixtrain.laws.meta_domains import MetaDomainLaw  # noqa: E402
from mixtrain.laws.synthetic import World, synthetic_table  # noqa: E402


def domain_set(rng, k: int, m: int) -> np.ndarray:
    return rng.dirichlet(np.full(m, 0.3), size=k) + 1e-9


def true_loss(world: World, V: np.ndarray, q: np.ndarray, effect: float):
    return lambda W_, s: world.loss(W_ @ V, s) + effect * (W_ @ q)[:, None]


def runs_table(world: World, V: np.ndarray, q: np.ndarray, effect: float, n: int, names, prefix: str, rng, seed: int):
    k = len(V)
    c = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n))
    W = np.array([rng.dirichlet(np.full(k, ci) + 1e-3) for ci in c])
    return synthetic_table(true_loss(world, V, q, effect), W, [world.s_ref], names,
                           eval_domains=world.domains, noise=0.005, seed=seed, run_prefix=prefix)


def score(pred_mean: np.ndarray, true_mean: np.ndarray) -> dict:
    best = float(true_mean.min())
    return {"rho": float(spearman(pred_mean, true_mean)),
            "pick": float((true_mean[int(np.argmin(pred_mean))] - best) / best * 100)}


def one_world(seed: int, args, n_b: int, eps: float) -> dict:
    rng = np.random.default_rng(seed)
    world = World(args.meta, seed)
    VA, VB = domain_set(rng, args.domains, args.meta), domain_set(rng, args.domains, args.meta)
    A = [f"a{i}" for i in range(args.domains)]
    B = [f"b{i}" for i in range(args.domains)]
    est = {d: (1 - eps) * v + eps * rng.dirichlet(np.ones(args.meta)) for d, v in zip(A + B, np.vstack([VA, VB]))}
    qA, qB = rng.uniform(-1, 1, args.domains), rng.uniform(-1, 1, args.domains)
    table_a = runs_table(world, VA, qA, args.domain_effect, args.runs_a, A, "A", rng, seed * 7 + 1)
    table_b = runs_table(world, VB, qB, args.domain_effect, n_b, B, "B", rng, seed * 7 + 2)
    cand = rng.dirichlet(np.ones(args.domains), size=1000)
    true_mean = true_loss(world, VB, qB, args.domain_effect)(cand, np.full(len(cand), world.s_ref)).mean(axis=1)
    steps = np.full(len(cand), world.s_ref)
    out = {"seed": seed, "n_b": n_b, "eps": eps}
    fits = {
        "plain_B": lambda: make_law(args.law).fit(table_b, cv_folds=0).predict(cand, steps),
        "meta_A": lambda: MetaDomainLaw(args.law, est).fit(table_a, cv_folds=0).predict(cand, B, steps),
        "meta_AB": lambda: _meta_ab(args, est, table_a, table_b, cand, B, steps),
    }
    for name, fit in fits.items():
        try:
            out[name] = score(fit().mean(axis=1), true_mean)
        except ValueError as e:
            out[name] = {"refused": str(e)[:120]}
    return out


def _meta_ab(args, est, table_a, table_b, cand, B, steps) -> np.ndarray:
    """A's and B's runs together in meta-domain space (their domain lists differ, their meta-domains agree)."""
    from mixtrain.laws.meta_domains import meta_table
    from mixtrain.laws.table import make_table

    ta, tb = meta_table(table_a, est), meta_table(table_b, est)
    both = make_table(ta.train_domains, ta.eval_domains, np.concatenate([ta.runs, tb.runs]),
                      np.concatenate([ta.steps, tb.steps]), np.vstack([ta.W, tb.W]), np.vstack([ta.L, tb.L]))
    law = make_law(args.law).fit(both, cv_folds=0)
    V = np.stack([est[d] for d in B])
    return law.predict(cand @ V, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worlds", type=int, default=20)
    p.add_argument("--meta", type=int, default=8)
    p.add_argument("--domains", type=int, default=6)
    p.add_argument("--runs-a", type=int, default=64)
    p.add_argument("--runs-b", default="8,16,32")
    p.add_argument("--vector-noise", default="0,0.3")
    p.add_argument("--law", default="ridge")
    p.add_argument("--domain-effect", type=float, default=0.0)
    p.add_argument("--out", default="domain2vec_law.jsonl")
    p.add_argument("--report", metavar="JSONL", help="only print the table of a (possibly cut short) earlier --out")
    args = p.parse_args()
    cells = [(n, e) for n in map(int, args.runs_b.split(",")) for e in map(float, args.vector_noise.split(","))]
    started = time.time()
    if args.report:
        rows = [json.loads(line) for line in open(args.report)]
        cells = sorted({(r["n_b"], r["eps"]) for r in rows})
        args.law, args.domain_effect = rows[0]["law"], rows[0].get("domain_effect", 0.0)
    else:
        rows = []
        with open(args.out, "a") as f:
            for seed in tqdm(range(args.worlds), desc="worlds"):
                for n_b, eps in cells:
                    row = {**one_world(seed, args, n_b, eps), "law": args.law, "domain_effect": args.domain_effect}
                    rows.append(row)
                    f.write(json.dumps(row) + "\n")
                    f.flush()
    worlds = len({r["seed"] for r in rows})
    print(f"{len(rows)} cells ({worlds} worlds) in {time.time() - started:.0f} s; law {args.law}, domain effect "
          f"{args.domain_effect}; means over worlds (refused fits left out)")
    print(f"{'n_B':>4} {'eps':>4} | " + " | ".join(f"{m:>22}" for m in ("plain_B rho/pick%", "meta_A rho/pick%",
                                                                        "meta_AB rho/pick%")))
    for n_b, eps in cells:
        sel = [r for r in rows if r["n_b"] == n_b and r["eps"] == eps]
        cols = []
        for m in ("plain_B", "meta_A", "meta_AB"):
            ok = [r[m] for r in sel if "rho" in r[m]]
            refused = len(sel) - len(ok)
            cols.append(f"{np.mean([o['rho'] for o in ok]):.3f} / {np.mean([o['pick'] for o in ok]):.2f}"
                        + (f" ({refused} ref)" if refused else "") if ok else "all refused")
        print(f"{n_b:>4} {eps:>4} | " + " | ".join(f"{c:>22}" for c in cols))


if __name__ == "__main__":
    main()
