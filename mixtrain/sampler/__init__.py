"""The mixing sampler: one stream of token blocks over all domains, drawn by the current weights.

Place in the flow: prepare/shards.py wrote `DIR/<domain>/train/` -> **sampler/** -> train/datamodule.py wraps it in
a DataLoader; the mixing controller (train/mixing_controller.py) calls `set_weights()` and `mark_consumed()`.
One file per stage, in data-flow order:

    blocks.py    blocks per litdata chunk of every domain (index.json)              pure
    shared_schedule.py  the weight schedule shared by the main process and its workers   shared memory
    plan.py      which domain and which block every global sample position reads    pure, numpy
    readers.py   lazy litdata readers with a budget on open chunk files             litdata
    stream.py    MixtureStream (IterableDataset): plan -> read -> per-rank batches; state

The whole stream is a pure function of (seed, weight schedule, shards): exact resume, disjoint
data per rank and identical weights on every rank follow from that.
"""

from mixtrain.sampler.blocks import DomainBlocks, read_domain_blocks
from mixtrain.sampler.plan import MODES
from mixtrain.sampler.stream import MixtureLoader, MixtureStream, make_loader, min_weight_lag_batches

__all__ = [
    "MODES", "DomainBlocks", "MixtureLoader", "MixtureStream", "make_loader", "min_weight_lag_batches",
    "read_domain_blocks",
]
