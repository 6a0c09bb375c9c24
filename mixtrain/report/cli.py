"""Report over training runs: report.md (tables, headline, refits) and PNG figures.

    python -m mixtrain.report RUN_DIR [RUN_DIR ...] --out REPORT_DIR [--law law.json [--table T.csv]]

Place in the flow: `mixtrain.train` writes run directories -> **report** (read-only over them);
`mixtrain.fitting.collect` + `mixtrain.fitting.fit` give the optional law.json and table.csv.

RUN_DIR is a run directory (holds metrics.csv) or any folder above run directories, e.g. a Hydra
multirun folder: it is searched recursively and its name becomes the runs' group. Runs are
ranked by their final mean validation loss (val/loss, the unweighted mean over the training
domains); the target loss (val/target, `target.importance`, e.g. an eval-only domain) and the
paired differences to uniform and natural (95% t-intervals over seeds) are reported next to it.
With --law, the law's predictions are plotted against the observation table (--table, or one
built from the runs with mixtrain.fitting.collect when --table is not given).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixtrain.report import plots
from mixtrain.report.runs import Run, load_run, load_runs, safe_name
from mixtrain.report.comparable import check_comparable
from mixtrain.report.scale import scale_line
from mixtrain.report.tables import (
    aggregate_markdown, aggregate_table, fmt_weights, headline, holm_markdown, markdown_table, runs_markdown,
    runs_table,
)


def _load_law(law: Any) -> Any:
    if law is None or hasattr(law, "predict"):
        return law
    try:
        from mixtrain.laws import load_law
    except ImportError as e:
        raise ValueError(f"--law {law}: mixtrain.laws.load_law is not available ({e})") from None
    return load_law(str(law))


def _load_table(table: Any, law: Any, runs: Sequence[Run]) -> tuple[Any, str]:
    if table is not None and not isinstance(table, (str, os.PathLike)):
        return table, "the given table"
    if table is not None:
        from mixtrain.laws.table import read_table

        return read_table(str(table)), str(table)
    from mixtrain.fitting.collect import collect

    return collect([str(r.path) for r in runs]), "a table collected from these runs"


def _refit_summary(run: Run) -> list[str]:
    statuses: dict[str, int] = {}
    for rec in run.refits:
        statuses[rec.get("status", "?")] = statuses.get(rec.get("status", "?"), 0) + 1
    updated = [r for r in run.refits if r.get("new_weights")]
    lines = [f"- **{run.name}**: {len(run.refits)} refits ("
             + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ")"]
    if updated:
        last = updated[-1]
        lines.append(f"  - last weights (step {last.get('step')}): {fmt_weights(last['new_weights'])}")
        first = run.refits[0].get("old_weights")
        if first:
            lines.append(f"  - weights before the first refit: {fmt_weights(first)}")
    failed = [r for r in run.refits if r.get("status") == "failed"]
    if failed:
        lines.append(f"  - last failure (step {failed[-1].get('step')}): {failed[-1].get('error')}")
    return lines


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def _unique_names(runs: Sequence[Run]) -> None:
    """Rename runs that share a name (e.g. run dirs of the same name loaded one by one) after their
    parent folder, their folder and their position."""
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        for i, r in enumerate(runs):
            if names.count(r.name) > 1:
                r.name = f"{r.path.resolve().parent.name}/{r.path.resolve().name}#{i}"


def _law_section(law: Any, table: Any, runs: Sequence[Run], out: Path) -> list[str]:
    """report.md's "Law vs observations": the law's predictions against the observation table (and
    its figure), or why the plot was skipped."""
    md = ["## Law vs observations", ""]
    try:
        law_obj = _load_law(law)
        table_obj, source = _load_table(table, law_obj, runs)
        path, mre = plots.plot_law(law_obj, table_obj, out / "law_fit.png")
        md += [f"law `{getattr(law_obj, 'name', '?')}`"
               + (f" ({law_obj.formula})" if getattr(law_obj, "formula", None) else "")
               + f" against {source}: {table_obj.n_runs} runs, {table_obj.n_rows} rows.", "",
               markdown_table(["eval domain", "mean relative error"],
                              [[d, f"{100 * v:.2f}%"] for d, v in mre.items()], "lr"), "",
               f"![law vs observations]({_link(path, out)})", ""]
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"report: law plot skipped: {e}", file=sys.stderr)
        md += [f"law plot skipped: {e}", ""]
    return md


def _per_run_section(ordered: Sequence[Run], per_run: dict[str, dict[str, Path]], out: Path) -> list[str]:
    """report.md's "Per-run figures": one line of figure links per run."""
    md = ["## Per-run figures", ""]
    for run in ordered:
        figs = per_run[run.name]
        links = " · ".join(f"[{kind}]({_link(p, out)})" for kind, p in figs.items()) or "no figures (nothing logged)"
        note = f" ({'; '.join(run.notes)})" if run.notes else ""
        md.append(f"- **{run.name}** (`{run.path}`){note}: {links}")
    md.append("")
    return md


