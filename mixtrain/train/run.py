"""Entry point: pretrain on a mixture of domains.

    python -m mixtrain.train data_dir=DIR mixing=natural model=tiny out_dir=RUN
    python -m mixtrain.train experiment=demo                          # the README's main command
    python -m mixtrain.train -m mixing=uniform,natural,temperature    # a Hydra sweep
    python -m mixtrain.train ... resume=true                          # continue RUN exactly

Place in the flow: the last stage; it only composes from conf/train.yaml and its groups: the
data layout (data.py) -> the strategy (mixing/ registry, by `mixing.strategy`) and its initial
weights -> the DataModule (built with them) and the LightningModule (module.py) -> the mixing
controller (mixing/refit.py), checkpoints and loggers -> Trainer.fit -> summary.json. Under a multirun every job
re-executes itself as a single run in a subprocess, so each job gets its own process group
(Lightning's DDP launcher would otherwise re-run the whole sweep on every extra rank).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mixtrain.train import launch
from mixtrain.store.runfiles import SUMMARY, atomic_write
from mixtrain.train.summary import (domain_table, final_metrics, redact, redact_hydra_dir, secret_values, write_hydra_dir,
                              write_json)


DEMO_DATA_DIR = "data/demo"  # conf/train.yaml's default data_dir: the demo corpus may be built there


def _hydra_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _hydra_run_dir() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None


def _ensure_data(cfg: DictConfig) -> None:
    if os.path.isfile(os.path.join(cfg.data_dir, "manifest.json")):
        return
    # a typo in data_dir must not silently train on the demo corpus (the default `data: demo`):
    # build only into the demo's own path, or from a data= the user asked for
    explicit_data = any(o.lstrip("+~").split("=", 1)[0] == "data" for o in _hydra_overrides())
    demo_default = os.path.normpath(str(cfg.data_dir)) == DEMO_DATA_DIR and cfg.data.get("source") == "demo"
    if not cfg.prepare_if_missing or not (explicit_data or demo_default):
        raise FileNotFoundError(
            f"data_dir={cfg.data_dir} holds no prepared data (no manifest.json); check the path, or run "
            f"`python -m mixtrain.prepare data=demo data_dir={cfg.data_dir}` (or data=dir data.root=RAW) first "
            f"(train builds data_dir itself only for data_dir={DEMO_DATA_DIR} or an explicit data=... with "
            "prepare_if_missing=true)"
        )
    if not launch.is_rank_zero():  # rank 0 prepares it; a failed prepare stops this rank after the wait, not never
        launch.wait_for(os.path.join(cfg.data_dir, "manifest.json"), "the prepared data, built by rank 0")
        return
    from mixtrain.prepare.pipeline import prepare_from_config

    source = cfg.data.get("source", "dir")  # data.source names the conf/data option; data.name is an HF dataset's
    detail = {"dir": "root", "hf": "name"}.get(source)
    print(f"[mixtrain] {cfg.data_dir} is not prepared yet: preparing it from data={source}"
          + (f" (data.{detail}={redact(str(cfg.data.get(detail)))})" if detail else ""), flush=True)
    prepare_from_config(cfg)


def _local_data_dir(cfg: DictConfig) -> str:
    """The prepared folder this run reads: `data_dir` itself (built first when allowed), or for an
    object-store URL (s3://, gs://, file://) its verified local copy under `staging_dir`."""
    from mixtrain.store import remote

    if not remote.is_url(cfg.data_dir):
        _ensure_data(cfg)
        return str(cfg.data_dir)
    options = OmegaConf.to_container(cfg.storage_options, resolve=True) if cfg.get("storage_options") else None
    return str(remote.local_data_dir(str(cfg.data_dir), cfg.get("staging_dir"), options))


def build_mixing(cfg: DictConfig):
    """`cfg.mixing` built through the registry (mixtrain/mixing/__init__.py): name, strategy, refit rules."""
    from mixtrain.mixing import build_mixing as build

    return build(OmegaConf.to_container(cfg.mixing, resolve=True))


def build_datamodule(cfg: DictConfig, layout, initial_weights: dict[str, float]):
    """The DataModule of `cfg` over `layout`, drawing by `initial_weights` from step 0."""
    from mixtrain.train.datamodule import MixtureDataModule

    return MixtureDataModule(
        layout, cfg.seq_len, cfg.batch_size, initial_weights=initial_weights, seed=cfg.seed,
        sampler_mode=cfg.sampler.mode, num_workers=cfg.sampler.num_workers, prefetch_factor=cfg.sampler.prefetch_factor,
        pin_memory=cfg.trainer.accelerator not in ("cpu",), val_blocks_per_domain=cfg.val_blocks_per_domain,
        window_samples=cfg.sampler.window_samples, weight_lag_batches=cfg.sampler.weight_lag_batches,
        max_open_chunks=cfg.sampler.get("max_open_chunks"),
    )


def build_module(cfg: DictConfig, layout, target_importance: dict[str, float], init_from: str | None = None,
                 reference_model: str | None = None):
    """The LightningModule of `cfg` (`model`, `optim`, ...) for `layout`'s domains and vocabulary,
    starting from `init_from`'s weights when given (checked here, before anything is written), and
    running the frozen `reference_model` the strategy declared on every batch (checked by the module)."""
    import torch

    from mixtrain.model.gpt import peak_flops_per_s
    from mixtrain.train.module import MixtureLM

    model_cfg = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    model_cfg.update(vocab_size=layout.vocab_size, seq_len=cfg.seq_len)
    if init_from:
        from mixtrain.model.init_weights import check_initial_weights
        from mixtrain.model.gpt import GPTConfig

        check_initial_weights(GPTConfig(**model_cfg), init_from)  # a misfit names the field, before the run dir
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return MixtureLM(
        model_cfg, layout.domains, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas),
        warmup_steps=cfg.optim.warmup_steps, max_steps=cfg.trainer.max_steps, min_lr_ratio=cfg.optim.min_lr_ratio,
        schedule=cfg.optim.schedule, decay_fraction=cfg.optim.decay_fraction, decay_shape=cfg.optim.decay_shape,
        compile=cfg.compile, peak_flops_per_s=peak_flops_per_s(device_name),
        max_nonfinite_steps=cfg.get("max_nonfinite_steps", 3),
        val_domains=layout.val_domains, target_importance=target_importance, init_from=init_from,
        reference_model=reference_model,
    )


