"""What checkpoint digests cost: a checkpoint write with its digest vs the same atomic write without
one, and the resume-time check (sha256 of the file) vs loading the file's metadata.

    python bench/checkpoint_digest.py --mb 256 --repeats 3

Baseline "plain": the atomic, fsynced write checkpoints had before digests (store/runfiles.atomic_write
+ torch.save, what AtomicCheckpointIO did). "digest": AtomicCheckpointIO.save_checkpoint now
(write, fsync, sha256 of the file, digest file, publish). Check: store/checkpoint_digest.digest_problem
(reads and hashes the whole file) vs store/checkpoint_files.load_checkpoint_meta (torch.load with mmap,
what planning a resume reads anyway). Medians of interleaved repeats; prints ratios. Page cache: the file
was just written, so the read side measures hashing speed, not disk speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from tqdm.auto import tqdm

from mixtrain.store.checkpoint_digest import digest_problem
from mixtrain.store.checkpoint_files import load_checkpoint_meta
from mixtrain.store.runfiles import atomic_write
from mixtrain.train.checkpoints import AtomicCheckpointIO


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=256, help="checkpoint size in MiB (float32 tensors)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = args.mb * 2**20 // 4
    state = {"global_step": 1, "state_dict": {f"w{i}": torch.randn(n // 8) for i in range(8)}}
    times = {"plain": [], "digest": [], "meta": [], "check": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        plain, digested = os.path.join(d, "plain.ckpt"), os.path.join(d, "last.ckpt")
        for _ in tqdm(range(args.repeats), desc="repeats"):
            t = time.perf_counter()
            atomic_write(plain, lambda f: torch.save(state, f), tmp=plain + ".partial", fsync=True)
            times["plain"].append(time.perf_counter() - t)
            t = time.perf_counter()
            AtomicCheckpointIO().save_checkpoint(state, digested)
            times["digest"].append(time.perf_counter() - t)
            t = time.perf_counter()
            load_checkpoint_meta(digested)
            times["meta"].append(time.perf_counter() - t)
            t = time.perf_counter()
            assert digest_problem(digested) is None
            times["check"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"checkpoint {args.mb} MiB, median of {args.repeats}: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items()))
    print(f"write with digest / plain atomic write: {med['digest'] / med['plain']:.2f}")
    print(f"resume check (sha256) / metadata load: {med['check'] / med['meta']:.2f} "
          f"(sha256 at {args.mb / med['check']:.0f} MiB/s)")


if __name__ == "__main__":
    main()
