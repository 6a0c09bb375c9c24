"""Run mixtrain.train in-process (Lightning's launcher re-runs this script per rank) with a gradient strategy,
and dump per rank the last gradient probe (Gram, target inner products) and the refit records.

    python tests/scripts/probe_ddp.py PROBE_DIR hydra overrides...
"""

import json
import os
import sys

import lightning.pytorch as pl

from mixtrain.hydra_app import compose
from mixtrain.train.mixing_controller import MixingController
from mixtrain.train.run import train


class ProbeDump(pl.Callback):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_train_end(self, trainer, pl_module):
        ctl = next(cb for cb in trainer.callbacks if isinstance(cb, MixingController))
        probe = ctl.last_probe
        dump = {"step": probe.step, "gram": probe.gram.tolist(),
                "target_inner": None if probe.target_inner is None else probe.target_inner.tolist(),
                "records": ctl.records, "strategy": ctl.strategy.state_dict()}
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(dump, f, sort_keys=True)


if __name__ == "__main__":
    probe_dir = sys.argv[1]
    os.makedirs(probe_dir, exist_ok=True)
    train(compose("train", overrides=sys.argv[2:]), extra_callbacks=[ProbeDump(probe_dir)])