def train(cfg: DictConfig, extra_callbacks: list | None = None) -> dict:
    """Train one run from a composed config; returns the summary also written to RUN/summary.json."""
    import lightning.pytorch as pl

    from mixtrain.train.checkpoints import (BATCH_KEY, AtomicCheckpointIO, BatchShape, MixingIdentity, Preemption,
                                      RunCheckpoint, remove_partial_files)
    from mixtrain.train.console import progress_callbacks
    from mixtrain.train.datamodule import read_layout
    from mixtrain.train.loggers import MetricsCSVLogger, route_logs
    from mixtrain.mixing.base import domain_stats_context
    from mixtrain.train.mixing_controller import MixingController
    from mixtrain.train.resume import plan_mixing, plan_start, resumed_accumulation
    from mixtrain.prepare.shards import verify_data_dir
    from mixtrain.train.target import target_importance

    started = time.time()
    # settings checked before plan_start can clear anything (overwrite=true)
    if cfg.get("resume_mixing", "refuse") not in ("refuse", "switch"):
        raise ValueError(f"resume_mixing={cfg.resume_mixing}: use refuse (default) or switch")
    if cfg.get("resume_global_batch", "keep") not in ("keep", "change"):
        raise ValueError(f"resume_global_batch={cfg.resume_global_batch}: use keep (default) or change")
    out_dir = str(cfg.out_dir)
    rank_zero = launch.is_rank_zero()
    # fresh run, exact resume or refusal: decided on every rank before anything is written (resume.py)
    start = plan_start(out_dir, resume=cfg.get("resume", False), ckpt_path=cfg.ckpt_path,
                       overwrite=bool(cfg.get("overwrite", False)), rank_zero=rank_zero,
                       restart_count=int(os.environ.get("SLURM_RESTART_COUNT") or 0))
    route_logs(None)  # console: progress bar + final table; RUN/train.log once the run is validated
    data_dir = _local_data_dir(cfg)
    verify_data_dir(data_dir)  # cheap: every shard file there, at full size
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    tcfg = cfg.trainer
    if rank_zero and tcfg.accelerator == "cpu" and str(tcfg.precision).startswith(("bf16", "16")):
        # trainer=ddp/fsdp build on gpu.yaml (bf16, 10,000 steps): on CPU that is slow autocast
        print(f"[mixtrain] trainer.accelerator=cpu with trainer.precision={tcfg.precision} (trainer=ddp/fsdp inherit "
              f"gpu.yaml's, with max_steps={tcfg.max_steps}): pass trainer.precision=32-true and your "
              "trainer.max_steps on CPU", flush=True)
    world = launch.planned_world_size(tcfg.devices, tcfg.num_nodes)
    accumulate = launch.gradient_accumulation(cfg.global_batch_tokens, cfg.batch_size, cfg.seq_len, world)
    if start.ckpt is not None:  # another world size: keep the checkpoint's global batch (or refuse)
        accumulate = resumed_accumulation(start.ckpt.get(BATCH_KEY), cfg.batch_size, cfg.seq_len, world,
                                          accumulate, change=cfg.get("resume_global_batch", "keep") == "change",
                                          where=start.ckpt_path, rank_zero=rank_zero)
    layout = read_layout(data_dir, list(cfg.get("eval_only_domains") or []))
    importance = target_importance((cfg.get("target") or {}).get("importance"), layout.domains, layout.val_domains)
    mixing = build_mixing(cfg)  # mixing.name: the strategy's name everywhere below
    strategy = mixing.strategy
    for problem in strategy.horizon_problems(tcfg.max_steps) if rank_zero else []:
        print(f"[mixtrain] warning: {problem}", file=sys.stderr, flush=True)  # a schedule that would never run
    global_batch_tokens = (cfg.batch_size * cfg.seq_len * world * accumulate) if world else None
    ctx = domain_stats_context(data_dir, layout.domains, layout.stats, max_steps=tcfg.max_steps,
                               global_batch_tokens=global_batch_tokens)
    dm = build_datamodule(cfg, layout, strategy.initial_weights(ctx))
    # init_from only starts a new run: a resume continues from the run's own checkpoint
    # the strategy's frozen reference model (DoReMi per-token excess) is reloaded from its path on resume too
    module = build_module(cfg, layout, importance, init_from=None if start.ckpt else cfg.get("init_from"),
                          reference_model=getattr(strategy, "reference_model", None))
    if start.ckpt is not None:
        module.on_load_checkpoint(start.ckpt)  # same domains and model, or a clear error
    plan = plan_mixing(start, mixing.name, mixing.config, dm.initial_weights, cfg.get("resume_mixing", "refuse"))
    keep_until, switch_from = plan.keep_until_step, plan.switch_from
    start.ckpt = None  # Lightning reads the checkpoint itself
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    if switch_from is not None:  # the config says which strategy ran before this one
        resolved["resumed_with_mixing_switch"] = {"from": switch_from, "to": mixing.name, "step": keep_until}
    config_text = OmegaConf.to_yaml(OmegaConf.create(resolved))
    if rank_zero:  # run-level files: global rank 0 only, once everything above was accepted
        os.makedirs(out_dir, exist_ok=True)
        remove_partial_files(os.path.join(out_dir, "checkpoints"))
        route_logs(out_dir)
        _write_hydra_dir(cfg)
        atomic_write(os.path.join(out_dir, "config.yaml"), config_text)
    else:  # the other ranks start once rank 0 has claimed the run (its config.yaml is this launch's)
        launch.wait_for(os.path.join(out_dir, "config.yaml"), "the run's config.yaml, written once rank 0 "
                        "accepted the run", ready=lambda p: os.path.isfile(p) and Path(p).read_text() == config_text)

    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's banner and sync hints: its files are in RUN/wandb/
    loggers = [MetricsCSVLogger(out_dir, keep_until_step=keep_until)]
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        loggers.append(instantiate(logger_cfg))
    _start_wandb_redacted(loggers, cfg)
    mixing_identity = MixingIdentity(mixing.name, mixing.config, dm.initial_weights, plan.run_initial_weights,
                                     plan.switches, switch_from)
    preemption = Preemption()
    callbacks = [
        preemption,  # SIGTERM/SIGUSR1: stop at the next step with a checkpoint of it (exit 143 / requeue)
        BatchShape(accumulate, cfg.batch_size, cfg.seq_len),
        MixingController(strategy, out_dir, **mixing.refit),  # sampler accounting + mix/ logs (+ refits if online)
        mixing_identity,
        RunCheckpoint(dirpath=os.path.join(out_dir, "checkpoints"), every_n_train_steps=cfg.checkpoint_every_n_steps,
                      save_last=True, save_top_k=-1, filename="step{step:07d}", auto_insert_metric_name=False),
        *progress_callbacks(bool(tcfg.get("enable_progress_bar", True))),  # steps/max_steps, tok/s, loss, mix
        *(extra_callbacks or []),
    ]
    trainer_kwargs = OmegaConf.to_container(tcfg, resolve=True)
    trainer_kwargs["accumulate_grad_batches"] = accumulate
    launch.fill_data_parallel_size(trainer_kwargs, world)
    trainer = instantiate(trainer_kwargs, callbacks=callbacks, logger=loggers, default_root_dir=out_dir,
                          plugins=[AtomicCheckpointIO(), *launch.cluster_plugins()], _convert_="all")
    trainer.fit(module, datamodule=dm, ckpt_path=start.ckpt_path, weights_only=True)

    final = final_metrics(trainer.callback_metrics, dm.domains, dm.stream.current_weights(), dm.stream.domain_tokens())
    summary = {
        "strategy": mixing.name, "seed": int(cfg.seed), "wall_time_s": time.time() - started,
        "step": int(trainer.global_step), "tokens": int(sum(dm.stream.domain_tokens().values())),
        "initial_weights": plan.run_initial_weights, "mixing_switches": mixing_identity.switches, "passes": dm.stream.passes(), "final": final,
        "eval_only_domains": dm.eval_only_domains, "target_importance": importance,
    }
    if preemption.signal_name:
        summary["stopped_by"] = {"signal": preemption.signal_name, "step": int(trainer.global_step),
                                 "resume": "the same command with resume=true (or resume=auto)"}
    if launch.is_rank_zero(trainer):
        write_json(os.path.join(out_dir, SUMMARY), summary)
        if preemption.signal_name:
            print(f"\n[mixtrain] {preemption.signal_name} received: stopped at step {trainer.global_step} of "
                  f"{tcfg.max_steps} with a checkpoint of that step ({out_dir}/checkpoints/last.ckpt); continue "
                  "exactly with the same command and resume=true (or resume=auto)", flush=True)
        elif cfg.table_at_end:
            print(f"\n[mixtrain] {mixing.name}: {trainer.global_step} steps, {summary['tokens']:,} tokens, "
                  f"run dir {out_dir}\n{domain_table(final, dm.domains, dm.eval_only_domains)}\n", flush=True)
    return summary


