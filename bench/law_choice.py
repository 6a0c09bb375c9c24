"""Benchmark: does `law="auto"` flip on noise? The former rule (one 5-fold split, lowest top-1/top-3 regret,
ties to the fewest parameters) vs the rule of laws/law_choice.py, on synthetic worlds and a real table.

    python bench/law_choice.py [--worlds 12] [--runs 16,64] [--domains 8] [--real results/held-out-size-2026-12-04/table.csv]

Place in the flow: laws/synthetic.World (truth) -> proxy table -> every law's cross-validation under 9 fold
seeds -> both rules replayed on the same CV numbers -> stability, held-out ranking, decision regret.

Per world (paired: both rules see the same CV results):
* stability under fold reseeding: the former rule chooses once per fold seed in {0, 3, 6}; the new rule once per
  seed triple {0,1,2}, {3,4,5}, {6,7,8}. Stable = the 3 choices agree.
* held-out ranking: every law fitted on all runs ranks 200 fresh mixtures (the same design) by predicted mean
  loss; Spearman against the true mean loss. Reported: the chosen law's rank among the candidates (1 = best)
  and whether it is the worst.
* decision regret (with --regret): the default optimiser (ridge's check law rule, 4,000 candidates, 5 refits)
  with the chosen law, true regret against the world's optimum.
The real table: one size's runs (the largest count), stability only (no truth for the other two).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mixtrain.laws import LAWS, spearman  # noqa: E402
from mixtrain.laws.cross_validation import cross_validate  # noqa: E402
from mixtrain.laws.law_choice import AUTO_MARGIN, DEFAULT_LAW, cv_score  # noqa: E402
from mixtrain.laws.optim.sampled import propose  # noqa: E402
from mixtrain.laws.synthetic import World  # noqa: E402
from mixtrain.laws.table import read_table  # noqa: E402

SEEDS = range(9)


def cv_all(table) -> tuple[dict, dict]:
    """(fitted laws, name -> [cv dict per seed]) for every auto candidate that fits (run-count rule ignored: applied later)."""
    fitted, cvs = {}, {}
    for name, cls in LAWS.items():
        if not getattr(cls, "auto_candidate", True):
            continue
        try:
            law = cls().fit(table, cv_folds=0)
        except ValueError:
            continue
        res = [cross_validate(law, table, folds=5, seed=s) for s in SEEDS]
        if all(cv_score(c) is not None for c in res):
            fitted[name], cvs[name] = law, res
    return fitted, cvs


def old_rule(cvs: dict, seed: int) -> str:
    """The former criterion (laws/__init__.py before issue 32): one split, regret with a 10% tie band, fewest params."""
    reg = {n: 0.5 * (c[seed]["regret_top1"] + c[seed]["regret_topk"]) for n, c in cvs.items()}
    scale = max(c[seed]["regret_random"] for c in cvs.values())
    best = min(reg.values())
    tied = [n for n in cvs if reg[n] <= best + 0.10 * scale]
    return min(tied, key=lambda n: (_params[n], reg[n]))


_params: dict[str, int] = {}


def new_rule(cvs: dict, seeds: list[int], n_runs: int) -> str:
    ok = {n: c for n, c in cvs.items() if n_runs >= getattr(LAWS[n], "auto_min_runs", 0)}
    scores = {n: [cv_score(c[s]) for s in seeds] for n, c in ok.items()}
    mean = {n: float(np.mean(v)) for n, v in scores.items()}
    if DEFAULT_LAW not in ok:
        return min(mean, key=mean.get)
    win = [n for n in ok if n != DEFAULT_LAW and mean[n] < mean[DEFAULT_LAW] - AUTO_MARGIN
           and all(a < b for a, b in zip(scores[n], scores[DEFAULT_LAW]))]
    return min(win, key=mean.get) if win else DEFAULT_LAW


def choices(cvs: dict, n_runs: int) -> tuple[list[str], list[str]]:
    return [old_rule(cvs, s) for s in (0, 3, 6)], [new_rule(cvs, [s, s + 1, s + 2], n_runs) for s in (0, 3, 6)]


def world_row(k: int, n: int, seed: int, regret: bool) -> dict:
    world = World(k, seed)
    table = world.proxy_table(n, seed=seed)
    fitted, cvs = cv_all(table)
    for name, law in fitted.items():
        _params[name] = law.n_params()
    old, new = choices(cvs, n)
    rng = np.random.default_rng(10_000 + seed)
    c = np.exp(rng.uniform(np.log(0.3), np.log(3.0), 200))
    H = np.array([rng.dirichlet(ci * k * world.natural + 1e-3) for ci in c])
    truth = world.loss(H, np.full(200, world.s_ref)).mean(axis=1)
    rho = {name: spearman(law._predict(H, np.full(200, world.s_ref)).mean(axis=1), truth) for name, law in fitted.items()}
    ranked = sorted(rho, key=rho.get, reverse=True)
    row = {"k": k, "n": n, "seed": seed, "old": old, "new": new, "rho": rho,
           "rank_old": ranked.index(old[0]) + 1, "rank_new": ranked.index(new[0]) + 1, "n_laws": len(ranked)}
    if regret:
        opt = world.mean_loss(world.optimum())
        row["regret"] = {}
        for name in {old[0], new[0]}:
            p = propose(fitted[name], world.s_ref, candidates=4000, bootstrap=5, seed=seed)
            row["regret"][name] = world.mean_loss(np.array(list(p.weights.values()))) - opt
    return row


def summary(rows: list[dict], label: str) -> list[str]:
    st_old = np.mean([len(set(r["old"])) == 1 for r in rows])
    st_new = np.mean([len(set(r["new"])) == 1 for r in rows])
    worst_old = np.mean([r["rank_old"] == r["n_laws"] for r in rows])
    worst_new = np.mean([r["rank_new"] == r["n_laws"] for r in rows])
    rho_old = np.mean([r["rho"][r["old"][0]] for r in rows])
    rho_new = np.mean([r["rho"][r["new"][0]] for r in rows])
    chosen_old = {n: sum(r["old"][0] == n for r in rows) for n in sorted({r["old"][0] for r in rows})}
    chosen_new = {n: sum(r["new"][0] == n for r in rows) for n in sorted({r["new"][0] for r in rows})}
    out = [f"| {label} | former | {100 * st_old:.0f}% | {rho_old:.3f} | {100 * worst_old:.0f}% | {chosen_old} |",
           f"| {label} | new | {100 * st_new:.0f}% | {rho_new:.3f} | {100 * worst_new:.0f}% | {chosen_new} |"]
    if rows and "regret" in rows[0]:
        ro = np.median([r["regret"][r["old"][0]] for r in rows])
        rn = np.median([r["regret"][r["new"][0]] for r in rows])
        out.append(f"| {label} | decision regret (median, seed-0 choice) | former {ro:.4f} | new {rn:.4f} | | |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--runs", default="16,64")
    ap.add_argument("--domains", default="8")
    ap.add_argument("--seed0", type=int, default=700)
    ap.add_argument("--regret", action="store_true", help="also the decision regret at the largest run count")
    ap.add_argument("--real", default=None, help="a real observation table (one size is used)")
    args = ap.parse_args()
    t0 = time.time()
    lines = ["| setting | rule | stable under fold reseeding | held-out mean-loss Spearman of the choice | worst of the candidates | chosen (seed 0) |",
             "|---|---|---|---|---|---|"]
    runs = [int(x) for x in args.runs.split(",")]
    for k in (int(x) for x in args.domains.split(",")):
        for n in runs:
            rows = [world_row(k, n, args.seed0 + s, args.regret and n == max(runs))
                    for s in tqdm(range(args.worlds), desc=f"{k} domains, {n} runs", file=sys.stderr)]
            lines += summary(rows, f"{k} domains, {n} runs, {args.worlds} worlds")
            for r in rows:
                print(f"world {r['seed']} k={k} n={n}: former {r['old']} new {r['new']} rho " +
                      " ".join(f"{a}={b:.3f}" for a, b in sorted(r["rho"].items())), file=sys.stderr)
    if args.real:
        t = read_table(args.real)
        if t.num_params is not None:
            sizes, counts = np.unique(t.num_params, return_counts=True)
            t = t.subset(t.num_params == sizes[np.argmax(counts)])
        fitted, cvs = cv_all(t)
        for name, law in fitted.items():
            _params[name] = law.n_params()
        old, new = choices(cvs, t.n_runs)
        lines.append(f"| real table {args.real} ({t.n_runs} runs) | former | choices {old} | | | |")
        lines.append(f"| real table {args.real} ({t.n_runs} runs) | new | choices {new} | | | |")
    print("\n".join(lines))
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
