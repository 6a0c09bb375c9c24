"""Benchmark of the mixture DECISION: law x optimiser on random synthetic worlds with a known optimum.

    python bench/optimiser.py [--worlds 50] [--first-seed 0] [--domains 8,17] [--runs 16,64] [--candidates 20000]
                              [--bootstrap 20] [--methods ridge/sampled,bimix/sampled,...] [--jobs 2]

SYNTHETIC EVIDENCE ONLY: the worlds are `mixtrain.laws.synthetic.World` (non-separable: every domain
learns from an effective share u = T r with cross-domain transfer and a broad "web" domain that helps
all, Chinchilla-like per-domain losses, a penalty for repeating a small domain > 4x its natural share)
with multiplicative noise `--noise` (0.5%) on the proxy losses. Proxy runs: `--runs` mixtures drawn
RegMix-style around the natural mixture (Dirichlet(c k n), c ~ logU(0.3, 3)), one step (the target).

Per world and method, the mixture the method writes is scored by the TRUE loss (equal importance):
  regret   true mean loss of the written mixture minus the true optimum's (nats; 0 is perfect)
  >unif%   share of worlds where the written mixture is truly worse than uniform
  fallbk%  share where the sampled optimiser wrote uniform (or natural / best run) instead of its proposal
  shrunk%  share where it wrote a blend of uniform and its proposal (step 5 of laws/optim/sampled.py)
  refused  worlds where the law refused the fit (too few runs for its parameters); uniform is scored
  median proposal regret  the sampled optimiser's proposal, written or not (what the fallback changed)
Methods (law/optimiser):
  */sampled   laws/optim/sampled.py, the default (candidates, B bootstrap refits, support cap 1.5x, then the step
              from uniform towards the proposal whose highest 60th percentile of (mixture - uniform) over this
              law's and each of two check laws' refits is lowest: laws/optim/bootstrap.py auto_check_law);
              ridge/sampled is the CLI default
  */sampled-nocheck  the same without the check law (this law's refits alone decide the step)
  */sampled-noavg  the same without the top-100 average as an extra candidate (average_top=0)
  */sampled-modelerr  the same with the interval widened by the law's CV error (model_error=True)
  */sampled-check-NAME  the same with check law(s) NAME (e.g. sampled-check-lightgbm, sampled-check-ridge+bimix)
  */sampled-former  step 5 as before 2026-12-08: one check law (ridge; for ridge bimix, lightgbm from 32 runs),
              refits pooled (today: two check laws, each law's own quantile must clear zero)
  bimix/slsqp the former default: SLSQP in the support box + TV 0.25 trust region (laws/optim/slsqp.py)
  lightgbm/top100  the RegMix recipe: LightGBM on the runs, the same number of Dirichlet candidates
              around the proxy mixtures, average of the top 100 (no support cap, no bootstrap)
  auto/sampled  `--law auto` (CV decision regret over every law) then the sampled optimiser
Reference rows: uniform, natural, best observed run (by its noisy observed loss).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

warnings.filterwarnings("ignore")
DEFAULT_METHODS = "ridge/sampled,bimix/sampled,bimix/slsqp,lightgbm/top100"


def regmix(law, M: np.ndarray, step: float, n: int, top: int, rng) -> np.ndarray:
    from mixtrain.laws.optim.candidates import dirichlet_around

    C = np.vstack([M, dirichlet_around(rng, M, n, (10.0, 30.0, 100.0))])
    f = law._predict(C, np.full(len(C), step)).mean(axis=1)
    r = C[np.argsort(f)[:top]].mean(axis=0)
    return r / r.sum()


def run_world(job) -> list[dict]:
    k, n_runs, seed, args = job
    from mixtrain.laws import fit_law, make_law
    from mixtrain.laws.optim.bootstrap import former_check_law
    from mixtrain.laws.optim.sampled import propose
    from mixtrain.laws.optim.slsqp import solve
    from mixtrain.laws.synthetic import World

    world = World(k, seed=10_000 * k + seed)
    table = world.proxy_table(n_runs, noise=args.noise, seed=seed)
    step = world.s_ref
    opt = world.mean_loss(world.optimum())
    uni = world.mean_loss(np.full(k, 1.0 / k))
    fin = table.L.mean(axis=1)
    rows = [{"method": "uniform", "regret": uni - opt, "worse": False},
            {"method": "natural", "regret": world.mean_loss(world.natural) - opt, "worse": world.mean_loss(world.natural) > uni},
            {"method": "best observed run", "regret": world.mean_loss(table.W[int(np.argmin(fin))]) - opt,
             "worse": world.mean_loss(table.W[int(np.argmin(fin))]) > uni}]
    natural = dict(zip(world.domains, world.natural))
    for method in args.methods.split(","):
        name, optimiser = method.split("/")
        t0 = time.time()
        row = {"method": method, "fallback": False, "refused": False}
        try:
            law = fit_law(table, "auto", cv_folds=5, seed=seed) if name == "auto" else \
                make_law(name).fit(table, cv_folds=5 if optimiser.startswith("sampled") else 0, seed=seed)
            if optimiser in ("sampled", "sampled-noavg", "sampled-modelerr", "sampled-nocheck", "sampled-former") \
                    or optimiser.startswith("sampled-check-"):
                former = {}
                if optimiser == "sampled-former":  # step 5 before 2026-12-08: one check law, refits pooled
                    former, optimiser = {"risk_pooling": "pooled"}, f"sampled-check-{former_check_law(law)}"
                p = propose(law, step, natural=natural, candidates=args.candidates, bootstrap=args.bootstrap, seed=seed,
                            **({"average_top": 0} if optimiser == "sampled-noavg" else {}), **former,
                            model_error=optimiser == "sampled-modelerr",
                            check_law=None if optimiser == "sampled-nocheck" else
                            optimiser.removeprefix("sampled-check-") if optimiser.startswith("sampled-check-") else "auto")
                r = np.array(list(p.weights.values()))
                row["fallback"] = p.chosen != "proposal" and not p.chosen.startswith("blend")
                row["shrunk"] = p.chosen.startswith("blend")
                row["proposal_regret"] = world.mean_loss(np.array(list(p.proposal.values()))) - opt
            elif optimiser == "slsqp":
                r = np.array(list(solve(law, step, seed=seed).weights.values()))
            elif optimiser == "top100":
                r = regmix(law, law.observed_mixtures, step, args.candidates, 100, np.random.default_rng(seed))
            else:
                raise SystemExit(f"unknown optimiser {optimiser!r} in --methods")
        except ValueError:
            row["refused"], r = True, np.full(k, 1.0 / k)
        true = world.mean_loss(r)
        row.update(regret=true - opt, worse=true > uni + 1e-12, seconds=time.time() - t0)
        rows.append(row)
    for row in rows:
        row.update(k=k, runs=n_runs, seed=seed)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0, help="world seeds first-seed .. first-seed + worlds - 1")
    ap.add_argument("--domains", default="8,17")
    ap.add_argument("--runs", default="16,64")
    ap.add_argument("--candidates", type=int, default=20_000)
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--rows-out", default=None, help="write every (world, method) row as JSON")
    args = ap.parse_args()
    jobs = [(int(k), int(n), s, args) for k in args.domains.split(",") for n in args.runs.split(",")
            for s in range(args.first_seed, args.first_seed + args.worlds)]
    t0 = time.time()
    with Pool(args.jobs) as pool:
        results = tqdm(pool.imap(run_world, jobs, chunksize=1), total=len(jobs), desc="worlds", file=sys.stderr)
        rows = [r for rs in results for r in rs]
    wall = time.time() - t0
    methods = list(dict.fromkeys(r["method"] for r in rows))
    settings = list(dict.fromkeys((r["k"], r["runs"]) for r in rows)) + [("all", "all")]
    print(f"| domains | runs | method | median regret | mean regret | p90 regret | >uniform % | fallback % | shrunk % | refused | "
          "median proposal regret | s/world |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k, n in settings:
        for m in methods:
            sel = [r for r in rows if r["method"] == m and (k == "all" or (r["k"], r["runs"]) == (k, n))]
            reg = np.array([r["regret"] for r in sel])
            worse = 100 * np.mean([r["worse"] for r in sel])
            fb = 100 * np.mean([r.get("fallback", False) for r in sel])
            sh = 100 * np.mean([r.get("shrunk", False) for r in sel])
            ref = sum(r.get("refused", False) for r in sel)
            sec = np.mean([r.get("seconds", 0.0) for r in sel])
            prop = [r["proposal_regret"] for r in sel if "proposal_regret" in r]
            prop = f"{np.median(prop):.4f}" if prop else "-"
            print(f"| {k} | {n} | {m} | {np.median(reg):.4f} | {reg.mean():.4f} | {np.quantile(reg, 0.9):.4f} | "
                  f"{worse:.1f} | {fb:.1f} | {sh:.1f} | {ref} | {prop} | {sec:.2f} |")
    paired_summary(rows, methods)
    if args.rows_out:
        with open(args.rows_out, "w") as f:
            json.dump(rows, f, default=float)
    print(f"\noptimiser bench: {len(jobs)} worlds, candidates {args.candidates}, bootstrap {args.bootstrap}, "
          f"noise {args.noise}, {args.jobs} job(s), wall {wall:.0f} s")


def paired_summary(rows: list[dict], methods: list[str]) -> None:
    """The first --methods entry against every other method, world by world (the same worlds): median of
    the paired regret difference, share of worlds where the first is better / worse, Wilcoxon signed-rank p."""
    from scipy.stats import wilcoxon

    first = [m for m in methods if "/" in m][:1]
    if not first:
        return
    a = {(r["k"], r["runs"], r["seed"]): r["regret"] for r in rows if r["method"] == first[0]}
    print(f"\n| {first[0]} vs | worlds | median paired difference | {first[0]} better % | worse % | Wilcoxon p |")
    print("|---|---|---|---|---|---|")
    for m in methods:
        if m == first[0]:
            continue
        b = {(r["k"], r["runs"], r["seed"]): r["regret"] for r in rows if r["method"] == m}
        keys = sorted(set(a) & set(b))
        d = np.array([a[k] - b[k] for k in keys])
        p = wilcoxon(d).pvalue if np.any(d != 0) else 1.0
        print(f"| {m} | {len(d)} | {np.median(d):+.4f} | {100 * np.mean(d < -1e-12):.1f} | {100 * np.mean(d > 1e-12):.1f} "
              f"| {p:.3g} |")


if __name__ == "__main__":
    main()
