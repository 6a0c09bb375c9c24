"""The one line printed after a run or a sweep: the next commands, with this run's own paths.

Place in the flow: the end of train/run.py's `finish` (after the per-domain table) and of a Hydra
sweep (mixtrain/hydra_app.py); pure strings, nothing imported from the stages. After a run the next
steps are export, generate and report; after a sweep, collect -> fit -> report (fitting/, report/).
"""

from __future__ import annotations

import shlex


def _q(path: str) -> str:
    return shlex.quote(str(path))


def after_run(out_dir: str) -> str:
    """`next: mixtrain export RUN --out RUN/hf | mixtrain generate RUN ... | mixtrain report RUN ...`."""
    run = str(out_dir).rstrip("/")
    return ("[mixtrain] next: " + " | ".join([
        f"mixtrain export {_q(run)} --out {_q(run + '/hf')}",
        f"mixtrain generate {_q(run)} --prompt 'Once upon a time'",
        f"mixtrain report {_q(run)} --out {_q(run + '/report')}",
    ]))


def after_sweep(sweep_dir: str) -> str:
    """`next: mixtrain collect SWEEP ... | mixtrain fit --table ... | mixtrain report SWEEP ...`."""
    sweep = str(sweep_dir).rstrip("/")
    table, law = sweep + "/table.csv", sweep + "/law.json"
    return ("[mixtrain] next: " + " | ".join([
        f"mixtrain collect {_q(sweep)} --out {_q(table)}",
        f"mixtrain fit --table {_q(table)} --out {_q(law)}",
        f"mixtrain fit --law-file {_q(law)} --optimize --out {_q(sweep + '/weights.yaml')}",
        f"mixtrain report {_q(sweep)} --out {_q(sweep + '/report')}",
    ]))
