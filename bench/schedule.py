"""Benchmark: per-step sampler overhead with a long weight schedule (1k, 16k entries) vs 1 entry, same run.

    python bench/schedule.py [--entries 1 1000 16000] [--batches 300] [--repeats 3] [--batch-size 8]

Builds three small synthetic domains (litdata shards in a temp dir), then for every schedule
length N: a MixtureStream whose state holds N weight changes, one per batch, all in the past
(resumed at batch N, so every lookup searches the whole table), consumed in the main process
(num_workers=0: the planning a worker does is timed too) exactly as training does per step:
next batch, `mark_consumed`, `current_weights()` and `domain_tokens()` (the MixingController,
train/mixing_controller.py, logs both every step). Lengths are interleaved and repeated; medians are reported, with the ratio
to N=1. Final line: `16k/1 per-step ratio: X`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

BLOCK = 129


def _doc_tokens(doc):
    import torch

    start, length = doc
    yield torch.arange(start, start + length, dtype=torch.int32)


def _write_domains(root: str):
    from litdata import TokensLoader, optimize

    from mixtrain.sampler import read_domain_blocks

    out = []
    for i, name in enumerate(("a", "b", "c")):
        path = f"{root}/{name}/train"
        docs = [(i * 10_000_000 + k * 1000, 1000) for k in range(200)]  # 200k tokens per domain
        optimize(fn=_doc_tokens, inputs=docs, output_dir=path, chunk_size=BLOCK * 64, item_loader=TokensLoader(),
                 num_workers=1, mode="overwrite")
        out.append(read_domain_blocks(name, path, BLOCK))
    return out


def _stream_with_schedule(domains, entries: int, batch_size: int):
    from mixtrain.sampler import MixtureStream

    names = [d.name for d in domains]
    stream = MixtureStream(domains, {n: 1.0 for n in names}, block_size=BLOCK, batch_size=batch_size, seed=0)
    state = stream.state_dict()
    # one change per batch, cycling through three mixtures; the run resumes after the last one
    mixtures = [dict(zip(names, w)) for w in ((0.5, 0.3, 0.2), (0.2, 0.5, 0.3), (0.3, 0.2, 0.5))]
    state["schedule"] = [[g, mixtures[g % 3]] for g in range(entries)]
    state["next_batch"] = entries
    stream.load_state_dict(state)
    return stream


def _per_step_seconds(stream, num_batches: int) -> float:
    from mixtrain.sampler import make_loader

    it = iter(make_loader(stream))
    stream.mark_consumed(next(it))  # first chunk open is not per-step cost
    t0 = time.perf_counter()
    for _ in range(num_batches):
        batch = next(it)
        stream.mark_consumed(batch)
        stream.current_weights()
        stream.domain_tokens()
    return (time.perf_counter() - t0) / num_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, nargs="+", default=[1, 1000, 16000])
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    if 1 not in args.entries:
        args.entries = [1, *args.entries]

    with tempfile.TemporaryDirectory() as root:
        domains = _write_domains(root)
        times: dict[int, list[float]] = {n: [] for n in args.entries}
        for _ in range(args.repeats):
            for n in args.entries:  # interleaved: machine noise hits every length alike
                times[n].append(_per_step_seconds(_stream_with_schedule(domains, n, args.batch_size), args.batches))
    base = statistics.median(times[1])
    print(f"{'entries':>8} {'ms/step':>9} {'vs 1 entry':>11}")
    for n in args.entries:
        med = statistics.median(times[n])
        print(f"{n:>8} {med * 1e3:>9.3f} {med / base:>10.2f}x")
    longest = max(args.entries)
    print(f"{longest // 1000}k/1 per-step ratio: {statistics.median(times[longest]) / base:.2f}")


if __name__ == "__main__":
    main()
