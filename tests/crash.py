"""A Lightning callback that simulates a crash at a given step (for the exact-resume tests)."""

from __future__ import annotations

import lightning.pytorch as pl


class CrashAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")
