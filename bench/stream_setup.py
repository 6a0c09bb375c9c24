"""What the stream benchmarks (bench/sampler.py, bench/chunk_check.py) share: their command line
and the prepared data_dir's domains as sampler blocks."""

from __future__ import annotations

import argparse
import os


def stream_args(doc: str, *, batch_size: int, batches: int) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--seq-len", type=int, default=None, help="default: the shards' block_size - 1")
    ap.add_argument("--batches", type=int, default=batches)
    ap.add_argument("--repeats", type=int, default=3)
    return ap.parse_args()


def domain_blocks(data_dir: str, seq_len: int | None):
    """(block_size, [DomainBlocks of every domain's train shards], natural weights by blocks)."""
    from mixtrain.store.datadir import read_manifest
    from mixtrain.sampler import read_domain_blocks

    manifest = read_manifest(data_dir)
    block_size = (seq_len + 1) if seq_len else int(manifest["block_size"])
    domains = [read_domain_blocks(d, os.path.join(data_dir, d, "train"), block_size) for d in manifest["domains"]]
    return block_size, domains, {d.name: float(d.num_blocks) for d in domains}
