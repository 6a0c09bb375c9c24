"""AutoMixer offline (Chang et al. 2025, arXiv 2506.21910): a mixture from the influence of each domain on
each target task, measured at a finished run's saved checkpoints with the gradient probe.

    python -m mixtrain.train.influence RUN [--out DIR] [--samples-per-domain 16] [--sketch-dim 16384]
    mixtrain influence RUN ...
    python -m mixtrain.train mixing=manual mixing.weights_file=RUN/influence/weights.yaml ...

Place in the flow: RUN/config.yaml + RUN/checkpoints/ (train/run.py) -> **influence.py**: for every
checkpoint, each target task's validation loss and the probe (train/grad_probe.py, tasks="each") ->
a checkpoint per task -> combined scores -> OUT/weights.yaml (mixing=manual) + OUT/influence.json
and OUT/influence.png (the influence matrix at the chosen checkpoints, and the weights).

Steps (AutoMixer's, per domain instead of per sample; every choice where the paper is unclear is
in docs/online.md):
1. Tasks = the run's target domains (`target.importance`, eval-only domains included; default the
   training domains equally), each scored on its validation set (the val loaders' blocks).
2. For task t, the checkpoint theta_t with the lowest validation loss of t (the paper: the best-scoring
   checkpoint per benchmark; skills peak at different steps).
3. I_t(domain g) = <grad loss_t(theta_t), grad loss_g(theta_t)>: the first-order influence of a step on
   g's data on task t (H = identity; the paper's DataInf inverse is not used), g's gradient being the
   mean over a seeded probe batch of its training blocks = the token-weighted mean of its samples'
   influence (AutoMixer's rho_g with equal-length blocks).
4. I_joint(g) = sum_t a_t I_t(g), a_t proportional to theta_t's step (the paper) times the task's
   importance (ours: the user's target weights).
5. w_g = max(I_joint(g), 0) / sum (negative influence clipped at 0); all <= 0 is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import ConfigError, RunDirError
from mixtrain.store.runfiles import atomic_write, write_json_atomic

CHECKPOINT = re.compile(r"^step(\d+)(\.ckpt)?$")


def run_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every saved step checkpoint of RUN, in step order (last.ckpt is one of them)."""
    folder = Path(run_dir) / "checkpoints"
    found = sorted((int(m.group(1)), p) for p in folder.glob("step*") if (m := CHECKPOINT.match(p.name)))
    if not found:
        raise RunDirError(f"{folder} holds no step checkpoint (stepNNNNNNN.ckpt): influence needs a run that saved "
                          "checkpoints (checkpoint_every_n_steps)")
    return found


def combine(task_inner: dict[int, np.ndarray], val_loss: dict[int, np.ndarray], importance: np.ndarray,
            ) -> tuple[np.ndarray, list[int], np.ndarray]:
    """AutoMixer steps 2, 4 and 5 on measured arrays (pure numpy).

    task_inner[step] [k, T], val_loss[step] [T] -> (weights [k], chosen step per task, I_joint [k])."""
    steps = sorted(task_inner)
    T = len(importance)
    chosen = [min(steps, key=lambda s: (val_loss[s][t], -s)) for t in range(T)]
    alpha = np.array([max(s, 1) for s in chosen], dtype=np.float64) * importance
    alpha = alpha / alpha.sum()
    joint = sum(alpha[t] * task_inner[chosen[t]][:, t] for t in range(T))
    rho = np.clip(joint, 0.0, None)
    if not rho.sum() > 0:
        raise ConfigError("influence: every domain's combined influence is <= 0 (no domain's gradient lowers the "
                          "target losses at the chosen checkpoints); there is no AutoMixer mixture: keep uniform or "
                          "natural, or score at earlier checkpoints")
    return rho / rho.sum(), chosen, joint


def _val_losses(model, data, tasks_idx: list[int], batch_size: int) -> np.ndarray:
    """Mean token loss of each task over its validation set (the val loaders' blocks)."""
    import torch

    from mixtrain.model.gpt import per_token_loss

    out = []
    with torch.no_grad():
        for v in tasks_idx:
            blocks = list(range(data.val_blocks[v]))
            total, count = 0.0, 0
            for start in range(0, len(blocks), batch_size):
                part = blocks[start:start + batch_size]
                tokens = torch.from_numpy(data.read("val", [v] * len(part), part).astype(np.int64))
                loss = per_token_loss(model(tokens[:, :-1]), tokens[:, 1:])
                total, count = total + float(loss.sum()), count + loss.numel()
            out.append(total / count)
    return np.array(out)


