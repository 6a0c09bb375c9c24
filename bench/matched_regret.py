"""Benchmark reader: issue 12's goal at matched length (the law's optimum vs the best proxy).

    python bench/matched_regret.py OUT                      # the table (after launch/matched_regret.sh)
    python bench/matched_regret.py OUT --best-proxy-file    # print the best proxy's mixture file

Place in the flow: launch/matched_regret.sh trains OUT/proxy/runs/* (the proxy sweep, seed 0) and
OUT/runs/<candidate>-seed<k>/ (law, law_auto, best_proxy, uniform, natural; the proxies' settings)
-> **bench/matched_regret.py** reads their summary.json / table.csv / weights*.yaml and prints the
result; it trains nothing and needs no torch.

Measure: a run's mean val loss = summary.json final `val/loss` (unweighted mean over the training
domains, nats). Runs of one seed differ only by their mixture, so candidates are compared by the
paired difference law - X per seed, reported as mean and a 95% t-interval (scipy.stats.t, n-1 df)
over the seeds. The best proxy is the sweep run with the lowest mean over domains of its final
row in table.csv (the same quantity, on seed 0); it is re-run on the fresh seeds because picking
the minimum of 16 noisy seed-0 losses is biased low (winner's curse).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys

import yaml

CANDIDATES = ("law", "law_auto", "best_proxy", "uniform", "natural")


def best_proxy(out: str) -> tuple[str, float, str]:
    """(run name, final mean val loss on seed 0, mixture file) of the best proxy in OUT/proxy/table.csv."""
    table = os.path.join(out, "proxy", "table.csv")
    with open(table) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{table}: no rows (did the proxy sweep finish? re-run launch/matched_regret.sh)")
    losses = [c for c in rows[0] if c.startswith("loss/")]
    final: dict[str, tuple[float, float]] = {}
    for r in rows:
        step = float(r["step"])
        if r["run"] not in final or step > final[r["run"]][0]:
            final[r["run"]] = (step, statistics.fmean(float(r[c]) for c in losses))
    steps = {s for s, _ in final.values()}
    if len(steps) != 1:
        raise SystemExit(f"{table}: proxies end at different steps {sorted(steps)}; expected one length")
    name = min(final, key=lambda n: final[n][1])
    config = os.path.join(out, "proxy", "runs", name, "config.yaml")
    with open(config) as f:
        mix_file = (yaml.safe_load(f).get("mixing") or {}).get("weights_file")
    if not mix_file:
        raise SystemExit(f"{config}: no mixing.weights_file (proxy runs are mixing=manual with a mixtures/ file)")
    return name, final[name][1], mix_file


def read_weights(path: str) -> tuple[dict[str, float], dict]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    return dict(doc["weights"]), dict(doc.get("optimum") or {})


def proxy_losses(out: str) -> dict[str, tuple[str, float]]:
    """{mixture file basename: (proxy run name, final val/loss on seed 0)} from OUT/proxy/runs/*/."""
    root = os.path.join(out, "proxy", "runs")
    found = {}
    for entry in sorted(os.listdir(root)):
        summary, config = (os.path.join(root, entry, f) for f in ("summary.json", "config.yaml"))
        if not (os.path.isfile(summary) and os.path.isfile(config)):
            continue
        with open(config) as f:
            mix_file = (yaml.safe_load(f).get("mixing") or {}).get("weights_file")
        with open(summary) as f:
            found[os.path.basename(str(mix_file))] = (entry, float(json.load(f)["final"]["val/loss"]))
    return found


def run_losses(out: str) -> dict[str, dict[int, float]]:
    """{candidate: {seed: final val/loss}} from OUT/runs/<candidate>-seed<k>/summary.json."""
    root = os.path.join(out, "runs")
    found: dict[str, dict[int, float]] = {}
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry, "summary.json")
        if not os.path.isfile(path) or "-seed" not in entry:
            continue
        name, seed = entry.rsplit("-seed", 1)
        if not os.path.exists(os.path.join(root, entry, "DONE")):
            print(f"warning: {entry} has no DONE marker (interrupted?): left out", file=sys.stderr)
            continue
        with open(path) as f:
            found.setdefault(name, {})[int(seed)] = float(json.load(f)["final"]["val/loss"])
    if "law" not in found:
        raise SystemExit(f"{root}: no finished law-seed<k> runs (run launch/matched_regret.sh first)")
    return found


def t_interval(diffs: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width nan with one value."""
    from scipy.stats import t

    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return mean, math.nan
    return mean, t.ppf(0.975, n - 1) * statistics.stdev(diffs) / math.sqrt(n)


def fmt_w(w: dict[str, float]) -> str:
    return " ".join(f"{d}={x:.3f}" for d, x in w.items())


def report(out: str) -> str:
    losses = run_losses(out)
    names = [c for c in CANDIDATES if c in losses] + sorted(set(losses) - set(CANDIDATES))
    # seed 0 is the proxies' seed: a law run on it is compared with all proxies separately (below)
    seeds = sorted(s for s in losses["law"] if s != 0)
    proxy = os.path.join(out, "proxy")
    bp_name, bp_loss0, bp_file = best_proxy(out)
    files = {"law": os.path.join(proxy, "weights.yaml"), "law_auto": os.path.join(proxy, "weights_auto.yaml"),
             "best_proxy": bp_file}
    mixtures = os.path.join(proxy, "mixtures")
    for ref in ("uniform", "natural"):
        files.update({ref: os.path.join(mixtures, f) for f in os.listdir(mixtures) if f.endswith(f"-{ref}.yaml")})
    lines = [f"seeds {seeds}; mean val loss (nats) = summary.json final val/loss", ""]
    lines.append("| candidate | weights | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |")
    lines.append("|---|---|" + "---|" * len(seeds) + "---|")
    for n in names:
        vals = [losses[n].get(s) for s in seeds]
        got = [v for v in vals if v is not None]
        sd = statistics.stdev(got) if len(got) > 1 else math.nan
        w = fmt_w(read_weights(files[n])[0]) if n in files and os.path.exists(files[n]) else "?"
        cells = " | ".join("-" if v is None else f"{v:.4f}" for v in vals)
        lines.append(f"| {n} | {w} | {cells} | {statistics.fmean(got):.4f} ± {sd:.4f} |")
    lines += ["", "| paired difference (per seed) | mean | 95% t-interval | per seed | seeds |", "|---|---|---|---|---|"]
    for law in ("law", "law_auto"):
        if law not in losses:
            continue
        for ref in names:
            if ref in ("law", "law_auto") or ref == law:
                continue
            common = [s for s in seeds if s in losses[law] and s in losses[ref]]
            if not common:
                continue
            d = [losses[law][s] - losses[ref][s] for s in common]
            mean, half = t_interval(d)
            star = " *" if not math.isnan(half) and abs(mean) > half else ""
            lines.append(f"| {law} - {ref} | {mean:+.4f} | [{mean - half:+.4f}, {mean + half:+.4f}]{star} | "
                         + " ".join(f"{x:+.4f}" for x in d) + f" | {len(common)} |")
    lines += ["", "`*`: the interval excludes 0. Negative = the law's optimum is better.", ""]
    lines.append(f"best proxy (seed 0, table.csv final row): {bp_name} = {os.path.basename(bp_file)}, "
                 f"mean val loss {bp_loss0:.4f}")
    proxies = proxy_losses(out)
    for ref in ("best_proxy", "uniform", "natural"):
        if ref in losses and os.path.basename(files.get(ref, "")) in proxies:
            run, loss0 = proxies[os.path.basename(files[ref])]
            fresh = statistics.fmean(losses[ref][s] for s in seeds if s in losses[ref])
            lines.append(f"{ref}: seed 0 (proxy run {run}) {loss0:.4f} -> mean over fresh seeds {fresh:.4f} "
                         f"(shift {fresh - loss0:+.4f})")
    for law in ("law", "law_auto"):
        if law in losses and 0 in losses[law]:
            ranked = sorted(v for _, v in proxies.values())
            better = sum(v < losses[law][0] for v in ranked)
            lines.append(f"{law} on seed 0 (the proxies' seed): {losses[law][0]:.4f}; minus best of the "
                         f"{len(ranked)} proxies {losses[law][0] - ranked[0]:+.4f}; {better} proxies better "
                         f"(best-proxy pick is the minimum of {len(ranked)} on this seed: biased in its favour)")
    for law in ("law", "law_auto"):
        if law in losses and os.path.exists(files[law]):
            _, meta = read_weights(files[law])
            obs = statistics.fmean(losses[law][s] for s in seeds if s in losses[law])
            pred = meta.get("predicted_mean_loss")
            pred_txt = "?" if pred is None else f"{pred:.4f} (observed - predicted {obs - pred:+.4f})"
            lines.append(f"{law}: predicted mean val loss {pred_txt}, observed mean over seeds {obs:.4f}; "
                         f"TV to nearest proxy {meta.get('tv_to_nearest_observed', math.nan):.3f} ({meta.get('nearest_run')}), "
                         f"active constraints {meta.get('active_constraints')}, unconstrained TV {meta.get('unconstrained_tv')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", metavar="OUT", help="launch/matched_regret.sh's OUT (holds proxy/ and runs/)")
    ap.add_argument("--best-proxy-file", action="store_true", help="print the best proxy's mixture file and exit")
    args = ap.parse_args(argv)
    if args.best_proxy_file:
        print(best_proxy(args.out)[2])
        return
    print(report(args.out))


if __name__ == "__main__":
    main()
