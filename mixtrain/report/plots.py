"""PNG figures of runs (matplotlib, Agg backend): per run and across runs, and a law vs its table.

Place in the flow: runs.py (`Run`) + tables.py (rows) -> **plots.py** -> PNGs linked from
report.md (cli.py). Every function returns the path it wrote, or None when the run has nothing
to draw (e.g. no validation rows), so that no empty figure is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.report.runs import Run

DPI = 90


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


def colors(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per distinct label (strategy variant), stable in order of first appearance."""
    cmap = _plt().get_cmap("tab10")
    distinct = list(dict.fromkeys(labels))
    return {lab: cmap(i % 10) for i, lab in enumerate(distinct)}


def smooth(values: np.ndarray, span: int | None = None) -> np.ndarray:
    """Exponential moving average (bias-corrected); span defaults to ~1/15 of the points (>= 5)."""
    if len(values) < 3:
        return values
    span = span or max(5, len(values) // 15)
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(values, dtype=float)
    num = den = 0.0
    for i, v in enumerate(values):
        num = (1 - alpha) * num + alpha * v
        den = (1 - alpha) * den + alpha
        out[i] = num / den
    return out


def plot_val_loss(run: Run, path: Path) -> Path | None:
    """val/<domain>/loss (and the mean val/loss, dashed) vs step and vs tokens."""
    domains = [d for d in run.eval_domains if len(run.series(f"val/{d}/loss")[0])]
    if not domains:
        return None
    plt = _plt()
    has_tokens = "tokens" in run.metrics and run.metrics["tokens"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_tokens else 1, figsize=(11 if has_tokens else 6, 4), squeeze=False)
    for ax, x in zip(axes[0], ["step", "tokens"] if has_tokens else ["step"]):
        for d in domains:
            xs, ys = run.series(f"val/{d}/loss", x)
            ax.plot(xs, ys, "o-", ms=3, lw=1.2, label=d)
        xs, ys = run.series("val/loss", x)
        if len(xs):
            ax.plot(xs, ys, "k--", lw=1.5, label="mean (val/loss)")
        ax.set_xlabel(x)
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{run.name}: validation loss per domain")
    return _save(fig, path)


def plot_train_loss(run: Run, path: Path) -> Path | None:
    """train/<domain>/loss and train/loss: raw (faint) and smoothed, vs step."""
    cols = [f"train/{d}/loss" for d in run.train_domains] + ["train/loss"]
    cols = [c for c in cols if len(run.series(c)[0])]
    if not cols:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in cols:
        xs, ys = run.series(c)
        style = {"color": "k", "ls": "--"} if c == "train/loss" else {}
        (line,) = ax.plot(xs, smooth(ys), lw=1.4, label=c[6:-5] if c != "train/loss" else "all (train/loss)", **style)
        ax.plot(xs, ys, lw=0.6, alpha=0.25, color=line.get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (EMA-smoothed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{run.name}: training loss per domain")
    return _save(fig, path)


def plot_weights(run: Run, path: Path) -> Path | None:
    """mix/<domain> vs step as a stacked area; refits marked by vertical lines."""
    domains = [d for d in run.train_domains if f"mix/{d}" in run.metrics]
    if not domains:
        return None
    df = run.metrics[["step"] + [f"mix/{d}" for d in domains]].dropna(how="all", subset=[f"mix/{d}" for d in domains])
    df = df.ffill().fillna(0.0)
    if df.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.stackplot(df["step"].to_numpy(float), *[df[f"mix/{d}"].to_numpy(float) for d in domains], labels=domains,
                 alpha=0.85, step="post")
    for i, rec in enumerate(r for r in run.refits if r.get("status", "updated") == "updated"):
        ax.axvline(float(rec.get("step", math.nan)), color="k", lw=0.6, ls=":", label="refit" if i == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("sampling weight")
    ax.set_ylim(0, 1)
    ax.margins(x=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"{run.name}: mixture weights")
    return _save(fig, path)


def plot_tokens(run: Run, path: Path) -> Path | None:
    """mix/tokens/<domain> vs step."""
    cols = [(d, f"mix/tokens/{d}") for d in run.train_domains if len(run.series(f"mix/tokens/{d}")[0])]
    if not cols:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for d, c in cols:
        ax.plot(*run.series(c), lw=1.4, label=d)
    ax.set_xlabel("step")
    ax.set_ylabel("training tokens consumed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{run.name}: tokens per domain")
    return _save(fig, path)


def plot_run(run: Run, out_dir: Path) -> dict[str, Path]:
    """Every per-run figure into out_dir; {kind: path} of those that had data."""
    out = {
        "validation loss": plot_val_loss(run, out_dir / "val_loss.png"),
        "training loss": plot_train_loss(run, out_dir / "train_loss.png"),
        "weights": plot_weights(run, out_dir / "weights.png"),
        "tokens per domain": plot_tokens(run, out_dir / "tokens.png"),
    }
    return {k: v for k, v in out.items() if v is not None}


def plot_mean_val_loss(runs: Sequence[Run], labels: Sequence[str], path: Path) -> Path | None:
    """val/loss vs step and vs tokens for every run; one colour per strategy variant."""
    if not any(len(r.series("val/loss")[0]) for r in runs):
        return None
    plt = _plt()
    cmap = colors(labels)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, x in zip(axes, ["step", "tokens"]):
        styles = ["-", "--", ":", "-."]
        seen: dict[str, int] = {}
        for run, lab in zip(runs, labels):
            xs, ys = run.series("val/loss", x)
            if not len(xs):
                continue
            k = seen.get(lab, 0)
            seen[lab] = k + 1
            ax.plot(xs, ys, styles[k % 4], marker="o", ms=2.5, lw=1.3, color=cmap[lab], label=f"{run.name} ({lab})")
        ax.set_xlabel(x)
        ax.set_ylabel("mean validation loss (val/loss)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("mean validation loss, all runs")
    return _save(fig, path)


def plot_final_bars(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Final val loss per domain (and the mean) per run, runs in table order (best first)."""
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("val/") and k.endswith("/loss") and k != "val/loss"]
    keys.append("val/loss")
    data = np.array([[float(r[k]) for k in keys] for r in rows], dtype=float)
    if not np.isfinite(data).any():
        return None
    plt = _plt()
    cmap = colors([r["variant"] for r in rows])
    n = len(rows)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(keys) + 0.25 * n * len(keys)), 4.5))
    x = np.arange(len(keys))
    for i, r in enumerate(rows):
        ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(data[i], nan=0.0), width, color=cmap[r["variant"]],
               edgecolor="k" if r["best"] else "none", hatch="//" if i % 2 else None, alpha=0.9,
               label=f"{r['run']} ({r['variant']})" + (" best" if r["best"] else ""))
    finite = data[np.isfinite(data)]
    lo, hi = float(finite.min()), float(finite.max())
    pad = max(0.05 * (hi - lo), 0.01 * abs(hi))
    ax.set_ylim(lo - 2 * pad, hi + pad)
    ax.set_xticks(x, [k[4:-5] if k != "val/loss" else "mean" for k in keys])
    ax.set_ylabel("final validation loss (axis does not start at 0)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("final validation loss per domain, per run (lower is better)")
    return _save(fig, path)


def plot_final_weights(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Final mixture of every run as a horizontal stacked bar, runs in table order."""
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("mix/") and not k.startswith("mix/tokens/")]
    if not keys:
        return None
    data = np.nan_to_num(np.array([[float(r[k]) for k in keys] for r in rows], dtype=float), nan=0.0)
    if not data.any():
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    left = np.zeros(len(rows))
    y = np.arange(len(rows))[::-1]
    for j, k in enumerate(keys):
        ax.barh(y, data[:, j], left=left, label=k[4:])
        left += data[:, j]
    ax.set_yticks(y, [f"{r['run']}" + (" (best)" if r["best"] else "") for r in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel("final sampling weight")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("final mixture per run (best first)")
    return _save(fig, path)


def plot_law(law: Any, table: Any, path: Path) -> tuple[Path, dict[str, float]]:
    """Observed (points) vs law (lines) per eval domain, vs step, for every run of the table.

    Returns the path and the law's mean relative error per eval domain on the table."""
    train = list(law.train_domains)
    evals = list(law.eval_domains)
    if sorted(train) != sorted(table.train_domains) or not set(evals) <= set(table.eval_domains):
        raise ValueError(f"law and table differ in domains: law trains on {train} and evaluates {evals}; the "
                         f"table trains on {list(table.train_domains)} and evaluates {list(table.eval_domains)}")
    W = table.W[:, [list(table.train_domains).index(d) for d in train]]
    L = table.L[:, [list(table.eval_domains).index(d) for d in evals]]
    pred = np.asarray(law.predict(W, table.steps), dtype=float)
    mre = {d: float(np.mean(np.abs(pred[:, j] - L[:, j]) / L[:, j])) for j, d in enumerate(evals)}
    plt = _plt()
    cols = min(3, len(evals))
    nrows = math.ceil(len(evals) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.6 * nrows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    names = table.run_names
    for j, d in enumerate(evals):
        ax = axes[j // cols][j % cols]
        for n, run in enumerate(names):
            idx = np.flatnonzero(table.runs == run)
            idx = idx[np.argsort(table.steps[idx])]
            c = cmap(n / max(1, len(names) - 1))
            ax.plot(table.steps[idx], L[idx, j], "o", ms=3, color=c, label=run if j == 0 else None)
            ax.plot(table.steps[idx], pred[idx, j], "-", lw=1, color=c)
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"val loss ({d})")
        ax.set_title(f"{d}: MRE {100 * mre[d]:.2f}%", fontsize=9)
    if len(names) <= 12:
        axes[0][0].legend(fontsize=6)
    for j in range(len(evals), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(f"law {getattr(law, 'name', '?')}: observed (points) vs predicted (lines), {len(names)} runs")
    return _save(fig, path), mre


def plot_paired(aggs: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Paired differences (mean and 95% CI over seeds) to uniform and natural, on val/loss and val/target."""
    scores = [("val/loss", "mean val loss (training domains)"), ("val/target", "target loss (val/target)")]
    baselines = ("uniform", "natural")
    shown = [a for a in aggs if any(((a.get("paired") or {}).get(b) or {}).get(s, {}).get("lo") is not None
                                    for b in baselines for s, _ in scores)]
    if not shown:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(scores), figsize=(12, 0.45 * len(shown) + 1.8), sharey=True)
    y = np.arange(len(shown))[::-1]
    for ax, (score, title) in zip(axes, scores):
        for k, (b, color) in enumerate(zip(baselines, ("tab:blue", "tab:orange"))):
            means, lo, hi = [], [], []
            for a in shown:
                ci = ((a.get("paired") or {}).get(b) or {}).get(score) or {}
                m = ci.get("mean", np.nan)
                means.append(m if m is not None else np.nan)
                lo.append(ci["lo"] if ci.get("lo") is not None else np.nan)
                hi.append(ci["hi"] if ci.get("hi") is not None else np.nan)
            means, lo, hi = np.array(means, float), np.array(lo, float), np.array(hi, float)
            off = 0.15 if k == 0 else -0.15
            ax.errorbar(means, y + off, xerr=[means - lo, hi - means], fmt="o", ms=4, capsize=3, color=color,
                        label=f"vs {b}, same seed")
        ax.axvline(0.0, color="k", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("difference in final loss (nats; < 0: better than the baseline)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [a["variant"] for a in shown])
    axes[0].legend(fontsize=8)
    fig.suptitle("paired differences to uniform and natural, mean and 95% t-interval over seeds")
    return _save(fig, path)
