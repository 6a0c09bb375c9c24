"""Benchmark: tokens/s of the entropy measures on one core, against baselines measured in the same run.

    python bench/entropy.py --data-dir DIR [--tokens 2000000] [--repeats 5]

For every domain of DIR, `sample` tokens are read from its train shards (tiled when the domain
is smaller). Timed, medians over interleaved repeats:
* ours: `token_entropies` (se, je, ce together: unigram bincount + uint32 pair codes, SIMD sort)
* baseline `np.unique`: the obvious vectorised version (int64 codes, np.unique(return_counts))
* reference `bincount`: one unigram bincount over the same tokens (a memory-bandwidth ceiling)
plus `von_neumann_entropy` on its own. Run with one thread (OMP/MKL/OPENBLAS_NUM_THREADS=1 are
set below) so the figures are per core.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mixtrain.prepare.domain_entropy import read_domain_tokens, token_entropies, von_neumann_entropy  # noqa: E402


def naive_entropies(tokens: np.ndarray, vocab_size: int, eos_id: int) -> dict[str, float]:
    t = tokens.astype(np.int64)
    keep = t[:-1] != eos_id
    codes = t[:-1][keep] * vocab_size + t[1:][keep]

    def h(x):
        _, c = np.unique(x, return_counts=True)
        p = c / c.sum()
        return float(-(p * np.log(p)).sum())

    return {"se": h(t), "je": h(codes), "ce": h(codes) - h(t[:-1][keep])}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    manifest = json.loads((Path(args.data_dir) / "manifest.json").read_text())
    vocab, eos, bos = int(manifest["vocab_size"]), int(manifest["eos_id"]), int(manifest["bos_id"])
    print(f"data {args.data_dir}: vocab {vocab}, {args.tokens:,} tokens per domain, {args.repeats} repeats, 1 thread\n")
    print("| domain | ours (M tok/s) | np.unique baseline (M tok/s) | ours / baseline | unigram bincount (M tok/s) "
          "| vne (M tok/s) |")
    print("|---|---|---|---|---|---|")
    ratios, rates = [], []
    for d in manifest["domains"]:
        t = read_domain_tokens(Path(args.data_dir) / d / "train")
        t = np.tile(t, math.ceil(args.tokens / len(t)))[: args.tokens]
        assert np.allclose(list(token_entropies(t, vocab, eos).values()), list(naive_entropies(t, vocab, eos).values()))
        ours, base, ref, vne = [], [], [], []
        for _ in range(args.repeats):
            ours.append(timed(lambda: token_entropies(t, vocab, eos)))
            base.append(timed(lambda: naive_entropies(t, vocab, eos)))
            ref.append(timed(lambda: np.bincount(t, minlength=vocab)))
            vne.append(timed(lambda: von_neumann_entropy(t, vocab, eos, ignore_ids=[bos, eos])))
        o, b, r, v = (len(t) / statistics.median(x) / 1e6 for x in (ours, base, ref, vne))
        ratios.append(o / b)
        rates.append(o)
        print(f"| {d} | {o:.1f} | {b:.1f} | {o / b:.2f} | {r:.0f} | {v:.1f} |")
    print(f"\nse+je+ce: min {min(rates):.1f}M tokens/s per core; ours/np.unique ratio median "
          f"{statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
