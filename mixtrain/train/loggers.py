"""Run logging: the local `RUN/metrics.csv` (always), wandb without deprecation noise, a null logger.

Place in the flow: module.py / train/mixing_controller.py call `self.log(...)` -> Lightning ->
**loggers.py** writes `RUN/metrics.csv` (format: docs/formats.md, README) next to wandb.

Lightning's CSVLogger is kept for the writing; two things are added:
* `declare_columns(keys)`: per-domain columns known at the start are in the header from the
  first row (Lightning rewrites the whole file whenever a new key appears);
* one row per step: metrics logged at the same step (training, validation, mixture) are merged
  into one row; a row is written once the next step begins (or at the end of the run);
* resume: an existing file is kept up to the checkpoint's step (rows logged after the
  checkpoint are re-logged by the resumed run), instead of being deleted;
* `flush_through(step)`: called before a checkpoint of `step` becomes visible (checkpoints.py),
  so a killed run's file holds every row its checkpoint needs.

`route_logs()` keeps the console to the progress bar, mixtrain's own lines, the final table and
errors: library INFO/WARNING lines (litdata, Lightning) and Python warnings go to `RUN/train.log`.
"""

from __future__ import annotations

import csv
import logging
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from mixtrain.store.runfiles import METRICS

FIRST_COLUMNS = ("step", "tokens", "train/loss", "val/loss")
DROPPED_KEYS = ("epoch",)


def _column_order(keys) -> list[str]:
    first = [k for k in FIRST_COLUMNS if k in keys]
    return first + sorted(k for k in keys if k not in FIRST_COLUMNS)


class _StepRowWriter(ExperimentWriter):
    NAME_METRICS_FILE = METRICS  # the name every reader finds (runfiles.py); Lightning's default is the same

    def __init__(self, log_dir: str, keep_until_step: int | None):
        path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        kept: list[dict[str, Any]] = []
        if keep_until_step is not None and os.path.isfile(path):
            with open(path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if row.get("step") and int(float(row["step"])) <= keep_until_step]
        super().__init__(log_dir)  # deletes an existing metrics.csv (fresh run semantics)
        self._pending: dict[str, Any] | None = None
        if kept:
            self.metrics_keys = _column_order(set().union(*kept))
            with open(self.metrics_file_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)

    def _check_log_dir_exists(self) -> None:
        # the run dir legitimately holds config.yaml, checkpoints, ...: only a stale metrics.csv goes
        if os.path.isfile(self.metrics_file_path):
            os.remove(self.metrics_file_path)

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        values = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics_dict.items() if k not in DROPPED_KEYS}
        if self._pending is not None and self._pending["step"] == step:
            self._pending.update(values)
            return
        if self._pending is not None:
            self.metrics.append(self._pending)
        self._pending = {**values, "step": step}

    def _record_new_keys(self) -> set[str]:
        new_keys = set().union(*self.metrics) - set(self.metrics_keys)
        if new_keys:  # sorting thousands of per-domain columns on every save costs more than the step
            self.metrics_keys = _column_order(set(self.metrics_keys) | new_keys)
        return new_keys

    def declare_columns(self, keys) -> None:
        """Add columns before their first value: Lightning's writer rewrites the whole file each time a
        new key shows up, which with hundreds of domains (train/<d>/loss appears when d is first
        sampled at a logged step) is a rewrite per step for the first hundreds of steps."""
        new = set(keys) - set(self.metrics_keys)
        if not new:
            return
        self.metrics_keys = _column_order(set(self.metrics_keys) | new)
        if os.path.isfile(self.metrics_file_path):  # rows already on disk (a resume): one rewrite now
            self._rewrite_with_new_header(self.metrics_keys)

    def flush_pending(self) -> None:
        if self._pending is not None:
            self.metrics.append(self._pending)
            self._pending = None


class MetricsCSVLogger(CSVLogger):
    """Writes `<run_dir>/metrics.csv`, one row per logged step; resumable (see module docstring)."""

    def __init__(self, run_dir: str, keep_until_step: int | None = None, flush_logs_every_n_steps: int = 50):
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=flush_logs_every_n_steps)
        self._keep_until_step = keep_until_step

    @property
    @rank_zero_experiment
    def experiment(self) -> _StepRowWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _StepRowWriter(self.log_dir, self._keep_until_step)
        return self._experiment

    def log_hyperparams(self, params: Any = None, *args: Any, **kwargs: Any) -> None:
        pass  # the run's config is RUN/config.yaml (written once, secrets redacted)

    def declare_columns(self, keys) -> None:
        """Columns every row will have room for (per-domain metrics), declared before the first row."""
        self.experiment.declare_columns(keys)  # rank_zero_experiment: a no-op off rank 0

    def flush_through(self, step: int) -> None:
        """Write every row up to `step` (included) to disk now (the step is complete)."""
        writer = self._experiment
        if writer is None:
            return
        if writer._pending is not None and writer._pending["step"] is not None and writer._pending["step"] <= step:
            writer.flush_pending()
        self.save()
        if os.path.isfile(writer.metrics_file_path):
            with open(writer.metrics_file_path, "rb+") as f:
                os.fsync(f.fileno())

    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush_pending()
        super().finalize(status)


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger without its `anonymous=None` default, which wandb >= 0.19 answers
    with "WARNING The anonymous setting has no effect" on every run (the setting is deprecated)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


_FILE_HANDLER_NAME = "mixtrain-run-log"


def _all_loggers() -> list[logging.Logger]:
    named = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    return [logging.getLogger()] + named


def route_logs(run_dir: str | None) -> None:
    """Console: errors only from library loggers; everything from INFO up goes to RUN/train.log.

    Hydra's logging config labels every record `[HYDRA]` on the console (litdata logs a few lines
    per dataset it opens), `lightning` adds its own console handler (both print every INFO line),
    and Python warnings (deprecations in dependencies) become log records instead of stderr lines.
    Only plain StreamHandlers are quieted (pytest's capture handlers are subclasses and stay).
    """
    logging.captureWarnings(True)
    for logger in _all_loggers():
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.ERROR)
    if run_dir is None:
        return
    for logger in _all_loggers():  # one file handler per run (tests run several in one process)
        for handler in [h for h in logger.handlers if h.get_name() == _FILE_HANDLER_NAME]:
            logger.removeHandler(handler)
            handler.close()
    os.makedirs(run_dir, exist_ok=True)
    handler = logging.FileHandler(os.path.join(run_dir, "train.log"))
    handler.set_name(_FILE_HANDLER_NAME)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for logger in _all_loggers():
        if logger is root or (not logger.propagate and logger.handlers):
            logger.addHandler(handler)
