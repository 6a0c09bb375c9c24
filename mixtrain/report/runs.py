"""Read run directories: metrics.csv, summary.json, refits.jsonl, config.yaml -> `Run`.

Place in the flow: `mixtrain.train` writes RUN/ (formats in docs/formats.md) ->
mixtrain/store/runfiles.py (finding runs, reading metrics.csv) -> **runs.py** -> tables.py and
plots.py -> report.md + PNGs.
Pure: pandas, no torch, Lightning or Hydra.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixtrain.store.runfiles import REFITS, SUMMARY, find_run_dirs, read_metrics_rows, run_names



@dataclass
class Run:
    """One training run. `summary` follows summary.json's schema; without the file it is derived
    from metrics.csv (`has_summary` False, wall time unknown)."""

    name: str
    path: Path
    metrics: pd.DataFrame  # one row per logged step, sorted by step; NaN where nothing was logged
    summary: dict[str, Any]
    refits: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    group: str | None = None  # the sweep folder (relative name) a run was found under, if any
    has_summary: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def strategy(self) -> str:
        return str(self.summary.get("strategy") or "unknown")

    @property
    def seed(self) -> int | None:
        return self.summary.get("seed")

    @property
    def eval_domains(self) -> list[str]:
        """Domains with a val/<domain>/loss column or final value."""
        keys = set(self.metrics.columns) | set(self.summary.get("final", {}))
        return sorted(k[4:-5] for k in keys if k.startswith("val/") and k.endswith("/loss") and k != "val/loss")

    @property
    def train_domains(self) -> list[str]:
        """Domains with a mix/<domain> weight column or final value."""
        keys = set(self.metrics.columns) | set(self.summary.get("final", {}))
        return sorted(k[4:] for k in keys if k.startswith("mix/") and not k.startswith("mix/tokens/"))

    @property
    def eval_only_domains(self) -> list[str]:
        """Validated domains the run never trained on (`eval_only_domains`: a val loss, no weight)."""
        train = set(self.train_domains)
        return [d for d in self.eval_domains if d not in train]

    def series(self, column: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
        """(x, value) of the rows where both are logged; empty arrays if the column is absent."""
        if column not in self.metrics or x not in self.metrics:
            return np.empty(0), np.empty(0)
        df = self.metrics[[x, column]].dropna()
        return df[x].to_numpy(float), df[column].to_numpy(float)

    def final(self, key: str) -> float:
        """summary.json's final value of `key`, else the last logged value, else NaN."""
        value = self.summary.get("final", {}).get(key)
        if value is not None and math.isfinite(float(value)):
            return float(value)
        return last_value(self.metrics, key)

    def final_mean_val_loss(self) -> float:
        """Final val/loss (unweighted mean over the training domains); computed from them if absent."""
        value = self.final("val/loss")
        if math.isfinite(value):
            return value
        domains = [d for d in self.eval_domains if d not in self.eval_only_domains]
        per = [self.final(f"val/{d}/loss") for d in domains]
        return float(np.mean(per)) if per and all(math.isfinite(v) for v in per) else math.nan

    def final_target_loss(self) -> float:
        """Final val/target (mixtrain/train/target.py); a run without one and without a target
        importance was scored on the default target, the mean over training domains."""
        value = self.final("val/target")
        if math.isfinite(value) or self.summary.get("target_importance"):
            return value
        return self.final_mean_val_loss()

    def final_weights(self) -> dict[str, float]:
        return {d: self.final(f"mix/{d}") for d in self.train_domains}


