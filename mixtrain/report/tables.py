"""Tables of runs: one row per run, one row per strategy (mean ± std over seeds), the headline.

Place in the flow: runs.py (`Run`) -> **tables.py** -> report.md (cli.py). Pure: numpy.

A strategy's runs are aggregated together unless their `mixing` config (config.yaml, seed and
per-seed keys such as doremi's reference_run / reference_model ignored) differs: then each distinct config is its own row, labelled by the keys that differ,
e.g. `temperature (temperature=2.0)`. std is the sample standard deviation (ddof=1).

Two scores per run: `val/loss` (unweighted mean over the training domains) and `val/target`
(the importance-weighted target, mixtrain/train/target.py; = val/loss unless `target.importance` was
set). Paired differences: a seed fixes initialisation and data order for every strategy, so
each strategy is compared with the baseline run (uniform, natural) of the same seed; the 95%
confidence interval is the t-interval over seeds, mean ± t(0.975, n-1) · sd / sqrt(n), and its
p-value the paired t-test's; `holm_markdown` corrects the whole table's comparisons (stats.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixtrain.report.runs import Run
from mixtrain.report.stats import ALPHA, comparisons, paired_t_pvalue, survivors

BASELINES = ("uniform", "natural")
SCORES = ("val/loss", "val/target")  # what the paired differences are computed on
# mixing keys that differ between the seeds of one strategy by design (doremi's reference run or
# reference model is the uniform run of the same seed): not a different variant
PER_SEED_KEYS = ("seed", "reference_run", "reference_model")
MINUS = "\u2212"


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, key + "."))
        elif k not in PER_SEED_KEYS:
            out[key] = v
    return out


def variants(runs: Sequence[Run]) -> list[str]:
    """Aggregation label of each run: its strategy, plus the mixing keys that set it apart."""
    labels = [r.strategy for r in runs]
    by: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(runs):
        if r.config and isinstance(r.config.get("mixing"), Mapping):
            by[r.strategy].append(i)
    for strategy, idx in by.items():
        cfgs = [_flat(runs[i].config["mixing"]) for i in idx]
        keys = sorted(set().union(*cfgs))
        differing = [k for k in keys if len({repr(c.get(k)) for c in cfgs}) > 1]
        if differing:
            for i, c in zip(idx, cfgs):
                labels[i] = f"{strategy} ({', '.join(f'{k}={c.get(k)}' for k in differing)})"
    return labels


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def runs_table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One dict per run, best (lowest final mean val loss) first; runs without one last.

    Keys: rank, run, group, path, strategy, variant, seed, val/<domain>/loss (every eval domain of
    any run; NaN where a run lacks it), val/loss (final unweighted mean), mix/<domain> (final
    weights), step, tokens, wall_time_s, refits, has_summary, notes, best.
    """
    eval_domains = sorted(set().union(*[r.eval_domains for r in runs])) if runs else []
    train_domains = sorted(set().union(*[r.train_domains for r in runs])) if runs else []
    rows = []
    for run, variant in zip(runs, variants(runs)):
        s = run.summary
        row: dict[str, Any] = {
            "run": run.name, "group": run.group, "path": str(run.path), "strategy": run.strategy,
            "variant": variant, "seed": run.seed,
        }
        for d in eval_domains:
            row[f"val/{d}/loss"] = run.final(f"val/{d}/loss")
        row["val/loss"] = run.final_mean_val_loss()
        row["val/target"] = run.final_target_loss()
        row["eval_only_domains"] = run.eval_only_domains
        for d in train_domains:
            row[f"mix/{d}"] = run.final(f"mix/{d}")
        row.update(step=s.get("step"), tokens=s.get("tokens"), wall_time_s=s.get("wall_time_s"),
                   refits=len(run.refits), has_summary=run.has_summary, notes="; ".join(run.notes))
        rows.append(row)
    rows.sort(key=lambda r: (not math.isfinite(r["val/loss"]), r["val/loss"] if math.isfinite(r["val/loss"]) else 0.0))
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
        row["best"] = i == 1 and math.isfinite(row["val/loss"])
    return rows


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    v = np.array([x for x in values if _finite(x)], dtype=float)
    return {"mean": float(v.mean()) if len(v) else math.nan,
            "std": float(v.std(ddof=1)) if len(v) > 1 else None, "n": int(len(v))}