def _start_wandb_redacted(loggers: list, cfg: DictConfig) -> None:
    """Start wandb runs with the redacted config and a redacted command line (wandb records argv)."""
    from lightning.pytorch.loggers import WandbLogger

    wandb_loggers = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if not wandb_loggers or not launch.is_rank_zero():
        return
    argv = list(sys.argv)
    config = OmegaConf.to_container(cfg, resolve=True)
    sys.argv[:] = redact(argv, secret_values(config) | secret_values(argv))
    try:
        for lg in wandb_loggers:
            lg.log_hyperparams(redact(config))  # starts the run
    finally:
        sys.argv[:] = argv  # DDP's launcher re-runs the real command line


def _write_hydra_dir(cfg: DictConfig) -> None:
    """RUN/.hydra/ as Hydra writes it, redacted: the entry point turned Hydra's own writing off
    (launch.entry_argv), so only rank 0 of an accepted run writes it, never a refused one."""
    from hydra.core.hydra_config import HydraConfig

    subdir = launch.hydra_subdir()
    if not HydraConfig.initialized() or not subdir:
        return
    hc = HydraConfig.get()
    hydra_node = OmegaConf.to_container(hc, resolve=False, enum_to_str=True)
    hydra_node["output_subdir"] = subdir
    write_hydra_dir(os.path.join(hc.runtime.output_dir, subdir), OmegaConf.to_container(cfg, resolve=False),
                    hydra_node, list(hc.overrides.task))


@hydra.main(config_path="../../conf", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    if launch.is_multirun_job():
        from hydra.core.hydra_config import HydraConfig

        if launch.is_rank_zero():
            redact_hydra_dir(str(HydraConfig.get().sweep.dir))  # multirun.yaml holds the sweep's overrides
        command = launch.single_run_command("mixtrain.train")
        print(f"[mixtrain] sweep job: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True)
        return
    summary = train(cfg)
    if summary.get("stopped_by"):  # preempted: never exit 0 as if finished (128+signal, or requeued)
        sys.exit(launch.exit_after_signal(summary["stopped_by"]["signal"]))


def main() -> None:
    """`python -m mixtrain.train ...` (and the `mixtrain-train` script): Hydra's own .hydra/ writing is
    turned off on every process before Hydra starts (launch.entry_argv; train.py writes it on rank 0)."""
    sys.argv[:] = launch.entry_argv(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