def last_value(df: pd.DataFrame, column: str) -> float:
    if column not in df:
        return math.nan
    values = df[column].dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def read_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """metrics.csv as numbers (empty cells -> NaN), one row per step (a re-logged step keeps its
    last row), sorted by step. Raises FileNotFoundError / ValueError naming the file."""
    file, header, rows = read_metrics_rows(run_dir)  # the one metrics.csv reader (mixtrain/store/runfiles.py)
    if not rows:
        raise ValueError(f"{file}: a header but no rows (the run logged nothing yet?)")
    df = pd.DataFrame(rows, columns=header)
    df = df.apply(pd.to_numeric, errors="coerce")
    df = df.dropna(subset=["step"]).drop_duplicates("step", keep="last").sort_values("step", kind="stable")
    if df.empty:
        raise ValueError(f"{file}: no row has a numeric step")
    return df.reset_index(drop=True)


def _read_refits(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            notes.append(f"refits.jsonl line {line_no}: not JSON, skipped")
    return records


def _read_config(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(path.read_text())
    except Exception as e:  # a broken config.yaml must not stop the report
        notes.append(f"config.yaml unreadable ({type(e).__name__})")
        return None
    return data if isinstance(data, dict) else None


def _derived_summary(df: pd.DataFrame, config: Mapping[str, Any] | None) -> dict[str, Any]:
    final = {c: last_value(df, c) for c in df.columns if c.startswith(("val/", "train/", "mix/"))}
    final = {k: v for k, v in final.items() if math.isfinite(v)}
    mixing = (config or {}).get("mixing") or {}
    tokens = last_value(df, "tokens")
    if not math.isfinite(tokens):
        tokens = sum(v for k, v in final.items() if k.startswith("mix/tokens/")) or math.nan
    return {
        "strategy": mixing.get("name") if isinstance(mixing, Mapping) else None,
        "seed": (config or {}).get("seed"),
        "wall_time_s": None,
        "step": int(df["step"].iloc[-1]),
        "tokens": int(tokens) if math.isfinite(tokens) else None,
        "final": final,
    }


def load_run(path: str | os.PathLike, *, name: str | None = None, group: str | None = None) -> Run:
    """Load one run directory. Without summary.json the summary is derived from metrics.csv."""
    path = Path(path)
    notes: list[str] = []
    metrics = read_metrics(path)
    config = _read_config(path / "config.yaml", notes)
    summary_file = path / SUMMARY
    has_summary = summary_file.is_file()
    if has_summary:
        try:
            summary = json.loads(summary_file.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{summary_file}: not JSON ({e}); delete it to report from metrics.csv alone") from None
        summary.setdefault("final", {})
    else:
        summary = _derived_summary(metrics, config)
        notes.append("no summary.json: values from metrics.csv")
    if not any(c.startswith("val/") and c.endswith("/loss") for c in metrics.columns) or \
            metrics.filter(regex=r"^val/").dropna(how="all").empty:
        notes.append("no validation rows")
    refits = _read_refits(path / REFITS, notes)
    return Run(name=name or path.resolve().name, path=path, metrics=metrics, summary=summary, refits=refits,
               config=config, group=group, has_summary=has_summary, notes=notes)


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every directory at or under `paths` holding metrics.csv (run dirs, Hydra multirun folders)."""
    return [run_dir for run_dir, _ in find_run_dirs(paths)]


def _group(run_dir: Path, root: Path) -> str | None:
    """A run found below a folder given on the command line belongs to that sweep folder."""
    if run_dir.resolve() == root.resolve():
        return None
    return Path(root.resolve().name, os.path.relpath(run_dir.parent, root)).as_posix().removesuffix("/.")


def load_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """Load every run at or under `paths`. A run is named by its directory; if names collide, every
    run is named `<sweep folder>/<path below it>` (as mixtrain.fitting.collect names them)."""
    found = find_run_dirs(paths)
    names = run_names(found)
    return [load_run(d, name=n, group=_group(d, root)) for (d, root), n in zip(found, names)]


def safe_name(name: str) -> str:
    """A file-name-safe, link-safe form of a run name."""
    return re.sub(r"[^A-Za-z0-9._=+,-]+", "_", name.replace("/", "__")).strip("_") or "run"
