"""Run mixtrain.train in-process (so Lightning's launcher re-runs this script per rank) with a probe
that records, per rank, what every training batch held and the weights in force.

    python tests/scripts/ddp_probe.py PROBE_DIR [CRASH_AT_STEP|-] hydra overrides...

PROBE_SET_WEIGHTS='{"STEP": {domain: w, ...}, ...}' (environment): after optimizer step STEP, call
the sampler's set_weights (as a refit would, also again after a resume), on every rank.
"""

import json
import os
import sys

import lightning.pytorch as pl

from mixtrain.hydra_app import compose
from mixtrain.train.run import train

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf")


class Probe(pl.Callback):
    def __init__(self, out_dir: str, crash_at: int | None, set_weights: dict[int, dict[str, float]]):
        self.out_dir, self.crash_at, self.rows, self.set_weights = out_dir, crash_at, [], set_weights

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.crash_at is not None and trainer.global_step == self.crash_at:
            raise RuntimeError("simulated crash")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        stream = trainer.datamodule.stream
        self.rows.append({
            "step": trainer.global_step, "batch_index": batch["batch_index"],
            "first_tokens": batch["input_ids"][:, :4].tolist(), "domain": batch["domain"].tolist(),
            "blocks": list(zip(batch["domain"].tolist(), batch["block"].tolist())),
            "weights": stream.current_weights(), "domain_samples": stream.domain_samples(),
        })
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.jsonl"), "a") as f:
            f.write(json.dumps(self.rows[-1]) + "\n")
        if trainer.global_step in self.set_weights:
            start = stream.set_weights(self.set_weights[trainer.global_step])
            with open(os.path.join(self.out_dir, f"changes{trainer.global_rank}.jsonl"), "a") as f:
                f.write(json.dumps({"step": trainer.global_step, "effective_batch": start}) + "\n")


if __name__ == "__main__":
    probe_dir, crash = sys.argv[1], sys.argv[2]
    os.makedirs(probe_dir, exist_ok=True)
    cfg = compose("train", overrides=sys.argv[3:])
    changes = {int(k): v for k, v in json.loads(os.environ.get("PROBE_SET_WEIGHTS", "{}")).items()}
    train(cfg, extra_callbacks=[Probe(probe_dir, None if crash == "-" else int(crash), changes)])
