"""Benchmark: what online refits cost, as a share of training time (ADO, ODM, DoReMi).

    python bench/refit.py [--data-dir data/demo] [--steps 300] [--strategies ado,odm,doremi] [--threads N] [override ...]

One process trains the tiny model for --steps steps (experiment=demo's seq_len/batch_size) with
`mixing=uniform` (static: no refits), then with every online strategy at its default interval
and knobs (conf/mixing/<name>.yaml); DoReMi uses that uniform run as its reference run.
Validation runs once, at the last step, and is not counted. Per online run:
  refit_s    sum of `seconds` over RUN/refits.jsonl (strategy.update + broadcast + sampler scheduling)
  train_s    wall time of the training loop (on_train_start -> on_train_end) minus validation
  refit %    refit_s / train_s of that run
  vs uniform refit_s / train_s of the uniform run (the static baseline measured in the same process)
  wall +%    (train_s - uniform train_s) / uniform train_s: everything the strategy changes, noisy
If --data-dir holds no prepared data, it is prepared from the embedded demo corpus first.
Prints a Markdown table and the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("WANDB_MODE", "offline")
REPO = Path(__file__).resolve().parents[1]


def _timer():
    import lightning.pytorch as pl

    class TrainTimer(pl.Callback):
        """Training-loop wall time without validation (validation only runs at the end here)."""

        def __init__(self):
            self.start = self.end = None
            self.val = 0.0
            self._val_start = None

        def on_train_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_validation_start(self, trainer, pl_module):
            self._val_start = time.perf_counter()

        def on_validation_end(self, trainer, pl_module):
            self.val += time.perf_counter() - self._val_start

        def on_train_end(self, trainer, pl_module):
            self.end = time.perf_counter()

        @property
        def seconds(self) -> float:
            return self.end - self.start - self.val

    return TrainTimer()


def _config(data_dir: str, out_dir: str, steps: int, mixing: str, extra: list[str]):
    from mixtrain.hydra_app import compose

    overrides = [
        "experiment=demo", f"data_dir={data_dir}", f"out_dir={out_dir}", f"mixing={mixing}", "logger=csv",
        f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", f"checkpoint_every_n_steps={steps}",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false",  # ++: set whether or not the trainer option has the key
        "table_at_end=false", *extra,
    ]
    return compose("train", overrides=overrides)


def _run(data_dir: str, out_dir: str, steps: int, mixing: str, extra: list[str]) -> dict:
    from mixtrain.train.run import train

    cfg = _config(data_dir, out_dir, steps, mixing, extra)
    timer = _timer()
    train(cfg, extra_callbacks=[timer])
    refits = []
    path = Path(out_dir) / "refits.jsonl"
    if path.is_file():
        refits = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {
        "mixing": mixing, "interval": cfg.mixing.get("refit_every_n_steps"), "train_s": timer.seconds,
        "refits": len(refits), "updated": sum(r["status"] == "updated" for r in refits),
        "failed": sum(r["status"] == "failed" for r in refits),
        "refit_s": sum(float(r["seconds"]) for r in refits),
        "max_refit_ms": max((1000 * float(r["seconds"]) for r in refits), default=0.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(REPO / "data" / "demo"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--strategies", default="ado,odm,doremi")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--out", default=None, help="folder for the run directories (default: a temporary one)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. seq_len=64")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    prepare = [] if os.path.isfile(os.path.join(args.data_dir, "manifest.json")) else ["prepare_if_missing=true"]
    root = args.out or tempfile.mkdtemp(prefix="refit-bench-")
    results = []
    uniform = _run(args.data_dir, os.path.join(root, "uniform"), args.steps, "uniform", prepare + args.overrides)
    for name in [s for s in args.strategies.split(",") if s]:
        extra = [f"mixing.reference_run={os.path.join(root, 'uniform')}"] if name == "doremi" else []
        results.append(_run(args.data_dir, os.path.join(root, name), args.steps, name, extra + args.overrides))

    base = uniform["train_s"]
    print(f"\ndata {args.data_dir}, {args.steps} steps, experiment=demo (tiny model, seq_len 128, batch 16)"
          + (f" with {' '.join(args.overrides)}" if args.overrides else "") + ", "
          f"torch threads {torch.get_num_threads()}, runs in {root}\n")
    print("| strategy | refit every | refits (updated) | refit s | max refit ms | train s | refit % of run "
          "| refit % of uniform | wall vs uniform |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| uniform (static) | - | 0 | 0 | 0 | {base:.1f} | - | - | - |")
    for r in results:
        print(f"| {r['mixing']} | {r['interval']} | {r['refits']} ({r['updated']}) | {r['refit_s']:.3f} "
              f"| {r['max_refit_ms']:.1f} | {r['train_s']:.1f} | {100 * r['refit_s'] / r['train_s']:.2f}% "
              f"| {100 * r['refit_s'] / base:.2f}% | {100 * (r['train_s'] - base) / base:+.1f}% |")
        if r["failed"]:
            print(f"  ({r['failed']} refits of {r['mixing']} failed: see {root}/{r['mixing']}/refits.jsonl)")
    print(f"\ncommand: python {' '.join(shlex.quote(a) for a in ['bench/refit.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
