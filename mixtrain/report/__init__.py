"""Reports over run directories: tables and plots that say which mixture won and why.

    python -m mixtrain.report RUN_DIR [RUN_DIR ...] --out REPORT_DIR [--law law.json [--table T.csv]]

Place in the flow: `mixtrain.train` writes RUN/ (metrics.csv, summary.json, refits.jsonl,
config.yaml; read through mixtrain/store/runfiles.py) -> **report** -> REPORT_DIR/report.md + PNGs.
Modules: runs.py (read run dirs), tables.py (per-run, per-strategy, headline), stats.py
(Holm–Bonferroni over the paired comparisons), scale.py (the scale the claims hold at), plots.py
(figures), cli.py (write_report, main). Read-only over the runs: no Lightning or Hydra.
"""

from mixtrain.report.cli import main, write_report
from mixtrain.report.runs import Run, find_runs, load_run, load_runs
from mixtrain.report.tables import aggregate_table, runs_table

__all__ = ["Run", "aggregate_table", "find_runs", "load_run", "load_runs", "main", "runs_table", "write_report"]
