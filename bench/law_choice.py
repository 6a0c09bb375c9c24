"""Benchmark: does `law="auto"` flip on noise? Three rules on synthetic worlds and a real table: the former rule
(one 5-fold split, lowest top-1/top-3 regret, ties to the fewest parameters), the first issue-32 rule
(ridge+margin: ridge unless a law beats it under every fold seed by 0.05) and laws/law_choice.decide (new).

    python bench/law_choice.py [--worlds 12] [--runs 16,64] [--domains 8] [--real results/held-out-size-2026-12-04/table.csv]
                               [--dump rows.jsonl]     # each world's per-seed CV scores, one JSON line per world
    python bench/law_choice.py --replay rows.jsonl      # the tables again from a dump, without fitting

Place in the flow: laws/synthetic.World (truth) -> proxy table -> every law's cross-validation under 9 fold
seeds -> every rule replayed on the same CV numbers -> stability, held-out ranking, decision regret.

Per world (paired: every rule sees the same CV results):
* stability under fold reseeding: the former rule chooses once per fold seed in {0, 3, 6}; the others once per
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
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mixtrain.laws import LAWS, spearman  # noqa: E402
from mixtrain.laws.cross_validation import cross_validate  # noqa: E402
from mixtrain.laws.law_choice import cv_score, decide

AUTO_MARGIN, DEFAULT_LAW = 0.05, "ridge"  # the first issue-32 rule's settings, replayed as a baseline  # noqa: E402
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


def ridge_margin_rule(cvs: dict, seeds: list[int], n_runs: int) -> str:
    """The first issue-32 rule (commit 453e185): ridge unless a law beats it under every seed and by the
    margin in mean score; among those, the lowest mean score (it flipped between exp and transfer)."""
    ok = {n: c for n, c in cvs.items() if n_runs >= getattr(LAWS[n], "auto_min_runs", 0)}
    scores = {n: [c[s]["score"] for s in seeds] for n, c in ok.items()}
    mean = {n: float(np.mean(v)) for n, v in scores.items()}
    if DEFAULT_LAW not in ok:
        return min(mean, key=mean.get)
    win = [n for n in ok if n != DEFAULT_LAW and mean[n] < mean[DEFAULT_LAW] - AUTO_MARGIN
           and all(a < b for a, b in zip(scores[n], scores[DEFAULT_LAW]))]
    return min(win, key=mean.get) if win else DEFAULT_LAW


def new_rule(cvs: dict, seeds: list[int], n_runs: int) -> str:
    """laws/law_choice.decide on the same per-seed scores."""
    ok = {n: [c[s]["score"] for s in seeds] for n, c in cvs.items() if n_runs >= getattr(LAWS[n], "auto_min_runs", 0)}
    return decide(ok)[0]


def choices(cvs: dict, n_runs: int) -> tuple[list[str], list[str], list[str]]:
    """(former, first issue-32 rule, current rule) choices: once per fold seed / seed triple."""
    triples = [[s, s + 1, s + 2] for s in (0, 3, 6)]
    return ([old_rule(cvs, s) for s in (0, 3, 6)], [ridge_margin_rule(cvs, t, n_runs) for t in triples],
            [new_rule(cvs, t, n_runs) for t in triples])


def _slim(cvs: dict) -> dict:
    """Per law, per fold seed: the numbers both rules read (dumped with --dump, replayed with --replay)."""
    keys = ("regret_top1", "regret_topk", "regret_random", "mean_loss_spearman")
    return {n: [{**{k: c.get(k) for k in keys}, "score": cv_score(c)} for c in res] for n, res in cvs.items()}


def world_row(k: int, n: int, seed: int, regret: bool) -> dict:
    world = World(k, seed)
    table = world.proxy_table(n, seed=seed)
    fitted, cvs = cv_all(table)
    for name, law in fitted.items():
        _params[name] = law.n_params()
    cvs = _slim(cvs)
    rng = np.random.default_rng(10_000 + seed)
    c = np.exp(rng.uniform(np.log(0.3), np.log(3.0), 200))
    H = np.array([rng.dirichlet(ci * k * world.natural + 1e-3) for ci in c])
    truth = world.loss(H, np.full(200, world.s_ref)).mean(axis=1)
    rho = {name: spearman(law._predict(H, np.full(200, world.s_ref)).mean(axis=1), truth) for name, law in fitted.items()}
    row = {"k": k, "n": n, "seed": seed, "rho": rho, "cv": cvs,
           "n_params": {name: law.n_params() for name, law in fitted.items()}}
    rules = replay(row)
    if regret:
        opt = world.mean_loss(world.optimum())
        row["regret"] = {}
        for name in {r[0] for r in rules.values()}:
            p = propose(fitted[name], world.s_ref, candidates=4000, bootstrap=5, seed=seed)
            row["regret"][name] = world.mean_loss(np.array(list(p.weights.values()))) - opt
    return row


RULES = ("former", "ridge+margin", "new")


def replay(row: dict) -> dict[str, list[str]]:
    """Each rule's 3 choices (fold seeds / seed triples) from a row's per-seed CV numbers; sets row[rule]."""
    _params.update(row["n_params"])
    out = dict(zip(RULES, choices(row["cv"], row["n"])))
    row.update(out)
    return out


def summary(rows: list[dict], label: str) -> list[str]:
    out = []
    for rule in RULES:
        ranked = [sorted(r["rho"], key=r["rho"].get, reverse=True) for r in rows]
        stable = np.mean([len(set(r[rule])) == 1 for r in rows])
        worst = np.mean([rk.index(r[rule][0]) + 1 == len(rk) for r, rk in zip(rows, ranked)])
        rho = np.mean([r["rho"][r[rule][0]] for r in rows])
        chosen = {n: sum(r[rule][0] == n for r in rows) for n in sorted({r[rule][0] for r in rows})}
        out.append(f"| {label} | {rule} | {100 * stable:.0f}% | {rho:.3f} | {100 * worst:.0f}% | {chosen} |")
    if rows and "regret" in rows[0]:
        med = {rule: np.median([r["regret"][r[rule][0]] for r in rows]) for rule in RULES}
        out.append(f"| {label} | decision regret (median, seed-0 choice) | " +
                   " | ".join(f"{k} {v:.4f}" for k, v in med.items()) + " | |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--runs", default="16,64")
    ap.add_argument("--domains", default="8")
    ap.add_argument("--seed0", type=int, default=700)
    ap.add_argument("--regret", action="store_true", help="also the decision regret at the largest run count")
    ap.add_argument("--real", default=None, help="a real observation table (one size is used)")
    ap.add_argument("--dump", default=None, help="append each world's per-seed CV scores here (JSON lines)")
    ap.add_argument("--replay", default=None, help="no fitting: replay the rules on a --dump file")
    args = ap.parse_args()
    t0 = time.time()
    lines = ["| setting | rule | stable under fold reseeding | held-out mean-loss Spearman of the choice | worst of the candidates | chosen (seed 0) |",
             "|---|---|---|---|---|---|"]
    if args.replay:
        with open(args.replay) as f:
            rows = [json.loads(x) for x in f if x.strip()]
        groups: dict = {}
        for r in rows:
            groups.setdefault((r["k"], r["n"]), []).append(r)
        for (k, n), rs in sorted(groups.items()):
            for r in rs:
                replay(r)
                _print_world(r)
            lines += summary(rs, f"{k} domains, {n} runs, {len(rs)} worlds")
        print("\n".join(lines))
        return
    runs = [int(x) for x in args.runs.split(",")]
    for k in (int(x) for x in args.domains.split(",")):
        for n in runs:
            rows = []
            for s in tqdm(range(args.worlds), desc=f"{k} domains, {n} runs", file=sys.stderr):
                rows.append(world_row(k, n, args.seed0 + s, args.regret and n == max(runs)))
                _print_world(rows[-1])
                if args.dump:
                    with open(args.dump, "a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
            lines += summary(rows, f"{k} domains, {n} runs, {args.worlds} worlds")
    if args.real:
        t = read_table(args.real)
        if t.num_params is not None:
            sizes, counts = np.unique(t.num_params, return_counts=True)
            t = t.subset(t.num_params == sizes[np.argmax(counts)])
        fitted, cvs = cv_all(t)
        for name, law in fitted.items():
            _params[name] = law.n_params()
        for rule, ch in zip(RULES, choices(_slim(cvs), t.n_runs)):
            lines.append(f"| real table {args.real} ({t.n_runs} runs) | {rule} | choices {ch} | | | |")
    print("\n".join(lines))
    print(f"\n{time.time() - t0:.0f} s")


def _print_world(r: dict) -> None:
    print(f"world {r['seed']} k={r['k']} n={r['n']}: " + " ".join(f"{rule} {r[rule]}" for rule in RULES) + " rho " +
          " ".join(f"{a}={b:.3f}" for a, b in sorted(r["rho"].items())), file=sys.stderr)


if __name__ == "__main__":
    main()
