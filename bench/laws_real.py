"""Benchmark: the mixing laws on REAL proxy runs (an observation table from `mixtrain.fitting.collect`).

    PYTHON=.venv/bin/python bash launch/proxy_sweep.sh data/demo runs/proxy24 24 trainer.max_steps=100
    python bench/laws_real.py --table runs/proxy24/table.csv [--fit-runs 16] [--splits 10] [--auto]
    python bench/laws_real.py --table runs/compare/proxy/table.csv --held-out HELD.csv   # other runs as held-out set

Held-out ranking: `--splits` seeded random splits of the runs into `--fit-runs` fitting runs and
the rest held out; every law is fitted on the fitting runs' rows (all steps) and predicts the
held-out runs' final losses; per evaluation domain, the Spearman correlation of predicted vs
observed final loss over held-out runs (the issue's criterion), averaged over domains and
splits; also the held-out mean relative error. Uniform as a baseline in the same run: the
Spearman of "predict every held-out run by the fitting runs' mean loss" is 0 by construction,
so the reference printed is the rank agreement of the *nearest fitting mixture* (L1 distance)
with the held-out losses — a law should beat looking up the closest proxy run.
With `--held-out HELD.csv` (e.g. `mixtrain.fitting.collect` over the comparison's static and entropy
runs, which are longer than the proxies), every law is fitted on the whole --table and predicts
the held-out runs' final losses instead: mixtures and steps both outside the fitting data.
Step extrapolation: each law fitted on all runs' rows with step <= half the last step, predicting
every run's final losses (mean relative error; the issue's goal < 0.5 %).

Choosing a mixture (what the optimiser targets: the equal-importance mean loss over eval domains),
per split over the held-out runs: the mean-loss Spearman, top-1 regret (true mean loss of the
held-out run the law ranks best minus the best held-out run, nats), top-3 regret, and "vs best
proxy" = true mean loss of the law's pick minus the best FITTING run's (<= 0: the pick is at least
as good as every proxy the law saw). Baselines in the same run: "own-weight" ranks each domain's
runs by -(its weight) (per-domain Spearman only; it has no mean-loss ranking), "nearest" (above),
"random" (expected regret of a random held-out pick). `auto` = fit_law(..., "auto") on the fitting
runs (its inner CV) and scored like the others. Last: each law's optimum at the last step,
fitted on all runs, with and without the support limits: TV distance to the nearest proxy mixture
and the active constraints.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mixtrain.laws import LAWS, fit_law, make_law, spearman
from mixtrain.laws.cross_validation import own_weight_spearman, selection_metrics
from mixtrain.laws.optim.slsqp import solve
from mixtrain.laws.table import read_table


def nearest_neighbour(fit, held):
    fin = fit.final_rows()
    Wf, Lf = fit.W[fin], fit.L[fin]
    out = []
    for i in held.final_rows():
        j = int(np.argmin(np.abs(Wf - held.W[i]).sum(axis=1)))
        out.append(Lf[j])
    return np.array(out)


def held_out(table, held, laws) -> None:
    if list(held.train_domains) != list(table.train_domains) or list(held.eval_domains) != list(table.eval_domains):
        raise SystemExit("the held-out table must have the same w/ and loss/ columns as --table")
    fin = held.final_rows()
    y = held.L[fin]
    print(f"fit: {table.source} ({table.n_runs} runs, steps <= {table.steps.max():g}); held out: {held.source} "
          f"({held.n_runs} runs, final steps {sorted(set(held.steps[fin].tolist()))})\n")
    imp = np.full(y.shape[1], 1.0 / y.shape[1])
    best_proxy = float((table.L[table.final_rows()] @ imp).min())
    print("| law | held-out Spearman (mean over domains) | per domain | held-out MRE % | mean-loss Spearman | "
          "top-1 regret (nats) | top-3 regret | pick vs best proxy (nats) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in laws:
        try:
            p = make_law(name).fit(table, cv_folds=0).predict(held.W[fin], held.steps[fin])
        except ValueError as e:
            print(f"| {name} | refused: {e} | | | | | | |")
            continue
        rhos = [spearman(p[:, j], y[:, j]) for j in range(y.shape[1])]
        per = " ".join(f"{d}={r:.2f}" for d, r in zip(held.eval_domains, rhos))
        sel = selection_metrics(p, y, imp)
        print(f"| {name} | {float(np.nanmean(rhos)):.3f} | {per} | {100 * float(np.mean(np.abs(p - y) / y)):.2f} | "
              f"{sel['mean_loss_spearman']:.3f} | {sel['regret_top1']:.4f} | {sel['regret_topk']:.4f} | "
              f"{float(y[int(np.argmin(p @ imp))] @ imp) - best_proxy:+.4f} |")
    own = own_weight_spearman(held.W[fin], y, held.train_domains, held.eval_domains)
    print(f"| own-weight (baseline) | {float(np.nanmean(list(own.values()))):.3f} | "
          + " ".join(f"{d}={r:.2f}" for d, r in own.items()) + " | | - | | | |")
    print(f"| random pick (baseline) | | | | | {float((y @ imp).mean() - (y @ imp).min()):.4f} | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True)
    ap.add_argument("--fit-runs", type=int, default=16)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--laws", default=",".join(LAWS))
    ap.add_argument("--held-out", default=None, help="a second table whose runs are the held-out set")
    ap.add_argument("--auto", action="store_true", help="also score fit_law(..., 'auto') (4-fold inner CV per split)")
    args = ap.parse_args()
    table = read_table(args.table)
    if args.held_out:
        held_out(table, read_table(args.held_out), args.laws.split(","))
        return
    runs = table.run_names
    if len(runs) <= args.fit_runs + 2:
        raise SystemExit(f"{args.table}: {len(runs)} runs; need more than --fit-runs + 2 = {args.fit_runs + 2}")
    laws = args.laws.split(",")
    print(f"table {args.table}: {len(runs)} runs, {table.n_rows} rows, {len(table.train_domains)} train domains, "
          f"{len(table.eval_domains)} eval domains; fit on {args.fit_runs}, {args.splits} splits\n")
    names = [*laws, *(["auto"] if args.auto else []), "nearest"]
    keys = ("rho", "mre", "fit_s", "mrho", "regret1", "regretk", "vs_best")
    res: dict[str, dict[str, list[float]]] = {name: {k: [] for k in keys} for name in names}
    own_rho, rand_regret = [], []
    m = len(table.eval_domains)
    imp = np.full(m, 1.0 / m)
    for split in range(args.splits):
        order = np.random.default_rng(split).permutation(len(runs))
        fit_names = {runs[i] for i in order[: args.fit_runs]}
        mask = np.array([r in fit_names for r in table.runs.tolist()])
        fit, held = table.subset(mask), table.subset(~mask)
        fin = held.final_rows()
        y = held.L[fin]
        best_proxy = float((fit.L[fit.final_rows()] @ imp).min())
        own_rho.append(float(np.nanmean(list(own_weight_spearman(held.W[fin], y, held.train_domains,
                                                                  held.eval_domains).values()))))
        preds = {"nearest": nearest_neighbour(fit, held)}
        for name in [*laws, *(["auto"] if args.auto else [])]:
            t0 = time.perf_counter()
            try:
                law = fit_law(fit, "auto", cv_folds=4) if name == "auto" else make_law(name).fit(fit, cv_folds=0)
            except ValueError as e:
                print(f"split {split} {name}: refused ({e})")
                continue
            res[name]["fit_s"].append(time.perf_counter() - t0)
            preds[name] = law.predict(held.W[fin], held.steps[fin])
        for name, p in preds.items():
            rhos = [spearman(p[:, j], y[:, j]) for j in range(y.shape[1])]
            res[name]["rho"].append(float(np.nanmean(rhos)))
            res[name]["mre"].append(float(np.mean(np.abs(p - y) / y)))
            sel = selection_metrics(p, y, imp)
            res[name]["mrho"].append(sel["mean_loss_spearman"])
            res[name]["regret1"].append(sel["regret_top1"])
            res[name]["regretk"].append(sel["regret_topk"])
            res[name]["vs_best"].append(float(y[int(np.argmin(p @ imp))] @ imp) - best_proxy)
        rand_regret.append(float((y @ imp).mean() - (y @ imp).min()))
    # step extrapolation on every run
    half = table.steps <= 0.5 * table.steps.max()
    final = table.final_rows()
    extrap = {}
    for name in laws:
        try:
            law = make_law(name).fit(table.subset(half), cv_folds=0)
            p = law.predict(table.W[final], table.steps[final])
            extrap[name] = 100 * float(np.mean(np.abs(p - table.L[final]) / table.L[final]))
        except ValueError as e:
            extrap[name] = float("nan")
            print(f"extrapolation {name}: refused ({e})")

    def ms(v):
        v = [x for x in v if np.isfinite(x)]
        if not v:
            return "-"
        return f"{statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.3f}"

    print("| law | held-out Spearman per domain | held-out MRE % | step extrapolation MRE % | fit s | "
          "mean-loss Spearman | top-1 regret (nats) | top-3 regret | pick vs best proxy (nats) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        r = res[name]
        if not r["rho"]:
            print(f"| {name} | refused | | | | | | | |")
            continue
        fit_s = f"{statistics.median(r['fit_s']):.2f}" if r["fit_s"] else ""
        ex = f"{extrap[name]:.2f}" if name in extrap else ""
        wins = sum(v <= 1e-12 for v in r["vs_best"])
        print(f"| {name} | {ms(r['rho'])} | {100 * statistics.mean(r['mre']):.2f} | {ex} | {fit_s} | {ms(r['mrho'])} | "
              f"{ms(r['regret1'])} | {ms(r['regretk'])} | {ms(r['vs_best'])} ({wins}/{len(r['vs_best'])} <= 0) |")
    print(f"| own-weight (baseline) | {ms(own_rho)} | | | | - | | | |")
    print(f"| random pick (baseline) | | | | | | {ms(rand_regret)} | | |")
    print("\noptimum at the last step, fitted on all runs (equal importance): TV to the nearest proxy, active constraints")
    step = float(table.steps.max())
    for name in laws:
        try:
            law = make_law(name).fit(table, cv_folds=0)
        except ValueError as e:
            print(f"  {name}: refused ({e})")
            continue
        for label, kw in (("default limits", {}), ("unconstrained", {"support_margin": None, "trust_radius": None})):
            o = solve(law, step, **kw)
            w = " ".join(f"{d}={v:.3f}" for d, v in o.weights.items())
            print(f"  {name:<10} {label:<15} TV {o.tv_to_nearest:.3f}  predicted {o.objective:.4f}  [{w}]  "
                  f"active: {', '.join(o.active) or 'none'}")


if __name__ == "__main__":
    main()