def measure_run(run_dir: str | os.PathLike, *, samples_per_domain: int = 16, target_samples: int = 16,
                sketch_dim: int = 16384, max_checkpoints: int | None = None) -> dict[str, Any]:
    """Score every checkpoint of RUN (see the module doc) and combine; returns the report written to JSON."""
    import torch
    import yaml
    from tqdm import tqdm

    from mixtrain.mixing.gradient_probe import ProbeSpec
    from mixtrain.model.config import GPTConfig
    from mixtrain.model.gpt import GPT
    from mixtrain.model.init_weights import read_initial_weights
    from mixtrain.train.datamodule import read_layout
    from mixtrain.train.grad_probe import GradientProbe, ProbeData
    from mixtrain.train.target import target_importance

    config_path = Path(run_dir) / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(f"{config_path} does not exist: pass a mixtrain run directory (it holds config.yaml)")
    cfg = yaml.safe_load(config_path.read_text())
    layout = read_layout(cfg["data_dir"], list(cfg.get("eval_only_domains") or []))
    importance = target_importance((cfg.get("target") or {}).get("importance"), layout.domains, layout.val_domains)
    seq_len, batch_size = int(cfg["seq_len"]), int(cfg["batch_size"])
    data = ProbeData(layout.data_dir, layout.domains, layout.val_domains, seq_len + 1,
                     int(cfg["val_blocks_per_domain"]), int(cfg["seed"]))
    spec = ProbeSpec(samples_per_domain=samples_per_domain, target_samples=target_samples, sketch_dim=sketch_dim,
                     tasks="each")
    probe = GradientProbe(spec, data, layout.domains, layout.val_domains, importance, batch_size=batch_size)
    tasks_idx = [layout.val_domains.index(t) for t in probe.tasks]
    checkpoints = run_checkpoints(run_dir)
    if max_checkpoints:  # evenly spaced, always including the last
        keep = np.unique(np.linspace(0, len(checkpoints) - 1, int(max_checkpoints)).round().astype(int))
        checkpoints = [checkpoints[i] for i in keep]
    task_inner, val_loss, per_ckpt = {}, {}, []
    for step, path in tqdm(checkpoints, desc="influence: checkpoints", unit="ckpt"):
        state, model_cfg, _ = read_initial_weights(path)
        model = GPT(GPTConfig(**model_cfg))
        model.load_state_dict(state, strict=False)
        model.eval()
        val_loss[step] = _val_losses(model, data, tasks_idx, batch_size)
        result = probe.measure(model, step)
        task_inner[step] = result.task_inner
        per_ckpt.append({"step": step, "checkpoint": str(path), "val_loss": dict(zip(probe.tasks, val_loss[step].tolist())),
                         "influence": {t: dict(zip(layout.domains, result.task_inner[:, i].tolist()))
                                       for i, t in enumerate(probe.tasks)}, "seconds": result.seconds})
        del model, state
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    weights, chosen, joint = combine(task_inner, val_loss, probe.importance)
    return {"run": str(run_dir), "domains": layout.domains, "tasks": probe.tasks,
            "importance": dict(zip(probe.tasks, probe.importance.tolist())),
            "chosen_checkpoint": dict(zip(probe.tasks, chosen)), "joint_influence": dict(zip(layout.domains, joint.tolist())),
            "weights": dict(zip(layout.domains, weights.tolist())), "checkpoints": per_ckpt,
            "settings": {"samples_per_domain": samples_per_domain, "target_samples": target_samples,
                         "sketch_dim": sketch_dim, "hessian": "identity"}}


def plot_influence(report: dict[str, Any], path: Path) -> None:
    """influence.png: each domain's influence on each task at the task's chosen checkpoint (rows: domains),
    and the weights, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains, tasks = report["domains"], report["tasks"]
    by_step = {c["step"]: c for c in report["checkpoints"]}
    M = np.array([[by_step[report["chosen_checkpoint"][t]]["influence"][t][d] for t in tasks] for d in domains])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(4 + 0.6 * len(tasks), 1.5 + 0.3 * len(domains)),
                                 gridspec_kw={"width_ratios": [max(len(tasks), 1), 2]})
    lim = float(np.abs(M).max()) or 1.0
    im = ax.imshow(M, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(tasks)), [f"{t}\n@{report['chosen_checkpoint'][t]}" for t in tasks], fontsize=7)
    ax.set_yticks(range(len(domains)), domains, fontsize=7)
    ax.set_title("<g_task, g_domain> (blue: helps)", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05)
    bx.barh(range(len(domains)), [report["weights"][d] for d in domains])
    bx.set_yticks(range(len(domains)), [])
    bx.invert_yaxis()
    bx.set_title("weights", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(report: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """OUT/weights.yaml (for mixing=manual, with the choices as comments), OUT/influence.json and influence.png."""
    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "influence.json", report)
    plot_influence(report, out / "influence.png")
    lines = [f"# AutoMixer (offline influence) from {report['run']}: tasks {report['tasks']}",
             f"# checkpoint chosen per task (lowest validation loss): {report['chosen_checkpoint']}",
             "# use: python -m mixtrain.train mixing=manual mixing.weights_file=" + str(out / "weights.yaml")]
    text = "\n".join(lines) + "\n" + yaml.safe_dump({"weights": report["weights"]}, sort_keys=False)
    atomic_write(out / "weights.yaml", text)
    return out / "weights.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixtrain influence", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a mixtrain run directory with checkpoints/ and config.yaml")
    parser.add_argument("--out", default=None, help="output folder (default RUN/influence)")
    parser.add_argument("--samples-per-domain", type=int, default=16, help="probe blocks per training domain")
    parser.add_argument("--target-samples", type=int, default=16, help="probe blocks per target task")
    parser.add_argument("--sketch-dim", type=int, default=16384, help="CountSketch buckets (error ~ sqrt(2/d))")
    parser.add_argument("--max-checkpoints", type=int, default=None, help="score at most this many (evenly spaced)")
    args = parser.parse_args(argv)
    try:
        report = measure_run(args.run, samples_per_domain=args.samples_per_domain, target_samples=args.target_samples,
                             sketch_dim=args.sketch_dim, max_checkpoints=args.max_checkpoints)
        path = write_outputs(report, args.out or os.path.join(args.run, "influence"))
    except (ConfigError, RunDirError) as e:
        raise SystemExit(f"mixtrain influence: {e}") from None
    print(json.dumps({"weights": report["weights"], "chosen_checkpoint": report["chosen_checkpoint"]}, indent=1))
    print(f"[mixtrain] wrote {path}")


if __name__ == "__main__":
    main()
