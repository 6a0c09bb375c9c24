"""Run mixtrain.train in-process (Lightning's launcher re-runs this script per rank) with an online
strategy, and at the end dump, per rank, what the refits decided and what the sampler applied.

    python tests/scripts/refit_probe.py PROBE_DIR hydra overrides...

PROBE_DIR/rank<r>.json = {"records": the Refit callback's records (every rank keeps them),
"schedule": the sampler's weight schedule, "strategy": the strategy's state_dict()}.
"""

import json
import os
import sys

import lightning.pytorch as pl

from mixtrain.train.mixing_controller import MixingController
from mixtrain.hydra_app import compose
from mixtrain.train.run import train

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf")


class RefitDump(pl.Callback):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_train_end(self, trainer, pl_module):
        refit = next(cb for cb in trainer.callbacks if isinstance(cb, MixingController))
        dump = {"records": refit.records, "schedule": trainer.datamodule.stream.schedule(),
                "strategy": refit.strategy.state_dict()}
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(dump, f, sort_keys=True)


if __name__ == "__main__":
    probe_dir = sys.argv[1]
    os.makedirs(probe_dir, exist_ok=True)
    cfg = compose("train", overrides=sys.argv[2:])
    train(cfg, extra_callbacks=[RefitDump(probe_dir)])