def paired_ci(diffs: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """{mean, std, n, lo, hi, p}: the t-interval of the mean of paired differences and the two-sided
    paired t-test p-value of mean = 0 (lo/hi None if n < 2; p None if n < 2 or all differences equal)."""
    out = _mean_std(diffs)
    out["lo"] = out["hi"] = None
    out["p"] = paired_t_pvalue(diffs)
    if out["n"] > 1:
        from scipy.stats import t

        half = float(t.ppf(0.5 + confidence / 2, out["n"] - 1)) * out["std"] / math.sqrt(out["n"])
        out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    return out


def aggregate_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per strategy variant: n runs, seeds, {mean, std, n} of val/loss, val/target, every
    val/<domain>/loss and the final mix/<domain> weights; `paired[baseline][score]`: paired_ci of
    (run - the baseline's run of the same seed) for baseline in BASELINES, score in SCORES;
    best mean val loss first."""
    by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by[row["variant"]].append(row)
    metric_keys = [k for k in (rows[0] if rows else {}) if k.startswith(("val/", "mix/"))]
    base_by_seed = {(b, score): {r["seed"]: r[score] for r in rows
                                 if r["strategy"] == b and r["seed"] is not None and _finite(r.get(score))}
                    for b in BASELINES for score in SCORES}
    out = []
    for variant, group in by.items():
        agg: dict[str, Any] = {"variant": variant, "strategy": group[0]["strategy"], "n": len(group),
                               "seeds": sorted((g["seed"] for g in group), key=lambda x: (x is None, x or 0)), "runs": [g["run"] for g in group]}
        for k in metric_keys:
            agg[k] = _mean_std([g[k] for g in group])
        agg["tokens"] = _mean_std([g["tokens"] for g in group])
        # seeds share initialisation and data order across strategies, so the difference to the
        # uniform run of the same seed is far less noisy than either mean (seed sd cancels)
        agg["paired"] = {b: {score: paired_ci([g[score] - base_by_seed[b, score][g["seed"]] for g in group
                                                if g["seed"] in base_by_seed[b, score] and _finite(g.get(score))])
                             for score in SCORES} for b in BASELINES}
        agg["vs_uniform_paired"] = agg["paired"]["uniform"]["val/loss"]
        out.append(agg)
    out.sort(key=lambda a: (not math.isfinite(a["val/loss"]["mean"]), np.nan_to_num(a["val/loss"]["mean"], nan=0.0)))
    return out


def signed(x: float, digits: int = 4) -> str:
    return f"{x:+.{digits}f}".replace("-", MINUS)


def fmt(x: Any, digits: int = 4) -> str:
    return f"{float(x):.{digits}f}" if _finite(x) else "-"


def fmt_mean_std(ms: Mapping[str, Any], digits: int = 4) -> str:
    if not _finite(ms.get("mean")):
        return "-"
    if ms.get("std") is None:
        return fmt(ms["mean"], digits)
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def fmt_tokens(x: Any) -> str:
    if not _finite(x):
        return "-"
    x = float(x)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.2f}{unit}"
    return f"{x:.0f}"


def fmt_seconds(x: Any) -> str:
    if not _finite(x):
        return "-"
    s = float(x)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def fmt_weights(w: Mapping[str, float], digits: int = 3) -> str:
    return " ".join(f"{d}={float(v):.{digits}f}" for d, v in w.items() if _finite(v)) or "-"


def headline(rows: Sequence[Mapping[str, Any]], aggs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines that say which mixture won, by how much against the baselines, and where."""
    ranked = [a for a in aggs if math.isfinite(a["val/loss"]["mean"])]
    if not ranked:
        return ["no run has a final validation loss: nothing to rank (were validation steps run?)"]
    best = ranked[0]
    bm = best["val/loss"]["mean"]
    seeds = f" over {best['n']} runs" if best["n"] > 1 else ""
    vs = []
    for name in BASELINES:
        base = next((a for a in ranked if a["strategy"] == name and a is not best), None)
        if base is not None:
            d = bm - base["val/loss"]["mean"]
            vs.append(f"vs {base['variant']} {signed(d)} ({signed(100 * d / base['val/loss']['mean'], 2)}%)")
    lines = [f"**best: {best['variant']}** mean val loss {bm:.4f}{seeds}" + (f"; {', '.join(vs)}" if vs else "")]
    domains = [k for k in best if k.startswith("val/") and k.endswith("/loss") and k != "val/loss"]
    for name in BASELINES:
        base = next((a for a in ranked if a["strategy"] == name and a is not best), None)
        if base is not None and domains:
            parts = [f"{k[4:-5]} {signed(best[k]['mean'] - base[k]['mean'])}" for k in domains
                     if math.isfinite(best[k]["mean"]) and math.isfinite(base[k]["mean"])]
            lines.append(f"per domain vs {base['variant']}: " + ", ".join(parts))
    weights = {k[4:]: v["mean"] for k, v in best.items() if k.startswith("mix/") and not k.startswith("mix/tokens/")}
    if weights:
        lines.append(f"final weights of {best['variant']}: {fmt_weights(weights)}")
    if len(ranked) > 1:
        second = ranked[1]
        margin = second["val/loss"]["mean"] - bm
        stds = [s for s in (best["val/loss"]["std"], second["val/loss"]["std"]) if s is not None]
        if stds and margin <= max(stds):
            lines.append(f"caution: the margin over {second['variant']} ({margin:.4f}) is within seed noise "
                         f"(std up to {max(stds):.4f})")
        elif not stds:
            lines.append(f"margin over the runner-up {second['variant']}: {margin:.4f} (one seed each: "
                         "no estimate of seed noise)")
        else:
            lines.append(f"margin over the runner-up {second['variant']}: {margin:.4f} (> seed std {max(stds):.4f})")
    for score, what in (("val/loss", "mean val loss"), ("val/target", "target loss")):
        for name in BASELINES:
            better = [a["variant"] for a in ranked if (a.get("paired") or {}).get(name, {}).get(score, {}).get("hi")
                      is not None and a["paired"][name][score]["hi"] < 0]
            worse = [a["variant"] for a in ranked if (a.get("paired") or {}).get(name, {}).get(score, {}).get("lo")
                     is not None and a["paired"][name][score]["lo"] > 0]
            if any(a["strategy"] == name for a in ranked):
                lines.append(f"{what} vs {name} (paired by seed, 95% CI excludes 0, uncorrected): better: {', '.join(better) or 'none'}; "
                             f"worse: {', '.join(worse) or 'none'}")
    by_target = sorted((a for a in ranked if _finite(a.get("val/target", {}).get("mean"))),
                       key=lambda a: a["val/target"]["mean"])
    if by_target:
        lines.append(f"best on the target (val/target): {by_target[0]['variant']} {by_target[0]['val/target']['mean']:.4f}")
    best_run = next((r for r in rows if r["best"]), None)
    if best_run is not None and (best["n"] > 1 or best_run["variant"] != best["variant"]):
        lines.append(f"best single run: {best_run['run']} ({best_run['variant']}, seed {best_run['seed']}) "
                     f"mean val loss {best_run['val/loss']:.4f}")
    tokens = [r["tokens"] for r in rows if _finite(r["tokens"])]
    if tokens and max(tokens) > 1.01 * min(tokens):
        lines.append(f"caution: runs trained on different token counts ({fmt_tokens(min(tokens))} to "
                     f"{fmt_tokens(max(tokens))}); compare losses with care")
    return lines


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub markdown table; `align` is one char per column, 'l' or 'r'."""
    align = align or "l" * len(header)
    esc = [[str(c).replace("|", "\\|") for c in row] for row in [list(header), *body]]
    lines = ["| " + " | ".join(esc[0]) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
    return "\n".join(lines)


def runs_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-run table; the winner's row in bold, the best value of each domain column in bold."""
    domains = [k for k in (rows[0] if rows else {}) if k.startswith("val/") and k.endswith("/loss") and k != "val/loss"]
    col_best = {k: np.nanmin([r[k] for r in rows]) if any(_finite(r[k]) for r in rows) else None for k in domains}
    eval_only = sorted({d for r in rows for d in r.get("eval_only_domains", [])})
    header = ["#", "run", "strategy", "seed", *[domain_label(k[4:-5], eval_only) for k in domains], "mean val loss",
              "target loss", "step", "tokens", "wall time", "refits", "notes"]
    body = []
    for r in rows:
        cells = [str(r["rank"]), r["run"], r["variant"], "-" if r["seed"] is None else str(r["seed"])]
        for k in domains:
            c = fmt(r[k])
            cells.append(f"**{c}**" if col_best[k] is not None and _finite(r[k]) and r[k] == col_best[k] else c)
        cells += [fmt(r["val/loss"]), fmt(r.get("val/target")), "-" if r["step"] is None else str(r["step"]), fmt_tokens(r["tokens"]),
                  fmt_seconds(r["wall_time_s"]), str(r["refits"]), r["notes"] or ""]
        if r["best"]:
            cells = [f"**{c.strip('*')}**" if c else c for c in cells]
            cells[0] = "**1 (best)**"
        body.append(cells)
    return markdown_table(header, body, "rllr" + "r" * len(domains) + "rrrrrrl")


def fmt_ci(ci: Mapping[str, Any] | None, digits: int = 4) -> str:
    """'−0.0123 [−0.0301, +0.0055]', with ' *' when the interval excludes 0; '-' if undefined."""
    if not ci or not _finite(ci.get("mean")):
        return "-"
    if ci.get("lo") is None:
        return signed(ci["mean"], digits) + (" (n=1)" if ci.get("n") == 1 else "")
    star = " *" if ci["lo"] > 0 or ci["hi"] < 0 else ""
    return f"{signed(ci['mean'], digits)} [{signed(ci['lo'], digits)}, {signed(ci['hi'], digits)}]{star}"


def domain_label(domain: str, eval_only: Sequence[str]) -> str:
    return f"{domain} (eval-only)" if domain in eval_only else domain


def aggregate_markdown(aggs: Sequence[Mapping[str, Any]], eval_only: Sequence[str] = ()) -> str:
    """Per strategy: mean val loss, target loss, each with its paired 95% CIs vs uniform and natural."""
    domains = [k for k in (aggs[0] if aggs else {}) if k.startswith("val/") and k.endswith("/loss") and k != "val/loss"]
    header = ["strategy", "runs", "seeds", "mean val loss", "vs uniform, same seed [95% CI]",
              "vs natural, same seed [95% CI]", "target loss", "target vs uniform [95% CI]",
              "target vs natural [95% CI]", *[domain_label(k[4:-5], eval_only) for k in domains], "tokens"]
    body = []
    for i, a in enumerate(aggs):
        paired = a.get("paired") or {}
        cells = [a["variant"], str(a["n"]), ", ".join("-" if s is None else str(s) for s in a["seeds"]),
                 fmt_mean_std(a["val/loss"]),
                 *[fmt_ci((paired.get(b) or {}).get("val/loss")) for b in BASELINES],
                 fmt_mean_std(a.get("val/target") or {}),
                 *[fmt_ci((paired.get(b) or {}).get("val/target")) for b in BASELINES],
                 *[fmt_mean_std(a[k]) for k in domains], fmt_tokens(a["tokens"]["mean"])]
        if i == 0 and math.isfinite(a["val/loss"]["mean"]):
            cells = [f"**{c}**" for c in cells]
        body.append(cells)
    return markdown_table(header, body, "lrlrrrrrr" + "r" * len(domains) + "r")


def fmt_p(p: Any) -> str:
    if not _finite(p):
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def holm_markdown(aggs: Sequence[Mapping[str, Any]], alpha: float = ALPHA) -> tuple[str, list[str]]:
    """The Holm–Bonferroni table over every strategy-vs-baseline comparison of `aggs` (one family),
    and summary lines: the surviving wins per score and who beats both baselines after correction."""
    rows = comparisons(aggs, BASELINES, SCORES, alpha)
    body = [[r["variant"], r["baseline"], r["score"], str(r["n"]),
             fmt_ci({"mean": r["mean"], "lo": r["lo"], "hi": r["hi"], "n": r["n"]}),
             fmt_p(r["p"]), fmt_p(r["p_holm"]), r["verdict"]] for r in rows]
    table = markdown_table(["strategy", "vs", "score", "seeds", "paired difference [95% CI]", "p (paired t)",
                            "p (Holm)", f"after Holm (alpha {alpha:g})"], body, "lllrrrrl")
    m = sum(r["p"] is not None for r in rows)
    lines = [f"{m} comparisons in the family (every non-baseline strategy x {', '.join(BASELINES)} x "
             f"{', '.join(SCORES)}); Holm controls the chance of any false claim among them at {alpha:g}"]
    for score in SCORES:
        wins = [f"{r['variant']} vs {r['baseline']}" for r in rows if r["score"] == score and r["verdict"] == "win"]
        both = survivors(rows, BASELINES, score)
        lines.append(f"{score}: wins that survive Holm: {', '.join(wins) or 'none'}; beats min({', '.join(BASELINES)}) "
                     f"(wins against both) after correction: {', '.join(both) or 'none'}")
    return table, lines
