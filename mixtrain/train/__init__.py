"""One Lightning training run: a prepared DIR + a strategy -> a run directory.

Place in the flow: after prepare (and fitting, for mixing=law); mixtrain/hydra_app.py binds the
Hydra config to `TrainConfig` and calls `run.train`, which only composes the parts below.

    config.py             TrainConfig and its sections (optim, sampler, target; model = model/config.py's GPTConfig)
    run.py                train(config): plan the start, build the parts, claim RUN, fit, summary.json
    datamodule.py         read_layout + MixtureDataModule: the mixed train stream, fixed val loaders
    module.py             MixtureLM: next-token and per-domain losses, AdamW + lr_schedule.py, throughput
    mixing_controller.py  losses -> strategy.update -> sampler.set_weights, mix/ logs, refits.jsonl
    step_output.py        StepOutput: what a training step hands the controller
    checkpoints.py        atomic, published-after-metrics checkpoints; preemption; batch shape; mixing identity
    resume.py             fresh run, exact resume or refusal, decided before anything is written
    summary.py            redaction, claiming out_dir, summary.json, the final table
    loggers.py console.py metrics.csv + wandb; the progress line
    launch.py             ranks before the process group, world size, waiting for rank 0, exit after a signal
    target.py             val/target: the importance-weighted validation loss
    grad_probe.py         the gradient probe: sketched per-domain/target gradients at a gradient strategy's refits
    influence.py          `mixtrain influence RUN`: AutoMixer offline from checkpoints -> weights.yaml
    __main__.py           `python -m mixtrain.train` (torchrun -m, srun, Docker)
"""
