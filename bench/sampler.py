"""Benchmark: tokens/s of mixtrain's mixed stream vs one plain litdata stream, same shards, same run.

    python bench/sampler.py --data-dir DIR [--batch-size 8] [--seq-len 1024] [--batches 400] [--repeats 3]

For num_workers in (0, 2): the plain baseline is litdata's StreamingDataset over the largest
domain through a StreamingDataLoader (shuffle on); the mixed stream is MixtureStream over every
domain with natural weights; litdata's own CombinedStreamingDataset (weighted, over every
domain) is measured as a reference. Settings are interleaved and repeated; medians are
reported. Final line: `mixed/plain tokens_per_s ratio: X` (the lower of the two settings).
"""

from __future__ import annotations

import statistics
import time
import warnings

from stream_setup import domain_blocks, stream_args  # bench/ is sys.path[0] when run as a script

warnings.filterwarnings("ignore")


def _rate(loader, num_batches: int) -> float:
    it = iter(loader)
    next(it)  # worker start-up and first chunk open are not throughput
    t0 = time.perf_counter()
    tokens = 0
    for _ in range(num_batches):
        batch = next(it)
        x = batch["input_ids"] if isinstance(batch, dict) else batch
        tokens += x.numel()
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    args = stream_args(__doc__, batch_size=8, batches=400)

    from litdata import CombinedStreamingDataset, StreamingDataLoader, StreamingDataset, TokensLoader

    from mixtrain.sampler import MixtureStream, make_loader

    block_size, domains, natural = domain_blocks(args.data_dir, args.seq_len)
    largest = max(domains, key=lambda d: d.num_blocks)
    total_blocks = sum(natural.values())
    # The plain baseline must not restart its loader inside a timed run (that would flatter us).
    fit = largest.num_blocks // args.batch_size - 2
    if args.batches > fit:
        print(f"note: --batches {args.batches} -> {fit} so the plain stream stays within one epoch of {largest.name!r}")
        args.batches = fit

    def plain(nw):
        ds = StreamingDataset(largest.train_dir, item_loader=TokensLoader(block_size=block_size), shuffle=True)
        return _Cycle(lambda: StreamingDataLoader(ds, batch_size=args.batch_size, num_workers=nw))

    def mixed(nw):
        s = MixtureStream(domains, natural, block_size=block_size, batch_size=args.batch_size, num_workers=nw)
        return make_loader(s, persistent_workers=False)

    def combined(nw):
        parts = [
            StreamingDataset(d.train_dir, item_loader=TokensLoader(block_size=block_size), shuffle=True)
            for d in domains
        ]
        ds = CombinedStreamingDataset(parts, weights=[natural[d.name] / total_blocks for d in domains],
                                      iterate_over_all=False)
        return _Cycle(lambda: StreamingDataLoader(ds, batch_size=args.batch_size, num_workers=nw))

    print(f"data_dir={args.data_dir} domains={len(domains)} block_size={block_size} batch_size={args.batch_size} "
          f"batches={args.batches} repeats={args.repeats}")
    ratios = {}
    for nw in (0, 2):
        rates = {"plain": [], "mixed": [], "litdata_combined": []}
        for _ in range(args.repeats):
            for name, make in (("plain", plain), ("mixed", mixed), ("litdata_combined", combined)):
                rates[name].append(_rate(make(nw), args.batches))
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratios[nw] = med["mixed"] / med["plain"]
        print(f"num_workers={nw}: plain {med['plain'] / 1e6:.1f}M tok/s | mixed {med['mixed'] / 1e6:.1f}M tok/s "
              f"(ratio {ratios[nw]:.3f}) | litdata combined {med['litdata_combined'] / 1e6:.1f}M tok/s "
              f"(ratio {med['litdata_combined'] / med['plain']:.3f})")
    print(f"mixed/plain tokens_per_s ratio: {min(ratios.values()):.3f}")


class _Cycle:
    """Restart a finite litdata loader when it ends, so small shards can be timed for N batches."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        while True:
            yield from self.make()


if __name__ == "__main__":
    main()
