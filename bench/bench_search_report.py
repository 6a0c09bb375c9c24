"""Tables (Markdown, stdout) and figures (PNG) of bench/search.py's results; also re-prints a saved run:

    python bench/bench_search_report.py bench_search.json [--fig-dir docs/figures]
    python bench/bench_search_report.py --continuous OUT.continuous.partial --pool OUT.pool.partial --mf OUT2.mf.partial

Place in the flow: bench/search.py -> results JSON -> **this report** -> BENCHMARKS.md "Sequential proxy search".
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from scipy.stats import wilcoxon


def _table(title: str, paired: list[dict], a: str, b: str = "random") -> list[str]:
    lines = [f"{title}", "", f"| runs | median regret {b} | median regret {a} | median paired diff | worlds {a} better "
             "| worlds worse | Wilcoxon p | worlds |", "|---|---|---|---|---|---|---|---|"]
    for r in paired:
        lines.append(f"| {r['runs']} | {r['median_' + b]:.4f} | {r['median_' + a]:.4f} | {r['median_diff']:+.4f} | "
                     f"{100 * r['share_better']:.0f}% | {100 * r['share_worse']:.0f}% | {r['wilcoxon_p']:.2g} | {r['worlds']} |")
    return lines


def _key(d: dict) -> dict:
    return {int(k): v for k, v in d.items()}


def _reach(rows: list[dict], a: str, b: str = "random") -> str:
    """The goal: the sequential regret at 32 runs vs the random regret at 64 (medians over worlds, and per world)."""
    s32 = np.array([_key(r[a])[32] for r in rows])
    r64 = np.array([_key(r[b])[64] for r in rows])
    p = float(wilcoxon(s32, r64).pvalue) if len(rows) > 5 and np.any(s32 != r64) else float("nan")
    return (f"{a} at 32 runs: median regret {np.median(s32):.4f} vs {b} at 64 runs {np.median(r64):.4f}; "
            f"{a}@32 <= {b}@64 in {100 * np.mean(s32 <= r64):.0f}% of {len(rows)} worlds "
            f"(median paired diff {np.median(s32 - r64):+.4f}, Wilcoxon p {p:.2g})")


def _plot_runs(rows: list[dict], methods: list[str], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ["random", *methods]:
        budgets = sorted(_key(rows[0][name]))
        R = np.array([[_key(r[name])[n] for n in budgets] for r in rows])
        med, lo, hi = np.median(R, 0), np.percentile(R, 25, 0), np.percentile(R, 75, 0)
        ax.plot(budgets, med, "o-", label=f"{name} (median)")
        ax.fill_between(budgets, lo, hi, alpha=0.2)
    ax.set_xlabel("proxy runs")
    ax.set_ylabel("final-decision regret (nats)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mf(res: dict, fig_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    grid = np.linspace(1, max(c for r in rows for c, _ in r["single"]), 40)

    def curve(name):  # regret as a step function of cumulative cost, per world
        out = []
        for r in rows:
            cs, rs = np.array(r[name]).T
            out.append([rs[cs <= g][-1] if np.any(cs <= g) else np.nan for g in grid])
        return np.array(out)

    single, multi = curve("single"), curve("multi")
    final_sf = np.nanmedian(single[:, -1])
    reach = [g for g, v in zip(grid, np.nanmedian(multi, 0)) if v <= final_sf]
    reach_sf = [g for g, v in zip(grid, np.nanmedian(single, 0)) if v <= final_sf]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, R in (("single fidelity (large runs, qLogEI)", single), ("multi-fidelity (3 sizes, cost-weighted MES)", multi)):
        ax.plot(grid, np.nanmedian(R, 0), label=name)
        ax.fill_between(grid, np.nanpercentile(R, 25, 0), np.nanpercentile(R, 75, 0), alpha=0.2)
    ax.set_xlabel("cumulative cost (large-run equivalents)")
    ax.set_ylabel("regret of the recommendation at the largest size")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(fig_dir, "search_multi_fidelity.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ["Multi-fidelity (pool of 200 mixtures x 3 sizes, costs 1/16, 1/4, 1):",
            f"single fidelity reaches median regret {final_sf:.4f} at cost {reach_sf[0] if reach_sf else float('nan'):.2f}; "
            f"multi-fidelity reaches it at cost {reach[0] if reach else float('nan'):.2f} "
            f"(ratio {(reach[0] / reach_sf[0]) if reach and reach_sf else float('nan'):.2f}); "
            f"median regret at the largest budget: single {final_sf:.4f}, multi {np.nanmedian(multi[:, -1]):.4f} "
            f"({len(rows)} worlds); figure {path}"]


def report(res: dict, fig_dir: str) -> None:
    os.makedirs(fig_dir, exist_ok=True)
    lines = []
    methods = res["args"]["methods"].split(",")
    if "continuous" in res:
        rows = res["continuous"]["rows"]
        for k in sorted({r["k"] for r in rows}):
            sub = [r for r in rows if r["k"] == k]
            from search import paired  # noqa: E402

            arms = [m + d for m in methods for d in ("", "+run") if m + d in sub[0]]
            for a in arms:
                for b in ("random", "random+run") if a.endswith("+run") and "random+run" in sub[0] else ("random",):
                    lines += _table(f"\nContinuous candidates, {k} domains, {a} vs {b}:", paired(
                        [{**r, a: _key(r[a]), b: _key(r[b])} for r in sub], a, b), a, b)
                    lines.append(_reach(sub, a, b))
            path = os.path.join(fig_dir, f"search_regret_{k}domains.png")
            _plot_runs(sub, arms + (["random+run"] if "random+run" in sub[0] else []), path, f"{k} domains, {len(sub)} worlds")
            lines.append(f"figure: {path}")
    if "pool" in res:
        rows = res["pool"]["rows"]
        from search import paired  # noqa: E402

        pm = [m for m in methods if m in rows[0]]
        for m in pm:
            lines += _table(f"\nPool of 500 mixtures, 8 domains, {m} vs random (regret vs the best pool row):", paired(
                [{**r, m: _key(r[m]), "random": _key(r["random"])} for r in rows], m), m)
            lines.append(_reach(rows, m))
        path = os.path.join(fig_dir, "search_regret_pool.png")
        _plot_runs(rows, pm, path, f"pool of 500, 8 domains, {len(rows)} worlds")
        lines.append(f"figure: {path}")
    if "mf" in res:
        lines += [""] + _mf(res["mf"], fig_dir)
    lines.append(f"\n{res['seconds']:.0f} s in all")
    print("\n".join(lines))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="?", help="the JSON bench/search.py wrote at its end")
    ap.add_argument("--continuous", help="instead: OUT.continuous.partial (per-world results of a run cut short)")
    ap.add_argument("--pool", help="OUT.pool.partial")
    ap.add_argument("--mf", help="OUT.mf.partial")
    ap.add_argument("--methods", default="thompson", help="with the partial files: the methods the run compared")
    ap.add_argument("--fig-dir", default="docs/figures")
    a = ap.parse_args()
    if a.results:
        res = json.load(open(a.results))
    else:
        res = {"args": {"methods": a.methods}, "seconds": float("nan")}
        for part in ("continuous", "pool", "mf"):
            if getattr(a, part):
                res[part] = {"rows": json.load(open(getattr(a, part)))}
    report(res, a.fig_dir)
