"""The held-out-size check of the scaling law (issue 20 item 1), as the markdown RESULTS.md carries.

    python bench/held_out_size_report.py LAW.json TABLE.csv [--plot held_out_size.png]

Place in the flow: bench/held_out_size.sh (proxy runs at four model sizes -> collect -> fit --law scaling)
-> **this report**. The law (laws/scaling.py, additive form) is refitted on every size but the largest
and predicts the largest size's rows (each mixture at each budget) that it never saw. Printed next to it:
the naive prediction "the loss does not change with size" (the same mixture and budget at the largest
fitted size), so the table says what the law's N term adds, and the law file's own `held_out_size`
(the same refit, done by `mixtrain.fitting.fit`) as a cross-check.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from mixtrain.laws.law_registry import make_law
from mixtrain.laws.table import read_table


def naive_same_mixture(table, keep_rows: np.ndarray, held_rows: np.ndarray) -> np.ndarray:
    """[held, m] the loss of the same mixture at the same token budget at the nearest fitted size (log N)
    (nan where that size did not train the mixture)."""
    fitted = np.unique(table.num_params[keep_rows])
    out = np.full((len(held_rows), table.L.shape[1]), np.nan)
    for i, r in enumerate(held_rows):
        near = fitted[np.argmin(np.abs(np.log(fitted) - np.log(table.num_params[r])))]
        match = [j for j in keep_rows if table.num_params[j] == near and table.tokens[j] == table.tokens[r]
                 and np.allclose(table.W[j], table.W[r], atol=1e-6)]
        if match:
            out[i] = table.L[match[0]]
    return out


def held_out(table, size: float):
    """(law fitted without `size`, fitted rows, held-out rows, its predictions there [rows, m], their
    relative errors, the naive baseline's relative errors)."""
    keep = np.flatnonzero(table.num_params != size)
    held = np.flatnonzero(table.num_params == size)
    law = make_law("scaling").fit(table.subset(table.num_params != size), cv_folds=0)
    obs = table.L[held]
    pred = law.predict_at(table.num_params[held], table.tokens[held], table.W[held])
    rel = np.abs(pred - obs) / obs
    rel_naive = np.abs(naive_same_mixture(table, keep, held) - obs) / obs
    return law, keep, held, pred, rel, rel_naive


def leave_one_size_out(table, sizes) -> None:
    print("\nEvery size held out in turn (the law fitted on the other three; naive: the same mixture and budget "
          "at the nearest fitted size):\n")
    print("| held-out size | rows | " + " | ".join(table.eval_domains) + " | mean | naive mean |")
    print("|---|---|" + "---|" * (len(table.eval_domains) + 2))
    for n in sizes:
        try:
            _, _, held, _, rel, rel_naive = held_out(table, n)
        except ValueError as e:
            print(f"| {n:,.0f} | - | refused: {e} |")
            continue
        print(f"| {n:,.0f} | {len(held)} | " + " | ".join(f"{100 * v:.2f}%" for v in rel.mean(axis=0))
              + f" | {100 * rel.mean():.2f}% | {100 * np.nanmean(rel_naive):.2f}% |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("law")
    ap.add_argument("table")
    ap.add_argument("--plot", default=None, help="PNG of predicted vs observed loss at the held-out size")
    ap.add_argument("--min-step", type=float, default=0.0,
                    help="fit and score only rows at step >= this (e.g. leave out the rows just after warm-up)")
    args = ap.parse_args()
    table = read_table(args.table)
    if args.min_step > 0:
        table = table.subset(table.steps >= args.min_step)
        print(f"rows at step >= {args.min_step:g} only (--min-step)\n")
    if table.num_params is None or table.tokens is None:
        raise SystemExit(f"{args.table}: needs the num_params and tokens columns (python -m mixtrain.fitting.collect writes them)")
    sizes = np.unique(table.num_params)
    if sizes.size < 4:
        raise SystemExit(f"{args.table}: {sizes.size} model sizes; the held-out check needs >= 4 (3 to fit, 1 held out)")
    law, keep, held, pred, rel, rel_naive = held_out(table, sizes.max())
    obs = table.L[held]
    fit_pred = law.predict_at(table.num_params[keep], table.tokens[keep], table.W[keep])
    rel_fit = np.abs(fit_pred - table.L[keep]) / table.L[keep]
    runs_at = {float(n): len(set(table.runs[table.num_params == n])) for n in sizes}
    budgets = np.unique(table.tokens[held])
    print(f"Sizes (non-embedding parameters; runs): "
          + ", ".join(f"{n:,.0f} ({runs_at[float(n)]})" for n in sizes[:-1])
          + f"; held out: **{sizes.max():,.0f}** ({runs_at[float(sizes.max())]} runs). "
          f"Budgets at the held-out size (tokens): {', '.join(f'{b:,.0f}' for b in budgets)}. "
          f"Rows fitted: {len(keep)}; rows predicted: {len(held)}.\n")
    print("| eval domain | MRE at held-out size (law) | MRE, naive: same mixture at the largest fitted size "
          "| in-sample MRE (fitted sizes) |")
    print("|---|---|---|---|")
    for j, d in enumerate(table.eval_domains):
        print(f"| {d} | {100 * rel[:, j].mean():.2f}% | {100 * np.nanmean(rel_naive[:, j]):.2f}% | "
              f"{100 * rel_fit[:, j].mean():.2f}% |")
    print(f"| **mean** | **{100 * rel.mean():.2f}%** | {100 * np.nanmean(rel_naive):.2f}% | {100 * rel_fit.mean():.2f}% |\n")
    print("| tokens | MRE at held-out size (law), mean over domains | worst domain |")
    print("|---|---|---|")
    for b in budgets:
        sel = table.tokens[held] == b
        per = rel[sel].mean(axis=0)
        print(f"| {b:,.0f} | {100 * per.mean():.2f}% | {table.eval_domains[int(np.argmax(per))]} {100 * per.max():.2f}% |")
    leave_one_size_out(table, sizes)
    with open(args.law) as f:
        own = json.load(f).get("report", {}).get("held_out_size", {})
    if "mean_mre" in own and not args.min_step:
        print(f"\n`mixtrain.fitting.fit`'s own held_out_size (law.json report): mean MRE {100 * own['mean_mre']:.2f}% over "
              f"{own['rows']} rows (the same refit).")
    goal = bool(np.all(rel.mean(axis=0) < 0.02))
    print(f"\nGoal (issue 20): per-domain MRE < 2% at the held-out size: **{'met' if goal else 'NOT met'}** "
          f"(worst domain {table.eval_domains[int(np.argmax(rel.mean(axis=0)))]} {100 * rel.mean(axis=0).max():.2f}%).")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 5))
        for j, d in enumerate(table.eval_domains):
            ax.scatter(obs[:, j], pred[:, j], s=14, label=d)
        lo, hi = float(min(obs.min(), pred.min())), float(max(obs.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"observed val loss at {sizes.max():,.0f} params (held out)")
        ax.set_ylabel("predicted by the law fitted on the smaller sizes")
        ax.set_title("scaling law: held-out model size")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
