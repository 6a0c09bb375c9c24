"""The training console: one progress line in optimizer steps, with what a mixture run needs.

Place in the flow: run.py adds `progress_callbacks(trainer.enable_progress_bar)` to the
Trainer's callbacks -> **console.py** reads what module.py (loss, val) and train/mixing_controller.py
(`tokens`, `mix/<domain>`) log -> one line on stderr (rank 0 only):

    train  120/200 steps ━━━━━━━━━━╸━━━━━━━━ [00:41<00:27] loss 3.412 | val 3.501 | 9.8k tok/s | mix code .41 prose .33 legal .26

Lightning's own bars count batches of an "epoch": with mixtrain's endless (iterable) mixture
stream that reads "Epoch 0/-2", counts micro-batches (not steps under gradient accumulation)
and shows the logger's "v_num". This bar counts `trainer.global_step` against `max_steps`,
throughput is tokens seen per second (the sampler's own count, smoothed over recent steps),
and the mixture is the current weights, largest first.

When stderr is not a terminal (a SLURM `.out` file, a pipe, `tee`), a redrawn bar would be one
carriage-return update per step, all joined into a single endless line. There the same text goes
out as plain lines instead: one after every `progress_every_n_steps` steps or `progress_every_s`
seconds (TrainConfig), whichever comes first, one after each validation, and one at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

MAX_DOMAINS_SHOWN = 5  # the rest is summarised as "+N"
SMOOTHING = 0.3  # weight of the newest step's throughput in the moving average


def _scalar(value: Any) -> float | None:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None


def mixture_summary(metrics: dict[str, Any], max_shown: int = MAX_DOMAINS_SHOWN) -> str:
    """'code .41 prose .33 +2' from `mix/<domain>` metrics (weights), largest first; '' if none."""
    weights = {k[len("mix/"):]: _scalar(v) for k, v in metrics.items() if k.startswith("mix/") and "/" not in k[4:]}
    weights = {d: w for d, w in weights.items() if w is not None}
    if not weights:
        return ""
    ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = " ".join(f"{d} {w:.2f}".replace(" 0.", " .") for d, w in ranked[:max_shown])
    return shown + (f" +{len(ranked) - max_shown}" if len(ranked) > max_shown else "")


def human_rate(per_s: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.1f}{unit}"
    return f"{per_s:.0f}"


def status_line(metrics: dict[str, Any], tokens_per_s: float | None) -> str:
    """The text after the bar: loss, val loss, throughput, mixture (each only when known)."""
    parts = []
    for key, label in (("train/loss", "loss"), ("val/loss", "val")):
        value = _scalar(metrics.get(key))
        if value is not None:
            parts.append(f"{label} {value:.3f}")
    if tokens_per_s:
        parts.append(f"{human_rate(tokens_per_s)} tok/s")
    mix = mixture_summary(metrics)
    if mix:
        parts.append(f"mix {mix}")
    return " | ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class PlainProgress:
    """The progress text as whole lines, for logs that are files (see the module docstring)."""

    def __init__(self, stream, total: int | None, initial: int, every_n_steps: int, every_s: float):
        self.stream, self.total, self.every_n_steps, self.every_s = stream, total, every_n_steps, every_s
        self.n = self.shown_step = self._start_step = initial
        self._start = self._shown_at = time.monotonic()

    def line(self, status: str) -> str:
        elapsed = time.monotonic() - self._start
        done = self.n - self._start_step
        left = "?" if not self.total or done <= 0 else _clock(elapsed / done * max(self.total - self.n, 0))
        return f"train {self.n}/{self.total or '?'} steps [{_clock(elapsed)}<{left}] {status}".rstrip()

    def show(self, status: str) -> None:
        print(self.line(status), file=self.stream, flush=True)
        self.shown_step, self._shown_at = self.n, time.monotonic()

    def update(self, step: int, status: str) -> None:
        self.n = step
        due = step - self.shown_step >= self.every_n_steps or time.monotonic() - self._shown_at >= self.every_s
        if due and not (self.total and step >= self.total):  # the last step's line: at the end (on_train_end)
            self.show(status)


class StepProgressBar(ProgressBar):
    """Lightning progress bar in optimizer steps (see module docstring); validation shows in the line."""

    def __init__(self, stream=None, every_n_steps: int = 50, every_s: float = 60.0, tty: bool | None = None):
        super().__init__()
        self._plain: PlainProgress | None = None
        self._every = (every_n_steps, every_s)
        self._tty = tty  # None: whether the stream is a terminal
        self._enabled = True
        self._bar = None
        self._stream = stream
        self._last: tuple[float, float] | None = None  # (time, tokens) at the last step shown
        self._tokens_per_s: float | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.trainer.is_global_zero

    def on_train_start(self, trainer, pl_module) -> None:
        if not self.is_enabled:
            return
        from tqdm.auto import tqdm

        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        stream = self._stream or sys.stderr
        self._last = None
        if not (self._tty if self._tty is not None else getattr(stream, "isatty", lambda: False)()):
            self._plain = PlainProgress(stream, total, trainer.global_step, *self._every)
            return
        self._bar = tqdm(total=total, initial=trainer.global_step, desc="train", unit=" steps",
                         dynamic_ncols=True, file=self._stream or sys.stderr, leave=True, postfix=[""],
                         # postfix as a list: tqdm's own "{postfix}" would start with ", "
                         bar_format="{desc} {n_fmt}/{total_fmt}{unit} {bar} [{elapsed}<{remaining}] {postfix[0]}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        shown = self._bar if self._bar is not None else self._plain
        if shown is None or trainer.global_step == shown.n:
            return  # a micro-batch inside gradient accumulation: no step yet
        metrics = trainer.callback_metrics
        tokens, now = _scalar(metrics.get("tokens")), time.perf_counter()
        if tokens is not None:
            if self._last is not None and now > self._last[0] and tokens > self._last[1]:
                rate = (tokens - self._last[1]) / (now - self._last[0])
                self._tokens_per_s = rate if self._tokens_per_s is None else \
                    SMOOTHING * rate + (1 - SMOOTHING) * self._tokens_per_s
            self._last = (now, tokens)
        else:  # no sampler accounting (a foreign module): the module's per-batch figure
            self._tokens_per_s = _scalar(metrics.get("perf/tokens_per_s")) or self._tokens_per_s
        if self._plain is not None:
            self._plain.update(trainer.global_step, status_line(metrics, self._tokens_per_s))
            return
        self._bar.postfix[0] = status_line(metrics, self._tokens_per_s)
        self._bar.update(trainer.global_step - self._bar.n)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._plain is not None and not trainer.sanity_checking:  # a line with the new val loss
            self._plain.show(status_line(trainer.callback_metrics, self._tokens_per_s))
            self._last = None
        if self._bar is not None:  # the val loss appears at once, not with the next step
            self._bar.postfix[0] = status_line(trainer.callback_metrics, self._tokens_per_s)
            self._bar.refresh()
            self._last = None  # throughput is training's: the validation's time is not counted

    def on_train_end(self, trainer, pl_module) -> None:
        if self._plain is not None:
            if self._plain.shown_step != trainer.global_step:  # the last step's line, unless just shown
                self._plain.n = trainer.global_step
                self._plain.show(status_line(trainer.callback_metrics, self._tokens_per_s))
            self._plain = None
        if self._bar is not None:
            self._bar.postfix[0] = status_line(trainer.callback_metrics, self._tokens_per_s)
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._plain = None
        if self._bar is not None:  # the error message starts on a clean line
            self._bar.close()
            self._bar = None

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.write(sep.join(map(str, args)), file=self._stream or sys.stderr)
        else:
            print(*args, sep=sep, **kwargs)


def progress_callbacks(enable_progress_bar: bool = True, every_n_steps: int = 50, every_s: float = 60.0) -> list:
    """The console callbacks for a Trainer built with `enable_progress_bar` (Lightning refuses a bar otherwise);
    `every_n_steps` / `every_s`: the spacing of the plain lines when stderr is not a terminal."""
    return [StepProgressBar(every_n_steps=every_n_steps, every_s=every_s)] if enable_progress_bar else []
