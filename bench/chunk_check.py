"""Benchmark: what verify-on-first-read (mixtrain/store/chunk_check.py) costs the training stream.

    python bench/chunk_check.py --data-dir DIR [--batch-size 16] [--seq-len 1024] [--batches 200] [--repeats 3]

MixtureStream over every domain of DIR (natural weights, num_workers=0), read from a fresh
stream: the first --batches batches (every chunk is met for the first time: its sha256 is
computed), then --batches more (mostly verified chunks: a set lookup per sample). Baseline: the
same stream with the verifier turned off, measured in the same process, interleaved, repeated;
medians. Prints seconds per setting and the ratio verified/baseline for both windows, and the
sha256 throughput (MB/s) over DIR's chunks.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings

from stream_setup import domain_blocks, stream_args  # bench/ is sys.path[0] when run as a script

warnings.filterwarnings("ignore")


def main() -> None:
    args = stream_args(__doc__, batch_size=16, batches=200)

    import glob

    from mixtrain.store import chunk_check
    from mixtrain.sampler import MixtureStream, make_loader

    block_size, domains, natural = domain_blocks(args.data_dir, args.seq_len)
    real_check = chunk_check.ChunkVerifier.check

    def windows(verify: bool) -> tuple[float, float]:
        chunk_check.ChunkVerifier.check = real_check if verify else (lambda self, pairs: None)
        stream = MixtureStream(domains, natural, block_size=block_size, batch_size=args.batch_size, num_workers=0)
        it = iter(make_loader(stream, persistent_workers=False))
        out = []
        for _ in range(2):
            t0 = time.perf_counter()
            for _ in range(args.batches):
                next(it)
            out.append(time.perf_counter() - t0)
        return out[0], out[1]

    times = {True: [], False: []}
    for _ in range(args.repeats):
        for verify in (False, True):
            times[verify].append(windows(verify))
    chunk_check.ChunkVerifier.check = real_check
    files = sorted(glob.glob(os.path.join(args.data_dir, "*", "train", "chunk-*.bin")))
    num_bytes = sum(os.path.getsize(f) for f in files)
    t0 = time.perf_counter()
    for f in files:
        chunk_check.file_sha256(f)
    hash_s = time.perf_counter() - t0

    med = {v: [statistics.median(t[i] for t in times[v]) for i in range(2)] for v in times}
    print(f"data_dir={args.data_dir} domains={len(domains)} chunks={len(files)} ({num_bytes / 1e6:.1f} MB) "
          f"block_size={block_size} batch_size={args.batch_size} batches={args.batches} repeats={args.repeats}")
    for i, what in enumerate(("first window (chunks met for the first time)", "second window (steady state)")):
        print(f"{what}: baseline {med[False][i]:.3f} s, verified {med[True][i]:.3f} s, "
              f"ratio {med[True][i] / med[False][i]:.3f}")
    print(f"sha256 over every train chunk: {num_bytes / 1e6 / hash_s:.0f} MB/s on one core")


if __name__ == "__main__":
    main()
