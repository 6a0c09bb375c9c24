"""Benchmark: mixtrain at many domains (4 / 64 / 512 / 2048) against its own 4-domain run and plain litdata.

    python bench/many_domains.py [--domains 4,64,512,2048] [--batches 300] [--repeats 3] [--steps 40]
                                 [--prepare-domains 1000] [--work-dir /tmp/many_domains]

Synthetic shards (litdata TokensLoader format, written directly: chunks of `blocks_per_chunk`
blocks, `chunks_per_domain` chunks per domain), num_workers=0, uniform weights. Per domain count:
* sampler: tokens/s of MixtureStream over all domains / tokens/s of one plain litdata
  StreamingDataset (shuffle on, StreamingDataLoader) over one directory of the same chunk format
  with enough blocks for the timed batches, measured back to back in the same process;
* set_weights: median wall time of `MixtureStream.set_weights` (new weights every call);
* step: median wall time of a training step (model=tiny, Trainer on CPU, log_every_n_steps=1, the
  mixing controller and metrics.csv on), ratio to the 4-domain step measured in the same run;
* open: seconds to read every domain's index (lazy in a run: on a domain's first read), and
  warm-up: batches until every domain was read once (its first pass and chunk orders drawn);
  the sampler figures are steady state, after both;
* peak RSS of the process (sampler and training runs; each count runs in its own process, so
  the figures do not mix), reported above the 4-domain run; open files at the end of the timed
  sampler run (the stream still open);
* prepare: seconds of `mixtrain.prepare` for `--prepare-domains` small raw domains (two .txt
  files each; 0: skipped).
Every figure but prepare is the median over `--repeats` runs, interleaved across domain counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")
BLOCK = 129  # seq_len 128 + 1


def write_synthetic(root: str, num_domains: int, blocks_per_chunk: int, chunks_per_domain: int) -> None:
    """A prepared-looking data_dir: manifest, per-domain stats, train and val litdata chunks."""
    import numpy as np

    if os.path.isfile(os.path.join(root, "manifest.json")):
        return
    rng = np.random.default_rng(0)
    names = [f"d{i:04d}" for i in range(num_domains)]
    config = {"chunk_bytes": None, "chunk_size": 1, "compression": None, "compression_batch_size": None,
              "compression_level": None, "data_format": ["no_header_tensor:16"],
              "data_spec": "[1, {\"type\": null, \"context\": null, \"children_spec\": []}]", "encryption": None,
              "ipc_compression": None, "item_loader": "TokensLoader", "types": "tensor"}
    for name in names:
        for split, num_chunks in (("train", chunks_per_domain), ("val", 1)):
            out = os.path.join(root, name, split)
            os.makedirs(out, exist_ok=True)
            chunks = []
            for c in range(num_chunks):
                tokens = rng.integers(3, 256, size=blocks_per_chunk * BLOCK, dtype=np.int32)
                body = tokens.tobytes()
                header = np.array([1, 12, 12 + len(body)], dtype=np.uint32).tobytes()
                fname = f"chunk-0-{c}.bin"
                with open(os.path.join(out, fname), "wb") as f:
                    f.write(header + body)
                chunks.append({"chunk_bytes": 12 + len(body), "chunk_size": 1, "dim": int(tokens.size),
                               "filename": fname})
            with open(os.path.join(out, "index.json"), "w") as f:
                json.dump({"chunks": chunks, "config": config}, f)
        num_train = chunks_per_domain * blocks_per_chunk * BLOCK
        with open(os.path.join(root, name, "stats.json"), "w") as f:
            json.dump({"domain": name, "num_train_tokens": num_train, "num_val_tokens": blocks_per_chunk * BLOCK,
                       "num_tokens": num_train + blocks_per_chunk * BLOCK, "num_docs": 1, "block_size": BLOCK,
                       "vocab_size": 256}, f)
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({"domains": names, "block_size": BLOCK, "vocab_size": 256, "format": 1,
                   "token_dtype": "int32"}, f)


def _rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def measure(data_dir: str, plain_root: str, batches: int, repeats: int, steps: int, batch_size: int) -> dict:
    """One domain count, in this process."""
    import numpy as np
    from litdata import StreamingDataset, TokensLoader

    from mixtrain.sampler import MixtureStream, make_loader, read_domain_blocks
    from mixtrain.prepare.shards import read_manifest

    names = read_manifest(data_dir)["domains"]
    domains = [read_domain_blocks(d, os.path.join(data_dir, d, "train"), BLOCK) for d in names]
    uniform = {d: 1.0 for d in names}
    out: dict = {"domains": len(names)}

    def mixed_rate() -> float:
        s = MixtureStream(domains, uniform, block_size=BLOCK, batch_size=batch_size, seed=0)
        it = iter(make_loader(s))
        s.mark_consumed(next(it))
        t0 = time.perf_counter()
        _open_all(s)  # steady state: every domain's reader opened once (timed apart, as open_s)
        out["open_s"] = time.perf_counter() - t0
        # ... and every domain read once: a domain's first read draws its pass and chunk orders
        # (numpy generators keyed by domain, pass, chunk), ~0.1 ms each, once per chunk it enters
        t0, warm = time.perf_counter(), 0
        while not bool((s._progress[1:] > 0).all()) and warm < 20000:
            s.mark_consumed(next(it))
            warm += 1
        out["warmup_batches"], out["warmup_s"] = warm, time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(batches):
            s.mark_consumed(next(it))
        rate = batches * batch_size * BLOCK / (time.perf_counter() - t0)
        out["open_files"] = max(out.get("open_files", 0), _open_files())  # while the stream is alive
        return rate

    # the plain baseline: one litdata StreamingDataset (shuffle on) over one directory of the same chunk
    # format holding enough blocks for the whole timed run (no restart inside it)
    plain_dir = os.path.join(plain_root, "d0000", "train")

    def plain_rate() -> float:
        from litdata import StreamingDataLoader

        ds = StreamingDataset(plain_dir, item_loader=TokensLoader(block_size=BLOCK), shuffle=True, seed=0)
        it = iter(StreamingDataLoader(ds, batch_size=batch_size, num_workers=0))
        next(it)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        return batches * batch_size * BLOCK / (time.perf_counter() - t0)

    rates = {"plain": [], "mixed": []}
    for _ in range(repeats):
        rates["plain"].append(plain_rate())
        rates["mixed"].append(mixed_rate())
    out["plain_tok_s"] = statistics.median(rates["plain"])
    out["mixed_tok_s"] = statistics.median(rates["mixed"])
    out["sampler_ratio"] = out["mixed_tok_s"] / out["plain_tok_s"]

    s = MixtureStream(domains, uniform, block_size=BLOCK, batch_size=batch_size, seed=0)
    rng = np.random.default_rng(0)
    candidates = [dict(zip(names, rng.random(len(names)).tolist())) for _ in range(20)]
    times = []
    for i in range(400):
        w = candidates[i % 20]
        t0 = time.perf_counter()
        s.set_weights(w)
        times.append(time.perf_counter() - t0)
    out["set_weights_ms"] = statistics.median(times) * 1e3
    if steps:
        out["step_s"] = _step_time(data_dir, steps, batch_size)
    out["rss_mb"] = _rss_mb()
    return out


def _open_all(stream) -> None:
    """Read every domain's index now (readers open lazily, on a domain's first read)."""
    for d in range(stream.num_domains):
        stream._readers._source(d)


def _step_time(data_dir: str, steps: int, batch_size: int) -> float:
    import tempfile

    import lightning.pytorch as pl

    from mixtrain.train.datamodule import MixtureDataModule, read_layout
    from mixtrain.train.loggers import MetricsCSVLogger
    from mixtrain.train.mixing_controller import MixingController
    from mixtrain.mixing.static import Uniform
    from mixtrain.model.gpt import GPTConfig
    from mixtrain.train.config import OptimConfig, SamplerConfig
    from mixtrain.train.module import MixtureLM

    layout = read_layout(data_dir)
    strategy = Uniform()
    weights = {d: 1.0 / len(layout.domains) for d in layout.domains}
    dm = MixtureDataModule(layout, SamplerConfig(), seq_len=BLOCK - 1, batch_size=batch_size, initial_weights=weights,
                           seed=0, pin_memory=False, val_blocks_per_domain=1)
    model = GPTConfig(vocab_size=256, seq_len=BLOCK - 1, n_layer=4, n_head=4, d_model=128)
    module = MixtureLM(model, OptimConfig(warmup_steps=2), layout.domains, max_steps=steps)
    times: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *a):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, *a):
            times.append(time.perf_counter() - self.t0)
            if len(times) == 1:
                _open_all(trainer.datamodule.stream)

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=0,
                             log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                             enable_checkpointing=False, use_distributed_sampler=False,
                             logger=[MetricsCSVLogger(run_dir)],
                             callbacks=[MixingController(strategy, run_dir), Clock()])
        trainer.fit(module, datamodule=dm)
    return statistics.median(times[max(2, len(times) // 4):])  # after warm-up and opening


def prepare_time(work_dir: str, num_domains: int) -> float:
    """Seconds for mixtrain.prepare on `num_domains` raw folders of one small text file each."""
    from mixtrain.prepare.pipeline import prepare_corpus
    from mixtrain.prepare.shards import ShardSettings

    raw = os.path.join(work_dir, f"raw{num_domains}")
    words = "the model reads data from many domains and learns which mixture helps".split()
    for i in range(num_domains):
        os.makedirs(os.path.join(raw, f"d{i:04d}"), exist_ok=True)
        for part in ("a", "b"):  # a domain needs two documents at least (train and val)
            with open(os.path.join(raw, f"d{i:04d}", f"{part}.txt"), "w") as f:
                f.write(" ".join(words[(i + k) % len(words)] for k in range(300)))
    t0 = time.perf_counter()
    prepare_corpus(raw, os.path.join(work_dir, f"prepared{num_domains}"), vocab_size=300,
                   sample_bytes_per_domain=4000,
                   settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=100, val_fraction=0.1))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", default="4,64,512,2048")
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="training steps per domain count (0: skip)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--blocks-per-chunk", type=int, default=64)
    ap.add_argument("--chunks-per-domain", type=int, default=2)
    ap.add_argument("--prepare-domains", type=int, default=1000, help="0: skip the prepare timing")
    ap.add_argument("--work-dir", default="/tmp/many_domains")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one data_dir, print JSON
    ap.add_argument("--plain", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.plain, args.batches, args.repeats, args.steps, args.batch_size)))
        return
    counts = [int(x) for x in args.domains.split(",")]
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    for n in counts:
        data_dir = os.path.join(args.work_dir, f"d{n}_b{args.blocks_per_chunk}_c{args.chunks_per_domain}")
        write_synthetic(data_dir, n, args.blocks_per_chunk, args.chunks_per_domain)
    plain_chunks = -(-(args.batches + 2) * args.batch_size // args.blocks_per_chunk)
    plain_root = os.path.join(args.work_dir, f"plain_b{args.blocks_per_chunk}_c{plain_chunks}")
    write_synthetic(plain_root, 1, args.blocks_per_chunk, plain_chunks)
    # repeats interleaved across domain counts (each a fresh process): load on a shared machine
    # drifts over minutes, and every count then sees the same drift
    for _ in range(args.repeats):
        for n in counts:
            data_dir = os.path.join(args.work_dir, f"d{n}_b{args.blocks_per_chunk}_c{args.chunks_per_domain}")
            cmd = [sys.executable, __file__, "--one", data_dir, "--plain", plain_root, "--batches", str(args.batches),
                   "--repeats", "1", "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            runs[n].append(json.loads(line))
    results = []
    for n in counts:
        r = {k: statistics.median(x[k] for x in runs[n]) for k in runs[n][0]}
        r["domains"] = n
        results.append(r)
        print(f"domains={n}: sampler mixed/plain {r['sampler_ratio']:.3f} ({r['mixed_tok_s'] / 1e6:.2f}M vs "
              f"{r['plain_tok_s'] / 1e6:.2f}M tok/s) | set_weights {r['set_weights_ms']:.3f} ms | "
              f"step {r.get('step_s', float('nan')) * 1e3:.1f} ms | RSS {r['rss_mb']:.0f} MB | open files "
              f"{r['open_files']} | open {r['open_s']:.2f} s | warm-up {r['warmup_batches']:.0f} batches "
              f"{r['warmup_s']:.2f} s", flush=True)
    base = results[0]
    print(f"\n| domains | sampler mixed/plain | set_weights ms | step ms | step / {base['domains']}-domain step "
          f"| RSS MB (above {base['domains']}) | open files |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        step = r.get("step_s")
        print(f"| {r['domains']} | {r['sampler_ratio']:.2f} | {r['set_weights_ms']:.3f} | "
              f"{'-' if step is None else format(step * 1e3, '.1f')} | "
              f"{'-' if step is None else format(step / base['step_s'], '.2f')} | "
              f"{r['rss_mb']:.0f} ({r['rss_mb'] - base['rss_mb']:+.0f}) | {r['open_files']} |")
    if args.prepare_domains:
        print(f"\nprepare: {args.prepare_domains} small domains in {prepare_time(args.work_dir, args.prepare_domains):.1f} s")


if __name__ == "__main__":
    main()
