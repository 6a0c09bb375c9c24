"""The training run's typed config: one dataclass per section, every default written once, here.

Place in the flow: conf/train.yaml (the defaults list: which option of each group) and the command
line -> Hydra composes -> mixtrain/hydra_app.py binds the result onto `TrainConfig` (an unknown or
misspelt key, also one added with `+` or written in an experiment or user YAML file, stops the run
with its full name) -> **config.py** sections -> the builders of train/run.py: `MixtureLM(model,
optim, ...)`, `MixtureDataModule(layout, sampler, ...)`, `prepare(PrepareConfig)`. Pure: no Hydra,
OmegaConf, torch or Lightning, so a section is built in a test or a bench by plain `OptimConfig(lr=...)`.

Hydra sees the defaults below through its ConfigStore (hydra_app.register_schemas): conf/train.yaml
lists `train_schema` first, so `python -m mixtrain.train --cfg job` prints every key with its value.
The groups whose options have different keys (`data`, `tokenizer`, `mixing`, `trainer`, `logger`)
stay plain dicts here; they are checked where they are used: data/tokenizer by prepare,
`mixing` by the strategy registry (mixtrain/mixing/strategy_registry.py), `trainer` by Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mixtrain.model.config import GPTConfig
from mixtrain.prepare.config import PrepareConfig, TaskSettings
from mixtrain.prepare.shards import ShardSettings

RESUME_MIXING_OPTIONS = ("refuse", "switch")
RESUME_GLOBAL_BATCH_OPTIONS = ("keep", "change")
RESUME_DATA_OPTIONS = ("refuse", "switch")


@dataclass
class OptimConfig:
    """AdamW and its LR schedule (train/lr_schedule.py; README "LR schedules")."""

    lr: float = 3.0e-3
    weight_decay: float = 0.1  # on matrices only; norms and biases get none
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1  # the schedule's floor, as a share of lr
    schedule: str = "cosine"  # cosine | wsd (warmup-stable-decay) | constant (warmup, then flat)
    decay_fraction: float = 0.2  # wsd: share of trainer.max_steps spent decaying to min_lr_ratio
    decay_shape: str = "linear"  # wsd: linear | 1-sqrt


@dataclass
class SamplerConfig:
    """The weighted multi-domain stream (mixtrain/sampler/)."""

    mode: str = "random"  # random | stratified (exact per-global-batch composition)
    num_workers: int = 0  # DataLoader worker processes per rank
    prefetch_factor: int = 2
    window_samples: int = 256  # samples planned at once; weight changes round up to a window
    # a weight change governs batches from next + this (rounded up to a window) on; >= 2 + num_workers * prefetch_factor
    weight_lag_batches: int = 8
    max_open_chunks: int | None = None  # chunk files open at once per process (None: one per domain, within RLIMIT_NOFILE)


@dataclass
class TargetConfig:
    """What a run is scored on (train/target.py): `val/target`."""

    # {domain: weight} over training and eval-only domains; None: the mean of the training domains
    # (typed Any: OmegaConf cannot set a mapping into an Optional[Dict] that holds None; train/target.py checks it)
    importance: Any = None


@dataclass
class TrainConfig:
    """One training run: `python -m mixtrain.train [group=option ...] [key=value ...]`."""

    # ---- data: where the prepared shards are (and how to build them if they are not there yet)
    data_dir: str = "data/demo"  # a prepared directory (python -m mixtrain.prepare); see prepare_if_missing
    prepare_if_missing: bool = True  # build data_dir from the `data` group first if it holds no manifest.json
    # URL data_dir (s3:// gs:// r2:// file://): its verified local copy (None: ~/.cache/mixtrain/staging/<hash of the URL>)
    staging_dir: str | None = None
    # URL data_dir: litdata provider options, e.g. {endpoint_url: ...}; credentials from the environment, never here
    storage_options: dict[str, Any] = field(default_factory=dict)
    data: Any = field(default_factory=dict)  # conf/data/<option>.yaml: what prepare builds if data_dir is empty
    tokenizer: Any = field(default_factory=dict)  # conf/tokenizer/<option>.yaml
    eval_only_domains: list[str] = field(default_factory=list)  # domains of data_dir validated, never trained on
    val_blocks_per_domain: int = 32  # fixed validation blocks per domain (the same for every mixture)
    target: TargetConfig = field(default_factory=TargetConfig)

    # ---- the run directory and its life
    run_name: str = "${mixing.name}-seed${seed}"
    out_dir: str = "runs/${run_name}"  # one directory per run, identical on every rank and node
    sweep_dir: str = "runs/sweep"  # a multirun's parent folder (hydra.sweep.dir)
    seed: int = 0
    # false | true: continue from out_dir/checkpoints/last.ckpt | auto: continue when out_dir holds a checkpoint, else start
    resume: Any = False
    ckpt_path: str | None = None  # an explicit checkpoint to continue from
    # a new run's initial weights: HF Llama folder (mixtrain export) or a run dir / .ckpt (weights only); ignored on resume
    init_from: str | None = None
    overwrite: bool = False  # true: delete the run already in out_dir and start over (default: refuse)
    resume_global_batch: str = "keep"  # a resume on another number of processes: keep (or refuse) | change
    resume_mixing: str = "refuse"  # a resume with other mixing settings: refuse | switch (new weights from the resume step)
    # a resume on other prepared data or another tokenizer (train/data_identity.py): refuse | switch (deliberately)
    resume_data: str = "refuse"
    # a requeue (resume=auto, SLURM_RESTART_COUNT > 0) waits this long for the run's previous writer (store/run_lock.py)
    run_lock_timeout_s: float = 600.0
    max_nonfinite_steps: int = 3  # stop with an error after this many consecutive NaN/inf training losses (each skipped)
    checkpoint_every_n_steps: int = 50
    table_at_end: bool = True  # print the per-domain table (val loss, weights, tokens) when done
    # console progress when stderr is not a terminal (a SLURM .out file, a pipe): instead of the redrawn
    # bar, one plain line after every progress_every_n_steps steps or progress_every_s seconds, whichever comes first
    progress_every_n_steps: int = 50
    progress_every_s: float = 60.0

    # ---- batch shape
    seq_len: int = 128  # tokens per training sequence (shards must hold seq_len + 1)
    batch_size: int = 16  # sequences per device per micro-batch
    global_batch_tokens: int | None = None  # if set: accumulation = global_batch_tokens / (batch_size * seq_len * world)

    # ---- sections
    model: GPTConfig = field(default_factory=GPTConfig)  # conf/model/<option>.yaml; vocab_size comes from the data
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    compile: bool = False  # torch.compile the model
    mixing: Any = field(default_factory=dict)  # conf/mixing/<option>.yaml: built by the strategy registry
    trainer: Any = field(default_factory=dict)  # conf/trainer/<option>.yaml: Lightning Trainer arguments
    logger: Any = field(default_factory=dict)  # conf/logger/<option>.yaml: {name: {_target_: class, ...}}

    def __post_init__(self) -> None:
        # bad run-level choices fail before anything is read or written, naming the key
        if self.resume_mixing not in RESUME_MIXING_OPTIONS:
            raise ValueError(f"resume_mixing={self.resume_mixing}: use refuse (default) or switch")
        if self.resume_global_batch not in RESUME_GLOBAL_BATCH_OPTIONS:
            raise ValueError(f"resume_global_batch={self.resume_global_batch}: use keep (default) or change")
        if self.progress_every_n_steps < 1 or not self.progress_every_s > 0:
            raise ValueError(f"progress_every_n_steps={self.progress_every_n_steps}, progress_every_s="
                             f"{self.progress_every_s}: use a step count >= 1 and a positive number of seconds")
        if self.resume_data not in RESUME_DATA_OPTIONS:
            raise ValueError(f"resume_data={self.resume_data}: use refuse (default) or switch")

    def prepare_config(self) -> PrepareConfig:
        """What `prepare` builds when data_dir holds no prepared data yet: this run's data and tokenizer
        groups, with blocks long enough for one training sequence + 1."""
        shards = ShardSettings(block_size=max(ShardSettings.block_size, self.seq_len + 1))
        return PrepareConfig(data_dir=self.data_dir, data=dict(self.data), tokenizer=dict(self.tokenizer),
                             staging_dir=self.staging_dir, storage_options=dict(self.storage_options), shards=shards,
                             prepare=TaskSettings(node_rank=0, num_nodes=1))  # rank 0 alone: not a task of WORLD_SIZE
