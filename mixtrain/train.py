"""Entry point: pretrain on a mixture of domains.

    python -m mixtrain.train data_dir=DIR mixing=natural model=tiny out_dir=RUN
    python -m mixtrain.train experiment=demo                          # the README's main command
    python -m mixtrain.train -m mixing=uniform,natural,temperature    # a Hydra sweep
    python -m mixtrain.train ... resume=true                          # continue RUN exactly

Place in the flow: the last stage; it only composes (data.py, strategies.py, module.py,
refit.py, loggers.py) from conf/train.yaml and its groups. Under a multirun every job
re-executes itself as a single run in a subprocess, so each job gets its own process group
(Lightning's DDP launcher would otherwise re-run the whole sweep on every extra rank).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mixtrain import launch
from mixtrain.summary import domain_table, final_metrics, redact, write_json


def _checkpoint_to_resume(cfg: DictConfig) -> str | None:
    if cfg.ckpt_path:
        if not os.path.isfile(cfg.ckpt_path):
            raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path} does not exist")
        return str(cfg.ckpt_path)
    if cfg.resume:
        last = os.path.join(cfg.out_dir, "checkpoints", "last.ckpt")
        if not os.path.isfile(last):
            raise FileNotFoundError(
                f"resume=true but {last} does not exist; train without resume=true first (same out_dir)"
            )
        return last
    return None


def _checkpoint_step(path: str | None) -> int | None:
    if path is None:
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _ensure_data(cfg: DictConfig) -> None:
    if os.path.isfile(os.path.join(cfg.data_dir, "manifest.json")):
        return
    if not cfg.prepare_if_missing:
        raise FileNotFoundError(
            f"{cfg.data_dir} holds no prepared data (no manifest.json); run "
            f"`python -m mixtrain.prepare data=demo data_dir={cfg.data_dir}` (or data=dir data.root=RAW) first"
        )
    if launch.global_rank() != 0:
        raise RuntimeError(f"{cfg.data_dir} is not prepared; prepare it once before a multi-process run")
    from mixtrain.prepare import prepare_from_config

    print(f"[mixtrain] {cfg.data_dir} is not prepared yet: preparing it from data={cfg.data.get('name', '?')}", flush=True)
    prepare_from_config(cfg)


def train(cfg: DictConfig, extra_callbacks: list | None = None) -> dict:
    """Train one run from a composed config; returns the summary also written to RUN/summary.json."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    from mixtrain.data import MixtureDataModule, MixtureProgress
    from mixtrain.loggers import MetricsCSVLogger
    from mixtrain.model import peak_flops_per_s
    from mixtrain.module import MixtureLM
    from mixtrain.refit import Refit
    from mixtrain.strategies import domain_stats_context
    from mixtrain.target import target_importance

    started = time.time()
    _ensure_data(cfg)
    __import__("mixtrain.shards").shards.verify_data_dir(str(cfg.data_dir))  # cheap: every shard file there, full size
    out_dir = str(cfg.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    rank = launch.global_rank()
    if rank == 0:
        with open(os.path.join(out_dir, "config.yaml"), "w") as f:
            f.write(OmegaConf.to_yaml(OmegaConf.create(redact(OmegaConf.to_container(cfg, resolve=True)))))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    tcfg = cfg.trainer
    world = launch.planned_world_size(tcfg.devices, tcfg.num_nodes)
    accumulate = launch.gradient_accumulation(cfg.global_batch_tokens, cfg.batch_size, cfg.seq_len, world)
    dm = MixtureDataModule(
        cfg.data_dir, cfg.seq_len, cfg.batch_size, seed=cfg.seed, sampler_mode=cfg.sampler.mode,
        num_workers=cfg.sampler.num_workers, prefetch_factor=cfg.sampler.prefetch_factor,
        pin_memory=tcfg.accelerator not in ("cpu",), val_blocks_per_domain=cfg.val_blocks_per_domain,
        window_samples=cfg.sampler.window_samples, weight_lag_batches=cfg.sampler.weight_lag_batches,
        eval_only_domains=list(cfg.get("eval_only_domains") or []),
    )
    importance = target_importance((cfg.get("target") or {}).get("importance"), dm.domains, dm.val_domains)
    mixing = OmegaConf.to_container(cfg.mixing, resolve=True)
    strategy_name = mixing.pop("name")
    refit_cfg = mixing.pop("refit", None) or {}
    strategy = instantiate(mixing, _convert_="all")
    global_batch_tokens = (cfg.batch_size * cfg.seq_len * world * accumulate) if world else None
    ctx = domain_stats_context(cfg.data_dir, dm.domains, dm.stats, max_steps=tcfg.max_steps,
                               global_batch_tokens=global_batch_tokens)
    dm.initial_weights = strategy.initial_weights(ctx)

    model_cfg = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    model_cfg.update(vocab_size=dm.vocab_size, seq_len=cfg.seq_len)
    import torch

    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    module = MixtureLM(
        model_cfg, dm.domains, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas),
        warmup_steps=cfg.optim.warmup_steps, max_steps=tcfg.max_steps, min_lr_ratio=cfg.optim.min_lr_ratio,
        schedule=cfg.optim.schedule, decay_fraction=cfg.optim.decay_fraction, decay_shape=cfg.optim.decay_shape,
        compile=cfg.compile, peak_flops_per_s=peak_flops_per_s(device_name),
        val_domains=dm.val_domains, target_importance=importance,
    )

    ckpt_path = _checkpoint_to_resume(cfg)
    loggers = [MetricsCSVLogger(out_dir, keep_until_step=_checkpoint_step(ckpt_path) if ckpt_path else None)]
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        loggers.append(instantiate(logger_cfg))
    callbacks = [
        MixtureProgress(),
        ModelCheckpoint(dirpath=os.path.join(out_dir, "checkpoints"), every_n_train_steps=cfg.checkpoint_every_n_steps,
                        save_last=True, save_top_k=-1, filename="step{step:07d}", auto_insert_metric_name=False),
    ]
    if strategy.refit_every_n_steps:
        callbacks.append(Refit(strategy, out_dir, **refit_cfg))
    callbacks += list(extra_callbacks or [])
    trainer_kwargs = OmegaConf.to_container(tcfg, resolve=True)
    trainer_kwargs["accumulate_grad_batches"] = accumulate
    trainer = instantiate(trainer_kwargs, callbacks=callbacks, logger=loggers, default_root_dir=out_dir,
                          _convert_="all")
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)

    final = final_metrics(trainer.callback_metrics, dm.domains, dm.stream.current_weights(), dm.stream.domain_tokens())
    summary = {
        "strategy": strategy_name, "seed": int(cfg.seed), "wall_time_s": time.time() - started,
        "step": int(trainer.global_step), "tokens": int(sum(dm.stream.domain_tokens().values())),
        "initial_weights": dm.initial_weights, "passes": dm.stream.passes(), "final": final,
        "eval_only_domains": dm.eval_only_domains, "target_importance": importance,
    }
    if trainer.is_global_zero:
        write_json(os.path.join(out_dir, "summary.json"), summary)
        if cfg.table_at_end:
            print(f"\n[mixtrain] {strategy_name}: {trainer.global_step} steps, {summary['tokens']:,} tokens, "
                  f"run dir {out_dir}\n{domain_table(final, dm.domains)}\n", flush=True)
    return summary


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if launch.is_multirun_job():
        command = launch.single_run_command("mixtrain.train")
        print(f"[mixtrain] sweep job: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True)
        return
    train(cfg)


if __name__ == "__main__":
    sys.exit(main())
