"""What each domain's training shards hold: blocks per litdata chunk, read from index.json.

Place in the flow: shards.py wrote `DIR/<domain>/train/` (litdata, TokensLoader) -> **blocks.py**
-> plan.py (which block every sample reads) and readers.py (reads them). Pure: json + numpy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from mixtrain.store.litdata_range import require_litdata


@dataclass(frozen=True)
class DomainBlocks:
    """Where a domain's training blocks live and how many each litdata chunk holds."""

    name: str
    train_dir: str
    blocks_per_chunk: np.ndarray  # [num_chunks] blocks of `block_size` tokens per chunk

    @property
    def num_blocks(self) -> int:
        return int(self.blocks_per_chunk.sum())


def read_domain_blocks(name: str, train_dir: str | os.PathLike, block_size: int) -> DomainBlocks:
    """Count the `block_size`-token blocks per chunk from litdata's index.json.

    Mirrors TokensLoader.generate_intervals (a block never straddles a chunk; the tail of each
    chunk shorter than block_size is not read).
    """
    require_litdata()  # the sampler and writer use litdata internals: only the tested releases
    index_path = os.path.join(os.fspath(train_dir), "index.json")
    try:
        with open(index_path) as f:
            chunks = json.load(f)["chunks"]
        dims = np.array([int(c["dim"]) for c in chunks], dtype=np.int64)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"domain {name!r}: no shards at {index_path}; run `python -m mixtrain.prepare` for this data_dir"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"domain {name!r}: corrupt litdata index {index_path} ({e}); delete {os.fspath(train_dir)!r} "
            "and re-run `python -m mixtrain.prepare`"
        ) from None
    blocks = dims // int(block_size)
    if blocks.sum() == 0:
        raise ValueError(
            f"domain {name!r}: its shards in {train_dir} hold no block of {block_size} tokens; "
            "lower the sequence length or add data to this domain"
        )
    return DomainBlocks(name=name, train_dir=os.fspath(train_dir), blocks_per_chunk=blocks)
