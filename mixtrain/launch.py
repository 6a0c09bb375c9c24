"""Process-level helpers: sweeps, ranks (the one rank check, `is_rank_zero`), world size.

Place in the flow: used by train.py before anything is built, and by every callback and
strategy that must act on one rank only. Hydra is imported lazily and
only inside functions that entry points call while a Hydra app is running.
"""

from __future__ import annotations

import os
import sys


def is_multirun_job() -> bool:
    """True inside a job of `-m` sweep that has not yet been re-executed as a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def single_run_command(module: str) -> list[str]:
    """`python -m module <this job's overrides> out_dir=<job dir>`: one job, one process group."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    overrides = [o for o in hc.overrides.task if not o.startswith("out_dir=")]
    job_dir = hc.runtime.output_dir
    return [sys.executable, "-m", module, *overrides, f"out_dir='{job_dir}'"]


def global_rank() -> int:
    """This process's rank from the launcher's environment (before any process group exists)."""
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
