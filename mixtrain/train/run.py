"""One training run: compose the parts from the typed config, fit, write summary.json.

    python -m mixtrain.train data_dir=DIR mixing=natural model=tiny out_dir=RUN
    python -m mixtrain.train experiment=demo                          # the README's main command
    python -m mixtrain.train -m mixing=uniform,natural,temperature    # a Hydra sweep
    python -m mixtrain.train ... resume=true                          # continue RUN exactly

Place in the flow: the last stage. mixtrain/hydra_app.py binds the composed config to
`TrainConfig` (train/config.py) and calls `train(config)`; tests and benches call it with a config
they built. `train` only composes: the plan of the start (resume.py) -> the data layout
(datamodule.py) -> the strategy (mixing/ registry, by `mixing.strategy`) and its initial weights ->
the DataModule (built with them) and the LightningModule (module.py) -> the run directory claimed
-> loggers, callbacks (mixing controller, checkpoints, progress) -> Trainer.fit -> summary.json.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mixtrain.store.runfiles import SUMMARY, atomic_write
from mixtrain.train import launch
from mixtrain.train.config import TrainConfig
from mixtrain.train.next_steps import after_run
from mixtrain.train.summary import domain_table, final_metrics, redact, redacted_yaml, secret_values, write_json

DEMO_DATA_DIR = "data/demo"  # TrainConfig's default data_dir: the demo corpus may be built there


@dataclass
class EntryContext:
    """What the entry point knows beyond the config (empty when train() is called from Python)."""

    overrides: Sequence[str] = ()  # the command line's overrides: an explicit `data=...` may build data_dir
    write_hydra_dir: Callable[[], None] | None = None  # RUN/.hydra, written by rank 0 once the run is accepted


@dataclass
class RunParts:
    """Everything built before the run directory is claimed (a refused run has written nothing)."""

    layout: Any
    mixing: Any
    datamodule: Any
    module: Any
    plan: Any
    importance: dict[str, float]
    accumulate: int
    world: int | None
    data: Any = None  # train/data_identity.py's DataPlan: the identity recorded in every checkpoint


# ----------------------------------------------------------------------------------------------- data
def _ensure_data(config: TrainConfig, overrides: Sequence[str]) -> None:
    if os.path.isfile(os.path.join(config.data_dir, "manifest.json")):
        return
    # a typo in data_dir must not silently train on the demo corpus (the default `data: demo`):
    # build only into the demo's own path, or from a data= the user asked for
    explicit_data = any(o.lstrip("+~").split("=", 1)[0] == "data" for o in overrides)
    source = config.data.get("source", "dir")  # data.source names the conf/data option; data.name is an HF dataset's
    demo_default = os.path.normpath(config.data_dir) == DEMO_DATA_DIR and source == "demo"
    if not config.prepare_if_missing or not (explicit_data or demo_default):
        raise FileNotFoundError(
            f"data_dir={config.data_dir} holds no prepared data (no manifest.json); check the path, or run "
            f"`python -m mixtrain.prepare data=demo data_dir={config.data_dir}` (or data=dir data.root=RAW) first "
            f"(train builds data_dir itself only for data_dir={DEMO_DATA_DIR} or an explicit data=... with "
            "prepare_if_missing=true)"
        )
    if not launch.is_rank_zero():  # rank 0 prepares it; a failed prepare stops this rank after the wait, not never
        launch.wait_for(os.path.join(config.data_dir, "manifest.json"), "the prepared data, built by rank 0")
        return
    from mixtrain.prepare.pipeline import prepare

    detail = {"dir": "root", "hf": "name"}.get(source)
    print(f"[mixtrain] {config.data_dir} is not prepared yet: preparing it from data={source}"
          + (f" (data.{detail}={redact(str(config.data.get(detail)))})" if detail else ""), flush=True)
    prepare(config.prepare_config())


def local_data_dir(config: TrainConfig, overrides: Sequence[str] = ()) -> str:
    """The prepared folder this run reads: `data_dir` itself (built first when allowed), or for an
    object-store URL (s3://, gs://, file://) its verified local copy under `staging_dir`."""
    from mixtrain.store import remote

    if not remote.is_url(config.data_dir):
        _ensure_data(config, overrides)
        return config.data_dir
    return str(remote.local_data_dir(config.data_dir, config.staging_dir, dict(config.storage_options) or None))


# -------------------------------------------------------------------------------------------- builders
def build_mixing(config: TrainConfig):
    """The `mixing` section built through the registry (mixing/strategy_registry.py): name, strategy, refit rules."""
    from mixtrain.mixing import build_mixing as build

    return build(config.mixing)


def build_datamodule(config: TrainConfig, layout, initial_weights: dict[str, float]):
    """The DataModule of `config` over `layout`, drawing by `initial_weights` from step 0."""
    from mixtrain.train.datamodule import MixtureDataModule

    return MixtureDataModule(
        layout, config.sampler, seq_len=config.seq_len, batch_size=config.batch_size, initial_weights=initial_weights,
        seed=config.seed, val_blocks_per_domain=config.val_blocks_per_domain,
        pin_memory=config.trainer["accelerator"] not in ("cpu",),
    )


def build_module(config: TrainConfig, layout, target_importance: dict[str, float], init_from: str | None = None,
                 reference_model: str | None = None):
    """The LightningModule of `config` (`model`, `optim`, ...) for `layout`'s domains and vocabulary,
    starting from `init_from`'s weights when given (checked here, before anything is written), and
    running the frozen `reference_model` the strategy declared on every batch (checked by the module)."""
    import torch

    from mixtrain.model.gpt import peak_flops_per_s
    from mixtrain.train.module import MixtureLM

    model = replace(config.model, vocab_size=layout.vocab_size, seq_len=config.seq_len)
    if init_from:
        from mixtrain.model.init_weights import check_initial_weights

        check_initial_weights(model, init_from)  # a misfit names the field, before the run dir
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return MixtureLM(
        model, config.optim, layout.domains, max_steps=config.trainer["max_steps"],
        max_nonfinite_steps=config.max_nonfinite_steps, compile=config.compile,
        peak_flops_per_s=peak_flops_per_s(device_name), val_domains=layout.val_domains,
        target_importance=target_importance, init_from=init_from, reference_model=reference_model,
    )


def _batch_plan(config: TrainConfig, start, rank_zero: bool) -> tuple[int | None, int]:
    """(world size, gradient accumulation): the global batch of `global_batch_tokens`, or on a resume
    with another world size the checkpoint's global batch (or a refusal)."""
    from mixtrain.train.checkpoints import BATCH_KEY
    from mixtrain.train.resume import resumed_accumulation

    tcfg = config.trainer
    if rank_zero and tcfg["accelerator"] == "cpu" and str(tcfg["precision"]).startswith(("bf16", "16")):
        # trainer=ddp/fsdp build on gpu.yaml (bf16, 10,000 steps): on CPU that is slow autocast
        print(f"[mixtrain] trainer.accelerator=cpu with trainer.precision={tcfg['precision']} (trainer=ddp/fsdp inherit "
              f"gpu.yaml's, with max_steps={tcfg['max_steps']}): pass trainer.precision=32-true and your "
              "trainer.max_steps on CPU", flush=True)
    world = launch.planned_world_size(tcfg["devices"], tcfg["num_nodes"])
    accumulate = launch.gradient_accumulation(config.global_batch_tokens, config.batch_size, config.seq_len, world)
    if start.ckpt is not None:  # another world size: keep the checkpoint's global batch (or refuse)
        accumulate = resumed_accumulation(start.ckpt.get(BATCH_KEY), config.batch_size, config.seq_len, world,
                                          accumulate, change=config.resume_global_batch == "change",
                                          where=start.ckpt_path, rank_zero=rank_zero)
    return world, accumulate


def build_parts(config: TrainConfig, start, data_dir: str, rank_zero: bool) -> RunParts:
    """Layout, strategy, DataModule, module and the mixing plan of the start: every check that can
    refuse the run, before anything is written."""
    from mixtrain.mixing.base import domain_stats_context
    from mixtrain.train.datamodule import read_layout
    from mixtrain.train.resume import plan_mixing
    from mixtrain.train.target import target_importance

    from mixtrain.train.data_identity import DATA_KEY, data_identity, plan_data

    # other data or tokenizer than the checkpoint's: refused (naming what changed) unless resume_data=switch
    data = plan_data((start.ckpt or {}).get(DATA_KEY), data_identity(data_dir), resume_data=config.resume_data,
                     where=start.ckpt_path, step=start.step, data_dir=data_dir, rank_zero=rank_zero)
    world, accumulate = _batch_plan(config, start, rank_zero)
    layout = read_layout(data_dir, list(config.eval_only_domains))
    importance = target_importance(config.target.importance, layout.domains, layout.val_domains)
    mixing = build_mixing(config)  # mixing.name: the strategy's name everywhere below
    max_steps = config.trainer["max_steps"]
    for problem in mixing.strategy.horizon_problems(max_steps) if rank_zero else []:
        print(f"[mixtrain] warning: {problem}", file=sys.stderr, flush=True)  # a schedule that would never run
    global_batch_tokens = (config.batch_size * config.seq_len * world * accumulate) if world else None
    ctx = domain_stats_context(data_dir, layout.domains, layout.stats, max_steps=max_steps,
                               global_batch_tokens=global_batch_tokens, writes_caches=rank_zero)
    dm = build_datamodule(config, layout, mixing.strategy.initial_weights(ctx))
    # init_from only starts a new run: a resume continues from the run's own checkpoint; the strategy's
    # frozen reference model (DoReMi per-token excess) is reloaded from its path on resume too
    module = build_module(config, layout, importance, init_from=None if start.ckpt else config.init_from,
                          reference_model=getattr(mixing.strategy, "reference_model", None))
    if start.ckpt is not None:
        module.on_load_checkpoint(start.ckpt)  # same domains and model, or a clear error
    plan = plan_mixing(start, mixing.name, mixing.config, dm.initial_weights, config.resume_mixing)
    start.ckpt = None  # Lightning reads the checkpoint itself
    return RunParts(layout, mixing, dm, module, plan, importance, accumulate, world, data)


# --------------------------------------------------------------------------------------- run directory
def config_text(config: TrainConfig, parts: RunParts) -> str:
    """RUN/config.yaml: the resolved, typed config (secrets redacted) and the switch a resume made."""
    resolved = redact(asdict(config))
    if parts.plan.switch_from is not None:  # the config says which strategy ran before this one
        resolved["resumed_with_mixing_switch"] = {"from": parts.plan.switch_from, "to": parts.mixing.name,
                                                  "step": parts.plan.keep_until_step}
    if parts.data is not None and parts.data.switch_from is not None:  # resume_data=switch: what changed
        resolved["resumed_with_data_switch"] = parts.data.switches[-1]
    return redacted_yaml(resolved)


def claim_run_dir(out_dir: str, text: str, rank_zero: bool, entry: EntryContext) -> None:
    """Rank 0 writes the run-level files once everything was accepted; the other ranks start once
    rank 0 has claimed the run (its config.yaml is this launch's)."""
    from mixtrain.store.checkpoint_files import remove_partial_files
    from mixtrain.train.loggers import route_logs

    if rank_zero:
        os.makedirs(out_dir, exist_ok=True)
        remove_partial_files(os.path.join(out_dir, "checkpoints"))
        route_logs(out_dir)
        if entry.write_hydra_dir:
            entry.write_hydra_dir()
        atomic_write(os.path.join(out_dir, "config.yaml"), text)
    else:
        launch.wait_for(os.path.join(out_dir, "config.yaml"), "the run's config.yaml, written once rank 0 "
                        "accepted the run", ready=lambda p: os.path.isfile(p) and Path(p).read_text() == text)


def build_loggers(config: TrainConfig, out_dir: str, keep_until_step: int | None) -> list:
    """RUN/metrics.csv always, plus the `logger` group's loggers (wandb offline by default), started
    with the redacted config."""
    from hydra.utils import instantiate  # the logger group names its classes by _target_

    from mixtrain.train.loggers import MetricsCSVLogger

    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's banner and sync hints: its files are in RUN/wandb/
    loggers = [MetricsCSVLogger(out_dir, keep_until_step=keep_until_step)]
    loggers += [instantiate(logger_cfg) for logger_cfg in (config.logger or {}).values()]
    _start_wandb_redacted(loggers, config)
    return loggers


def _start_wandb_redacted(loggers: list, config: TrainConfig) -> None:
    """Start wandb runs with the redacted config and a redacted command line (wandb records argv)."""
    from lightning.pytorch.loggers import WandbLogger

    wandb_loggers = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if not wandb_loggers or not launch.is_rank_zero():
        return
    argv, plain = list(sys.argv), asdict(config)
    sys.argv[:] = redact(argv, secret_values(plain) | secret_values(argv))
    try:
        for lg in wandb_loggers:
            lg.log_hyperparams(redact(plain))  # starts the run
    finally:
        sys.argv[:] = argv  # DDP's launcher re-runs the real command line


def build_callbacks(config: TrainConfig, parts: RunParts, out_dir: str, extra: Sequence = ()) -> tuple[list, Any, Any]:
    """(callbacks, the preemption handler, the mixing identity) of the run."""
    from mixtrain.train.checkpoints import BatchShape, MixingIdentity, Preemption, RunCheckpoint
    from mixtrain.train.console import progress_callbacks
    from mixtrain.train.data_identity import DataIdentity
    from mixtrain.train.mixing_controller import MixingController

    plan, mixing = parts.plan, parts.mixing
    identity = MixingIdentity(mixing.name, mixing.config, parts.datamodule.initial_weights, plan.run_initial_weights,
                              plan.switches, plan.switch_from)
    preemption = Preemption()  # SIGTERM/SIGUSR1: stop at the next step with a checkpoint of it (exit 143 / requeue)
    callbacks = [
        preemption,
        BatchShape(parts.accumulate, config.batch_size, config.seq_len),
        MixingController(mixing.strategy, out_dir, **mixing.refit),  # sampler accounting + mix/ logs (+ refits)
        identity,
        DataIdentity(parts.data),
        RunCheckpoint(dirpath=os.path.join(out_dir, "checkpoints"), every_n_train_steps=config.checkpoint_every_n_steps,
                      save_last=True, save_top_k=-1, filename="step{step:07d}", auto_insert_metric_name=False),
        *progress_callbacks(bool(config.trainer.get("enable_progress_bar", True)),  # steps, tok/s, loss, mix
                            every_n_steps=config.progress_every_n_steps, every_s=config.progress_every_s),
        *extra,
    ]
    return callbacks, preemption, identity


def build_trainer(config: TrainConfig, parts: RunParts, callbacks: list, loggers: list, out_dir: str):
    """Lightning's Trainer from the `trainer` section (a strategy given by _target_ is built too)."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from mixtrain.train.checkpoints import AtomicCheckpointIO

    trainer_kwargs = {k: v for k, v in dict(config.trainer).items() if k != "_target_"}
    trainer_kwargs["accumulate_grad_batches"] = parts.accumulate
    launch.fill_data_parallel_size(trainer_kwargs, parts.world)
    trainer_kwargs = instantiate(trainer_kwargs, _convert_="all")  # nested _target_ (FSDP2's strategy)
    return pl.Trainer(**trainer_kwargs, callbacks=callbacks, logger=loggers, default_root_dir=out_dir,
                      plugins=[AtomicCheckpointIO(), *launch.cluster_plugins()])


# -------------------------------------------------------------------------------------------------- run
def finish(config: TrainConfig, trainer, parts: RunParts, preemption, identity, started: float) -> dict:
    """summary.json (rank 0) and the end-of-run message: the per-domain table, or how to continue."""
    dm, out_dir, max_steps = parts.datamodule, config.out_dir, config.trainer["max_steps"]
    final = final_metrics(trainer.callback_metrics, dm.domains, dm.stream.current_weights(), dm.stream.domain_tokens())
    summary = {
        "strategy": parts.mixing.name, "seed": int(config.seed), "wall_time_s": time.time() - started,
        "step": int(trainer.global_step), "tokens": int(sum(dm.stream.domain_tokens().values())),
        "initial_weights": parts.plan.run_initial_weights, "mixing_switches": identity.switches,
        "passes": dm.stream.passes(), "final": final, "eval_only_domains": dm.eval_only_domains,
        "target_importance": parts.importance,
        # which data: report/comparable.py ranks only runs of the same data (and model size) together
        "data": {k: parts.data.identity.get(k) for k in ("manifest_fingerprint", "tokenizer_sha256", "vocab_size",
                                                         "shards_sha256")},
    }
    if preemption.signal_name:
        summary["stopped_by"] = {"signal": preemption.signal_name, "step": int(trainer.global_step),
                                 "resume": "the same command with resume=true (or resume=auto)"}
    if launch.is_rank_zero(trainer):
        write_json(os.path.join(out_dir, SUMMARY), summary)
        if preemption.signal_name:
            print(f"\n[mixtrain] {preemption.signal_name} received: stopped at step {trainer.global_step} of "
                  f"{max_steps} with a checkpoint of that step ({out_dir}/checkpoints/last.ckpt); continue "
                  "exactly with the same command and resume=true (or resume=auto)", flush=True)
        elif config.table_at_end:
            print(f"\n[mixtrain] {parts.mixing.name}: {trainer.global_step} steps, {summary['tokens']:,} tokens, "
                  f"run dir {out_dir}\n{domain_table(final, dm.domains, dm.eval_only_domains)}\n", flush=True)
            print(after_run(out_dir), flush=True)
    return summary


def train(config: TrainConfig, extra_callbacks: Sequence = (), entry: EntryContext | None = None) -> dict:
    """Train one run; returns the summary also written to RUN/summary.json."""
    import lightning.pytorch as pl

    from mixtrain.prepare.shards import verify_data_dir
    from mixtrain.train.loggers import route_logs
    from mixtrain.train.chameleon_proxy import with_domain_embeddings
    from mixtrain.train.resume import plan_start

    started, entry = time.time(), entry or EntryContext()
    out_dir, rank_zero = config.out_dir, launch.is_rank_zero()
    with hold_run_dir(config, rank_zero):  # one writer per out_dir, from the plan to summary.json
        # fresh run, exact resume or refusal: decided on every rank before anything is written (resume.py)
        start = plan_start(out_dir, resume=config.resume, ckpt_path=config.ckpt_path, overwrite=config.overwrite,
                           rank_zero=rank_zero, restart_count=int(os.environ.get("SLURM_RESTART_COUNT") or 0))
        route_logs(None)  # console: progress bar + final table; RUN/train.log once the run is validated
        data_dir = local_data_dir(config, entry.overrides)
        verify_data_dir(data_dir)  # cheap: every shard file there, at full size
        config = with_domain_embeddings(config, data_dir, train)  # mixing=chameleon without embeddings: its proxy run
        pl.seed_everything(config.seed, workers=True, verbose=False)
        parts = build_parts(config, start, data_dir, rank_zero)
        claim_run_dir(out_dir, config_text(config, parts), rank_zero, entry)
        loggers = build_loggers(config, out_dir, parts.plan.keep_until_step)
        callbacks, preemption, identity = build_callbacks(config, parts, out_dir, extra_callbacks or ())
        trainer = build_trainer(config, parts, callbacks, loggers, out_dir)
        trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=start.ckpt_path, weights_only=True)
        return finish(config, trainer, parts, preemption, identity, started)


def hold_run_dir(config: TrainConfig, rank_zero: bool):
    """Global rank 0's exclusive lock on out_dir (store/run_lock.py): a second start refuses at once
    naming the holder; a requeue (resume=auto, SLURM_RESTART_COUNT > 0) waits up to run_lock_timeout_s.
    The other ranks start under rank 0's lock (they write only what rank 0 tells them to)."""
    import contextlib

    from mixtrain.store.run_lock import run_lock
    from mixtrain.train.resume import resume_mode

    if not rank_zero:
        return contextlib.nullcontext()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    reason = "resume=auto" if resume_mode(config.resume) == "auto" else None
    if restarts:
        reason = f"SLURM requeue (SLURM_RESTART_COUNT={restarts})"
    return run_lock(config.out_dir, wait_s=config.run_lock_timeout_s, waiting_reason=reason)
