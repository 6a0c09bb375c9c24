"""Process-level helpers: ranks (the one rank check, `is_rank_zero`), world size, waiting for rank 0,
cluster plugins and the exit status after a signal.

Place in the flow: used by the entry point (mixtrain/hydra_app.py) and train/run.py before anything
is built, and by every callback that must act on one rank only. No Hydra here: hydra_app.py owns it.
"""

from __future__ import annotations

import os
import time

# Hydra writes <run dir>/.hydra/ in every process before the app runs; under torchrun/srun every
# process is a Hydra app in the same out_dir, so the entry point turns that off everywhere and
# train/run.py writes .hydra/ itself, on global rank 0 only, once the run is validated (a refused run
# writes nothing). HYDRA_SUBDIR_ENV carries the folder the user asked for (default .hydra).
HYDRA_SUBDIR_ENV = "MIXTRAIN_HYDRA_SUBDIR"
RANK0_WAIT_ENV = "MIXTRAIN_RANK0_WAIT_S"  # how long other ranks wait for rank 0's files


def hydra_subdir() -> str | None:
    """The run's .hydra folder name to write (None: the user turned it off)."""
    return os.environ.get(HYDRA_SUBDIR_ENV, ".hydra") or None


def wait_for(path: str, what: str, timeout_s: float | None = None, ready=os.path.exists) -> None:
    """On a rank other than 0: wait until rank 0 has written `path` (`ready(path)` true), or raise
    after `timeout_s` (env MIXTRAIN_RANK0_WAIT_S, default 900 s) naming the file and what to check,
    instead of hanging at the rendezvous until the job's time runs out."""
    timeout_s = float(os.environ.get(RANK0_WAIT_ENV, 900)) if timeout_s is None else timeout_s
    deadline, delay = time.monotonic() + timeout_s, 0.05
    while not ready(path):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"rank {global_rank()}: waited {timeout_s:.0f} s for rank 0 to write {path} ({what}); rank 0 "
                f"failed or is slow: read its log (rank 0's error is the cause), or raise {RANK0_WAIT_ENV}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def launch_world_size() -> int | None:
    """The world size the launcher announced (torchrun WORLD_SIZE, SLURM_NTASKS), if any."""
    for key in ("WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if key in os.environ:
            return int(os.environ[key])
    return None


def global_rank() -> int:
    """This process's rank from the launcher's environment (before any process group exists):
    torchrun's RANK, srun's SLURM_PROCID (what Lightning's SLURMEnvironment reads), MPI's."""
    for key in ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    # Lightning's own launcher sets LOCAL_RANK (and NODE_RANK) in the processes it starts
    local, node = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("NODE_RANK", "0"))
    return local if node == 0 else node * 1_000_000 + local  # any non-zero value means "not rank 0"


def planned_world_size(devices, num_nodes: int) -> int | None:
    """World size from Trainer arguments when it is knowable up front (an int or a list of devices)."""
    if isinstance(devices, int) and devices > 0:
        return devices * int(num_nodes)
    if isinstance(devices, (list, tuple)):
        return len(devices) * int(num_nodes)
    if isinstance(devices, str) and devices.isdigit():
        return int(devices) * int(num_nodes)
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    if "SLURM_NTASKS" in os.environ:
        return int(os.environ["SLURM_NTASKS"])
    return None


def gradient_accumulation(global_batch_tokens: int | None, batch_size: int, seq_len: int, world_size: int | None) -> int:
    """Micro-batches per optimizer step so that one step sees `global_batch_tokens` tokens."""
    if not global_batch_tokens:
        return 1
    if world_size is None:
        raise ValueError(
            "global_batch_tokens needs a known world size: give trainer.devices as a number (and trainer.num_nodes)"
        )
    per_micro = batch_size * seq_len * world_size
    if global_batch_tokens % per_micro:
        raise ValueError(
            f"global_batch_tokens={global_batch_tokens} is not a multiple of batch_size*seq_len*world_size="
            f"{batch_size}*{seq_len}*{world_size}={per_micro}; pick a multiple (e.g. {per_micro * max(1, global_batch_tokens // per_micro)})"
        )
    return global_batch_tokens // per_micro


def is_rank_zero(trainer=None) -> bool:
    """The one rank check: the Trainer's global rank once there is a Trainer, else the launcher's
    environment (`global_rank`), so code that runs before or outside `fit` asks the same question."""
    if trainer is not None:
        return bool(trainer.is_global_zero)
    return global_rank() == 0


def cluster_plugins() -> list:
    """Trainer plugins for the cluster this process runs on. Under SLURM: Lightning's SLURM
    environment without its own requeue handler (it saved hpc_ckpt_N.ckpt from inside a signal
    handler, mid-step); checkpoints.Preemption stops at the next step boundary instead."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def exit_after_signal(signal_name: str) -> int:
    """Exit status of a run stopped by `signal_name` (checkpoint written): 128 + the signal, so a
    preempted job never looks finished. On SIGUSR1 under SLURM (slurm.sbatch asks for it before the
    time limit) rank 0 first requeues the job (`scontrol requeue`); resume=auto continues it."""
    import signal
    import subprocess

    signum = int(signal.Signals[signal_name])
    job = os.environ.get("SLURM_JOB_ID")
    if signum == signal.SIGUSR1 and job and is_rank_zero():
        if os.environ.get("SLURM_ARRAY_JOB_ID"):
            job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        try:
            ok = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True).returncode == 0
        except FileNotFoundError:
            ok = False
        print(f"[mixtrain] SLURM job {job}: " + ("requeued; it continues with resume=auto" if ok else
              "`scontrol requeue` failed; resubmit it (resume=auto continues from the checkpoint)"), flush=True)
    return 128 + signum


def fill_data_parallel_size(trainer_kwargs: dict, world_size: int | None) -> None:
    """FSDP2 (ModelParallelStrategy): `data_parallel_size: auto` means every process shards the model
    (world size / tensor_parallel_size); Lightning's own `auto` is num_nodes, which fails on one node
    with several devices ("... should equal the world size")."""
    strategy = trainer_kwargs.get("strategy")
    if not isinstance(strategy, dict) or not str(strategy.get("_target_", "")).endswith("ModelParallelStrategy"):
        return
    if strategy.get("data_parallel_size", "auto") == "auto" and world_size:
        tensor = strategy.get("tensor_parallel_size", 1)
        strategy["data_parallel_size"] = world_size // (1 if tensor == "auto" else int(tensor))
