"""The typed configs of the preparation commands: `prepare` and `entropy`; every default written once, here.

Place in the flow: conf/prepare.yaml / conf/entropy.yaml + the command line -> Hydra composes ->
mixtrain/hydra_app.py binds the result onto these dataclasses (an unknown key stops with its full
name) -> `prepare(PrepareConfig)` (pipeline.py) / `run_entropy(EntropyConfig)` (domain_entropy.py).
A training run builds its PrepareConfig from its own sections (train/config.py) when `data_dir`
is not prepared yet. Pure dataclasses: no Hydra or OmegaConf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mixtrain.prepare.shards import ShardSettings

@dataclass
class TaskSettings:
    """`prepare.*`: one preparation spread over tasks (SLURM array, srun, torchrun); docs/prepare_multinode.md."""

    # task i of n; None: from SLURM_ARRAY_TASK_ID/COUNT, RANK/WORLD_SIZE or SLURM_PROCID/NTASKS (prepare/shares.py)
    node_rank: int | None = None
    num_nodes: int | None = None
    join_only: bool = False  # tokenize nothing: join the complete shares of every task into DIR (after an array job)
    tokenizer_timeout_s: float = 21600.0  # tasks other than 0 wait this long for task 0's tokenizer


@dataclass
class PrepareConfig:
    """`python -m mixtrain.prepare data=<demo|dir|hf> data_dir=DIR [key=value ...]`."""

    # must not be, contain or lie inside data.root (prepare refuses); or s3:// gs:// r2:// file:// (built in
    # staging_dir, then uploaded). "???" is Hydra's "must be given".
    data_dir: str = "???"
    data: Any = field(default_factory=dict)  # conf/data/<option>.yaml (demo | dir | hf): where the raw text comes from
    tokenizer: Any = field(default_factory=dict)  # conf/tokenizer/<option>.yaml (spm | hf)
    staging_dir: str | None = None  # URL data_dir: the local folder it is built in (None: ~/.cache/mixtrain/staging/<hash>)
    storage_options: dict[str, Any] = field(default_factory=dict)  # URL data_dir: litdata provider options; no credentials
    # re-runs check up-to-date domains before skipping them: deep (sha256 of every shard) | cheap (sizes); a bad one is rebuilt
    verify: str = "deep"
    num_workers: int = 1  # tokenizer processes (the shards are the same bytes for any number)
    lock_timeout_s: float = 21600.0  # a concurrent prepare of the same data_dir waits this long for DIR/.prepare.lock
    shards: ShardSettings = field(default_factory=ShardSettings)  # block size, chunk size, validation split
    prepare: TaskSettings = field(default_factory=TaskSettings)  # task i of n of a multi-machine prepare


@dataclass
class EntropyConfig:
    """`python -m mixtrain.prepare.entropy_cli data_dir=DIR`: the four BiMix entropies per domain."""

    data_dir: str = "???"
    domains: Any = None  # a list of domains; None: every domain in DIR/manifest.json (Any: see TargetConfig.importance)
    # tokens per domain, whole chunks in a seeded order; every domain gets the same number:
    # min(sample_tokens, smallest domain's train tokens) (None: the smallest's)
    sample_tokens: int | None = 2_000_000
    bias_correction: str = "miller_madow"  # miller_madow (+ (m-1)/(2N) on se/je, so ce too) | none (plug-in)
    seed: int = 0  # chunk order and the hashed embedding of vne
    vne_dim: int = 256  # embedding size for the von Neumann entropy (vne <= log(vne_dim))
    # documents longer than this count as several windows for vne; every domain's vne uses the same
    # number of windows (the fewest any domain has in its sample)
    max_doc_tokens: int = 1024
    temperature: float = 1.0  # softmax temperature shown in the table
    write: bool = True  # cache the measures in DIR/<domain>/stats.json under "entropy"
