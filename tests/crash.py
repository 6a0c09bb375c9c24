"""Lightning callbacks that simulate faults at a given step (exact-resume and fault tests)."""

from __future__ import annotations

import os

import lightning.pytorch as pl
import torch


class CrashAt(pl.Callback):
    """Raise (the run's exception handling runs: loggers finalize)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


class KillAt(pl.Callback):
    """Die like SIGKILL at the start of the step after `step` (nothing is flushed or finalized)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os._exit(9)


class NaNAt(pl.Callback):
    """Make the parameters NaN for the step after `step`; `transient`: restore them after that step."""

    def __init__(self, step: int, transient: bool = False):
        self.step, self.transient = step, transient
        self._saved = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self._saved = [p.detach().clone() for p in pl_module.parameters()]
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.transient and self._saved is not None:
            with torch.no_grad():
                for p, saved in zip(pl_module.parameters(), self._saved):
                    p.copy_(saved)
            self._saved = None
