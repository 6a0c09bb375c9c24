"""Benchmark: the gradient probe's cost (share of training time at a refit every 50/100/500 steps, extra
memory) for 8, 64 and 512 domains, and its sketch error against exact inner products on the tiny model.

    OMP_NUM_THREADS=1 python bench/probe.py [--domains 8,64,512] [--every 50,100,500] [--d-model 128]
        [--n-layer 4] [--seq-len 64] [--micro-batch 16] [--accumulate 4] [--samples-per-domain 8]
        [--sketch-dim 8192] [--steps 5]

Baseline, measured in the same process: one training step = `--accumulate` micro-batches of
`--micro-batch` sequences (forward, backward) + one AdamW step, the global batch of a run that
accumulates gradients. Probe: `GradientProbe.measure` (mixtrain/train/grad_probe.py) exactly as a
refit runs it, on synthetic token blocks (k domains x samples_per_domain blocks + one target batch
of target_samples blocks). Share at a refit every N steps = probe_s / (N x step_s + probe_s).
Memory: the probe keeps (k + 1) x sketch_dim float32 sketches, plus transiently one gradient (the
size of the training gradient) and a hash index of at most CHUNK coordinates; the figures are those
byte counts (computed, not measured), next to what k full gradients would take. Sketch error: on the tiny model (exact gradients fit
in memory), RMS of (<Sa,Sb> - <a,b>)/(|a||b|) over pairs of real gradients and 5 seeds, against the
stated bound sqrt(2/d). Prints Markdown tables and the command line.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class SyntheticProbeData:
    """ProbeData's interface (draw/read/seed/val_blocks) over random tokens: no disk, any number of domains."""

    def __init__(self, num_domains: int, block_size: int, vocab: int, seed: int = 0):
        self.block_size, self.vocab, self.seed = block_size, vocab, seed
        self.val_blocks = [64] * num_domains

    def draw(self, split, step, index, n):
        return np.random.default_rng([self.seed, step, index]).integers(0, 1 << 20, size=n)

    def read(self, split, domain_ids, blocks):
        rng = np.random.default_rng([int(b) for b in blocks[:4]] + [len(blocks)])
        return rng.integers(0, self.vocab, size=(len(blocks), self.block_size), dtype=np.int64)


def _model(args):
    import torch

    from mixtrain.model.config import GPTConfig
    from mixtrain.model.gpt import GPT

    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=args.vocab, seq_len=args.seq_len, n_layer=args.n_layer, n_head=4,
                         d_model=args.d_model))


def step_seconds(model, args) -> float:
    """Median wall time of one training step (accumulated micro-batches + AdamW), after a warm-up step."""
    import torch

    from mixtrain.model.gpt import per_token_loss

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        for _ in range(args.accumulate):
            tok = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len + 1))
            loss = per_token_loss(model(tok[:, :-1]), tok[:, 1:]).mean() / args.accumulate
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def probe_cost(model, k: int, args) -> tuple[float, dict[str, float]]:
    """(seconds of one refit's probe, memory figures in MiB) for k domains."""
    from mixtrain.mixing.gradient_probe import ProbeSpec
    from mixtrain.train.grad_probe import CHUNK, GradientProbe

    spec = ProbeSpec(samples_per_domain=args.samples_per_domain, target_samples=args.samples_per_domain,
                     sketch_dim=args.sketch_dim, tasks="target")
    domains = [f"d{i:03d}" for i in range(k)]
    probe = GradientProbe(spec, SyntheticProbeData(k, args.seq_len + 1, args.vocab), domains, domains,
                          {d: 1.0 / k for d in domains}, batch_size=args.micro_batch)
    probe.measure(model, step=0)  # warm-up
    t0 = time.perf_counter()
    probe.measure(model, step=1)
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    mib = 1 / (1 << 20)
    memory = {"sketches": (k + 1) * args.sketch_dim * 4 * mib, "gradient": params * 4 * mib,
              "hash index": min(CHUNK, max(p.numel() for p in model.parameters())) * 16 * mib,
              "full gradients (naive)": (k + 1) * params * 4 * mib}
    return seconds, memory


def sketch_error(args) -> list[tuple[int, float, float]]:
    import torch

    from mixtrain.mixing.gradient_probe import sketch_error_bound
    from mixtrain.model.config import GPTConfig
    from mixtrain.model.gpt import GPT, per_token_loss
    from mixtrain.train.grad_probe import CountSketch

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, seq_len=32, n_layer=2, n_head=2, d_model=32))
    grads = []
    for i in range(6):
        tok = torch.randint(0, 320, (4, 33), generator=torch.Generator().manual_seed(i))
        grads.append(torch.autograd.grad(per_token_loss(model(tok[:, :-1]), tok[:, 1:]).mean(),
                                         list(model.parameters())))
    flat = [torch.cat([g.reshape(-1) for g in gs]).double() for gs in grads]
    out = []
    for d in (256, 1024, 4096, 16384):
        errs = []
        for seed in range(5):
            sk = [CountSketch(d, seed, 0).add(torch.zeros(d, dtype=torch.float64), gs) for gs in grads]
            errs += [(float(sk[i] @ sk[j]) - float(flat[i] @ flat[j])) / float(flat[i].norm() * flat[j].norm())
                     for i in range(6) for j in range(i, 6)]
        out.append((d, float(np.sqrt(np.mean(np.square(errs)))), sketch_error_bound(d)))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", default="8,64,512")
    parser.add_argument("--every", default="50,100,500")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--accumulate", type=int, default=4)
    parser.add_argument("--samples-per-domain", type=int, default=8)
    parser.add_argument("--sketch-dim", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    import torch
    from tqdm import tqdm

    model = _model(args)
    step_s = step_seconds(model, args)
    everies = [int(x) for x in args.every.split(",")]
    rows = []
    for k in tqdm([int(x) for x in args.domains.split(",")], desc="probe: domains", file=sys.stderr):
        probe_s, mem = probe_cost(model, k, args)
        rows.append((k, probe_s, mem))
    params = sum(p.numel() for p in model.parameters())
    print(f"\nmodel: {params / 1e6:.2f}M parameters, d_model {args.d_model}, {args.n_layer} layers, seq_len "
          f"{args.seq_len}; step = {args.accumulate} x {args.micro_batch} sequences + AdamW: {step_s * 1e3:.1f} ms; "
          f"probe: {args.samples_per_domain} blocks per domain + {args.samples_per_domain} target blocks, sketch_dim "
          f"{args.sketch_dim}; torch threads {torch.get_num_threads()}\n")
    print("| domains | probe s | probe / step | " + " | ".join(f"share @ every {n}" for n in everies)
          + " | sketches MiB | transient MiB (gradient + index) | naive k full gradients MiB |")
    print("|---|---|---|" + "---|" * len(everies) + "---|---|---|")
    for k, probe_s, mem in rows:
        shares = [probe_s / (n * step_s + probe_s) for n in everies]
        print(f"| {k} | {probe_s:.2f} | {probe_s / step_s:.1f} | " + " | ".join(f"{s:.1%}" for s in shares)
              + f" | {mem['sketches']:.2f} | {mem['gradient'] + mem['hash index']:.1f} | {mem['full gradients (naive)']:.0f} |")
    print("\n| sketch_dim | RMS relative error | bound sqrt(2/d) |\n|---|---|---|")
    for d, rms, bound in sketch_error(args):
        print(f"| {d} | {rms:.4f} | {bound:.4f} |")
    print("\ncommand: " + " ".join(shlex.quote(a) for a in ["python", "bench/probe.py", *(argv or sys.argv[1:])]))


if __name__ == "__main__":
    main()