def write_report(runs: Sequence[Run | str | os.PathLike], out_dir: str | os.PathLike, law: Any = None,
                 table: Any = None, across_groups: bool = False) -> Path:
    """Write REPORT_DIR/report.md and its PNGs; returns the report.md path.

    `runs`: Run objects (load_runs) or run directories. `law`: a law.json path or a loaded law (has
    `predict(W, steps)`); `table`: an observation table CSV path or an ObservationTable. Runs of other
    data or model size are refused unless `across_groups` (report/comparable.py)."""
    runs = [r if isinstance(r, Run) else load_run(r) for r in runs]
    if not runs:
        raise ValueError("no runs to report on")
    mixed = check_comparable(runs, across_groups=across_groups)
    _unique_names(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = runs_table(runs)
    aggs = aggregate_table(rows)
    by_name = {r.name: r for r in runs}
    ordered = [by_name[row["run"]] for row in rows]
    labels = [row["variant"] for row in rows]

    overview = {
        "mean validation loss, all runs": plots.plot_mean_val_loss(ordered, labels, out / "val_loss_all.png"),
        "final validation loss per domain": plots.plot_final_bars(rows, out / "final_val_loss.png"),
        "final weights per run": plots.plot_final_weights(rows, out / "final_weights.png"),
        "paired differences to uniform and natural (95% CI)": plots.plot_paired(aggs, out / "paired_ci.png"),
    }
    per_run = {run.name: plots.plot_run(run, out / "runs" / safe_name(run.name)) for run in ordered}

    groups = sorted({r.group for r in runs if r.group})
    eval_only = sorted({d for r in runs for d in r.eval_only_domains})
    md = ["# mixtrain report", "",
          f"{len(runs)} runs" + (f" from {', '.join(groups)}" if groups else "") + ". "
          "Ranked by final mean validation loss (`val/loss`, unweighted mean over the training domains; lower is "
          "better). Target loss: `val/target`, the importance-weighted loss of `target.importance` (the mean over "
          "training domains when none was set)."
          + (f" Eval-only domains (validated, never trained on): {', '.join(eval_only)}." if eval_only else ""),
          "", scale_line(runs) + " Every claim below holds at this scale only.", "",
          *([f"**{mixed}**", ""] if mixed else []), "## Result", ""]
    holm_table, holm_lines = holm_markdown(aggs)
    md += [f"- {line}" for line in headline(rows, aggs)]
    md += [f"- after Holm–Bonferroni: {line}" for line in holm_lines[1:]]
    md.append("")
    md += [f"![{title}]({_link(p, out)})" for title, p in overview.items() if p is not None]
    md += ["", "## Runs", "", "Bold row: the best run; bold cell: the best value of that domain.", "",
           runs_markdown(rows), "",
           "## Strategies", "",
           "mean ± std over the runs of each strategy (std: sample, ddof=1; a single run shows its value). "
           "`vs uniform, same seed` / `vs natural, same seed`: mean over seeds of (this run's loss − the baseline "
           "run's of the same seed) [95% t-interval over seeds]; negative is better, `*`: the interval excludes 0. "
           "Pairing removes the seed-to-seed spread that the plain ± std carries.", "",
           aggregate_markdown(aggs, eval_only), "",
           "## Multiple comparisons (Holm–Bonferroni)", "",
           "Every strategy-versus-baseline comparison of the table above, as one family: the two-sided paired "
           "t-test over seeds (the same pairs as the intervals), then Holm's step-down adjustment. `win` / `loss`: "
           "the adjusted p-value is at most alpha (sign of the difference); `n.s.`: not significant after correction; "
           "`untested`: fewer than 2 seeds or identical differences. " + holm_lines[0] + ".", "",
           holm_table, ""]

    with_refits = [r for r in ordered if r.refits]
    if with_refits:
        md += ["## Refits", ""]
        for run in with_refits:
            md += _refit_summary(run)
        md.append("")
    if law is not None:
        md += _law_section(law, table, runs, out)
    md += _per_run_section(ordered, per_run, out)
    report = out / "report.md"
    report.write_text("\n".join(md))
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="mixtrain report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or folders of runs (Hydra multirun)")
    ap.add_argument("--out", required=True, metavar="REPORT_DIR", help="where report.md and the PNGs go")
    ap.add_argument("--law", metavar="law.json", help="fitted law (python -m mixtrain.fitting.fit) to plot against observations")
    ap.add_argument("--table", metavar="T.csv", help="observation table for --law (default: collected from the runs)")
    ap.add_argument("--across-groups", action="store_true",
                    help="rank runs of different data or model size together (refused by default)")
    args = ap.parse_args(argv)
    if args.table and not args.law:
        ap.error("--table is only used with --law")
    for flag, path in (("--law", args.law), ("--table", args.table)):
        if path and not os.path.isfile(path):
            ap.error(f"{flag} {path}: no such file")
    try:
        runs = load_runs(args.runs)
        report = write_report(runs, args.out, law=args.law, table=args.table, across_groups=args.across_groups)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"report: {e}")
    rows = runs_table(runs)
    aggs = aggregate_table(rows)
    best = headline(rows, aggs)[0].replace("**", "")
    holm_lines = holm_markdown(aggs)[1][1:]
    print(f"report: {len(runs)} runs -> {report}\n{scale_line(runs)}\n{best}\n" + "\n".join(f"Holm: {x}" for x in holm_lines))


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain report")
