"""Benchmark: GPU training efficiency of the real training path (Trainer + mixed stream + GPT).

    python -m mixtrain.prepare data=demo data_dir=/data/demo2k shards.block_size=2049
    python bench/train_gpu.py --data-dir /data/demo2k                       # small + medium, eager + compile
    python bench/train_gpu.py --data-dir DIR --models medium --batch-size 16 --compile 1
    python bench/train_gpu.py --data-dir /tmp/demo --models tiny --seq-len 128 --batch-size 8 \
        --accelerator cpu --precision 32-true --steps 12 --warmup 4            # a CPU dry run of the script

Every configuration is one call of `mixtrain.train.run.train()` on the typed config that
`mixtrain.hydra_app.compose("train", overrides)` builds (the same code users run: Lightning
Trainer, MixtureStream over litdata shards, the natural mixture) with Lightning's SimpleProfiler.
Measured after `--warmup` steps (compilation and allocator warm-up excluded):
* tokens/s and step time (CUDA-synchronised at every step end),
* MFU = tokens/s x model FLOPs per token (6N + 12 L d T) / the device's dense bf16 peak,
* data wait: time in the training loop's `train_dataloader_next` / step time (goal < 1 %),
* peak GPU memory (torch.cuda.max_memory_allocated).
Ratios are against the eager run of the same model in the same invocation (compile speed-up).
Output: a Markdown table (paste into BENCHMARKS.md with the command and device).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

REPO = Path(__file__).resolve().parents[1]


class StepTimer(pl.Callback):
    """Wall time per optimizer step after a warm-up, synchronised with CUDA; includes the data wait."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.times: list[float] = []
        self._t: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t is None:
            self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if trainer.global_step > self.warmup:
            self.times.append(now - self._t)
        self._t = now  # the next step's time includes its data wait


def run_one(args, model: str, batch_size: int, compile_: bool) -> dict:
    from mixtrain.hydra_app import compose
    from mixtrain.model.gpt import peak_flops_per_s
    from mixtrain.train.run import train

    out = tempfile.mkdtemp(prefix=f"bench-{model}-")
    overrides = [
        f"data_dir={args.data_dir}", "prepare_if_missing=false", f"out_dir={out}", f"model={model}", "logger=csv",
        f"seq_len={args.seq_len}", f"batch_size={batch_size}", f"trainer.max_steps={args.steps}",
        f"trainer.accelerator={args.accelerator}", "trainer.devices=1", f"trainer.precision={args.precision}",
        "+trainer.limit_val_batches=0", "+trainer.profiler=simple", "trainer.log_every_n_steps=10",
        f"checkpoint_every_n_steps={args.steps * 10}", f"compile={str(compile_).lower()}", "table_at_end=false",
        f"sampler.num_workers={args.num_workers}", "mixing=natural", "val_blocks_per_domain=1",
    ]
    cfg = compose("train", overrides=overrides)
    timer = StepTimer(args.warmup)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    captured = {}

    class _Grab(pl.Callback):  # keep the trainer to read its profiler after fit
        def on_train_end(self, trainer, pl_module):
            captured["trainer"] = trainer
            captured["flops_per_token"] = pl_module.model.flops_per_token(args.seq_len)

    train(cfg, extra_callbacks=[timer, _Grab()])
    trainer = captured["trainer"]
    step_s = statistics.median(timer.times)
    tokens_per_step = batch_size * args.seq_len
    tokens_per_s = tokens_per_step / step_s
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = peak_flops_per_s(device)
    durations = trainer.profiler.recorded_durations
    wait_key = next((k for k in durations if k.endswith("train_dataloader_next")), None)
    waits = durations.get(wait_key, [])[args.warmup + 1:] if wait_key else []
    wait_share = (statistics.median(waits) / step_s) if waits else float("nan")
    return {
        "model": model, "compile": compile_, "batch_size": batch_size, "device": device,
        "step_s": step_s, "tokens_per_s": tokens_per_s,
        "mfu": (tokens_per_s * captured["flops_per_token"] / peak) if peak else float("nan"),
        "data_wait_pct": 100 * wait_share,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="prepared with shards.block_size >= seq_len + 1")
    ap.add_argument("--models", default="small,medium")
    ap.add_argument("--batch-size", default="small=16,medium=8", help="per model: name=B,... or one number")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--compile", default="0,1", help="0 eager, 1 torch.compile; comma list")
    ap.add_argument("--accelerator", default="gpu")
    ap.add_argument("--precision", default="bf16-mixed")
    ap.add_argument("--num-workers", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    sizes = ({kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.batch_size.split(",")}
             if "=" in args.batch_size else None)
    rows = []
    for model in args.models.split(","):
        bs = sizes.get(model, 8) if sizes else int(args.batch_size)
        for c in args.compile.split(","):
            rows.append(run_one(args, model, bs, c == "1"))
            print(rows[-1], flush=True)
    print(f"\ndevice: {rows[0]['device']}; seq_len {args.seq_len}; {args.steps} steps, median after {args.warmup}; "
          f"precision {args.precision}\n")
    print("| model | compile | batch | tokens/s | vs eager | MFU | data wait % | step ms | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    eager = {r["model"]: r["tokens_per_s"] for r in rows if not r["compile"]}
    for r in rows:
        ratio = r["tokens_per_s"] / eager[r["model"]] if r["model"] in eager else float("nan")
        print(f"| {r['model']} | {'yes' if r['compile'] else 'no'} | {r['batch_size']} | {r['tokens_per_s']:,.0f} | "
              f"{ratio:.2f} | {100 * r['mfu']:.1f}% | {r['data_wait_pct']:.2f} | {1000 * r['step_s']:.1f} | "
              f"{r['peak_mem_gib']:.1f} |")


if __name__ == "__main__":
    main()
