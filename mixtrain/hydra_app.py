"""Hydra in one place: compose conf/<name>.yaml, bind it to the command's typed config, run the command.

    python -m mixtrain.train ...                    -> run_train()   (conf/train.yaml   -> TrainConfig)
    python -m mixtrain.prepare ...                  -> run_prepare()  (conf/prepare.yaml -> PrepareConfig)
    python -m mixtrain.prepare.entropy_cli ...      -> run_entropy()  (conf/entropy.yaml -> EntropyConfig)

Place in the flow: in front of every Hydra-configured stage. This is the one module of the package
that imports Hydra and OmegaConf, besides train/run.py's use of `hydra.utils.instantiate` for the
Trainer and logger classes that the `trainer`/`logger` groups name. Everything behind it takes
typed dataclass sections (train/config.py, prepare/config.py) and never sees a DictConfig.

* Schemas: each config's dataclass is registered in Hydra's ConfigStore (`train_schema`, ...) and
  listed first in the defaults list of conf/<name>.yaml, so the defaults are written once, in the
  dataclasses, and `--cfg job` prints every key.
* Binding (`bind`): the composed config, resolved, is merged onto the dataclass schema. A key the
  schema lacks fails with its full name, also one added with `+key=value` (which Hydra accepts) or
  written in an experiment or user YAML file; a value of the wrong type names the key and the type.
* Command line (`entry_argv`): Hydra's own writing of RUN/.hydra is turned off in every process
  (train/run.py writes it on rank 0 once the run is accepted). The entry point's overrides go right
  before the user's first override, so Hydra's flags (`--cfg job`, `-m`, `--info`) work in any position.
* Sweeps: under `-m` every job re-executes itself as a single run in a subprocess, so each job gets
  its own process group (Lightning's DDP launcher would otherwise re-run the whole sweep on rank 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from mixtrain.errors import USER_ERROR_EXIT, ConfigError, RunDirError, user_errors  # ConfigError: re-exported
from mixtrain.prepare.config import EntropyConfig, PrepareConfig
from mixtrain.store.fresh_dir import FreshDir
from mixtrain.train import launch
from mixtrain.train.config import TrainConfig

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
SCHEMAS: dict[str, type] = {"train": TrainConfig, "prepare": PrepareConfig, "entropy": EntropyConfig}
T = TypeVar("T")
_SWEEP_DIRS: list[str] = []  # the sweep folder(s) of this process's multirun: the next-steps line names them


def register_schemas() -> None:
    """Every command's dataclass in Hydra's ConfigStore as `<name>_schema` (conf/<name>.yaml lists it first)."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)


register_schemas()  # Hydra's idiom: the schemas exist once this module is imported (tests compose through it too)


def _known_keys(schema: type, path: str) -> list[str]:
    node: Any = OmegaConf.structured(schema)
    for part in [p for p in path.split(".") if p][:-1]:
        node = node.get(part) if isinstance(node, DictConfig) else None
    return sorted(node.keys()) if isinstance(node, DictConfig) else []


def bind(cfg: DictConfig | dict, schema: type[T]) -> T:
    """The composed (or plain) config `cfg` as an instance of `schema`, every key checked."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    container.pop("hydra", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), container)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as e:
        key = e.full_key or str(getattr(e, "key", ""))
        known = _known_keys(schema, key)
        raise ConfigError(
            f"{key} is not a setting{' of ' + key.rpartition('.')[0] if '.' in key else ''}"
            + (f" (its settings: {', '.join(known)})" if known else "")
            + "; fix the spelling, or remove it from the command line (`+" + key + "=...`), the experiment "
            "or the YAML file that sets it") from None
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key} must be given: add {e.full_key}=... to the command") from None
    except ValidationError as e:
        raise ConfigError(f"{e.full_key}={e.value!r}: {str(e).splitlines()[0]}") from None
    except OmegaConfBaseException as e:  # e.g. an interpolation to a key that is not there
        raise ConfigError(str(e).splitlines()[0]) from None
    except ValueError as e:  # a section's own check (__post_init__) names its key and the fix
        raise ConfigError(str(e)) from None


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """conf/<config_name>.yaml with `overrides`, bound to its typed config (tests, benches, scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return bind(hydra_compose(config_name, overrides=list(overrides)), SCHEMAS[config_name])


# ------------------------------------------------------------------------------------------ command line
def entry_argv(argv: list[str]) -> list[str]:
    """The command line for Hydra with `hydra.output_subdir=null` (see launch.HYDRA_SUBDIR_ENV) on every rank,
    and on a rank other than 0 `hydra.run.dir=.` (Hydra creates its run dir in every process).

    Decided before Hydra runs, from the command line alone, so every process of a launch makes the
    same choice whatever its rank; the folder the user asked for is kept in the environment. Ours
    go right before the user's first override: argparse takes the overrides as one run of positional
    arguments, so appending them after a trailing `--cfg job` was an "unrecognized arguments" error.
    """
    user, subdir = [], os.environ.get(launch.HYDRA_SUBDIR_ENV, ".hydra")
    for arg in argv[1:]:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "hydra.output_subdir":
            subdir = "" if value in ("null", "None", "") else value
            continue
        if launch.global_rank() != 0 and key.lstrip("+") == "hydra.run.dir":
            continue  # a rank other than 0 creates nothing in the run dir (train reads out_dir, not Hydra's)
        user.append(arg)
    os.environ[launch.HYDRA_SUBDIR_ENV] = subdir
    ours = ["hydra.output_subdir=null", *(["hydra.run.dir=."] if launch.global_rank() != 0 else [])]
    first = next((i for i, a in enumerate(user) if "=" in a and not a.startswith("-")), len(user))
    return [argv[0], *user[:first], *ours, *user[first:]]


def _main(config_name: str, app: Callable[[DictConfig], None]) -> None:
    """Run `app` as the Hydra app of conf/<config_name>.yaml."""
    sys.argv[:] = entry_argv(sys.argv)
    hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(app)()
    if _SWEEP_DIRS:  # a finished sweep: where its runs are and what to run on them
        from mixtrain.train.next_steps import after_sweep

        print(after_sweep(_SWEEP_DIRS[0]), flush=True)


def _bind_or_exit(cfg: DictConfig, schema: type[T]) -> T:
    """`bind`, with a refused key as one line on stderr and exit status 2 (no traceback: the message
    names the key and the fix). SystemExit passes through Hydra's own error report."""
    try:
        return bind(cfg, schema)
    except ConfigError as e:
        print(f"[mixtrain] {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


# ------------------------------------------------------------------------------------------------ train
def _is_multirun_job() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _single_run_command(module: str) -> list[str]:
    """`python -m module <this job's overrides> out_dir=<job dir>`: one job, one process group."""
    hc = HydraConfig.get()
    overrides = [o for o in hc.overrides.task if not o.startswith("out_dir=")]
    return [sys.executable, "-m", module, *overrides, f"out_dir='{hc.runtime.output_dir}'"]


def _hydra_dir_writer(cfg: DictConfig) -> Callable[[], None] | None:
    """RUN/.hydra/ as Hydra writes it, redacted, for train/run.py to call on rank 0 once the run is
    accepted (the entry point turned Hydra's own writing off: see entry_argv)."""
    from mixtrain.train.summary import write_hydra_dir

    subdir = launch.hydra_subdir()
    if not HydraConfig.initialized() or not subdir:
        return None
    hc = HydraConfig.get()
    hydra_node = OmegaConf.to_container(hc, resolve=False, enum_to_str=True)
    hydra_node["output_subdir"] = subdir
    config, overrides = OmegaConf.to_container(cfg, resolve=False), list(hc.overrides.task)
    out_dir = str(cfg.out_dir)  # Hydra's run dir is the cwd (conf/train.yaml): RUN is out_dir
    return lambda: write_hydra_dir(os.path.join(out_dir, subdir), config, hydra_node, overrides)


def _run_sweep_job() -> None:
    """One job of a sweep, as a single run in its own process (module docstring). A refused job (exit 2:
    its one line is printed) stops the sweep without a traceback, and its job folder goes if empty."""
    from mixtrain.train.summary import redact_hydra_dir

    hc = HydraConfig.get()
    if launch.is_rank_zero():
        redact_hydra_dir(str(hc.sweep.dir))  # multirun.yaml holds the sweep's overrides
        _SWEEP_DIRS.append(str(hc.sweep.dir))
    command = _single_run_command("mixtrain.train")
    print(f"[mixtrain] sweep job: {' '.join(command[1:])}", flush=True)
    returncode = subprocess.run(command).returncode
    if returncode == 0:
        return
    job_dir = hc.runtime.output_dir  # Hydra created it before the job ran
    if os.path.isdir(job_dir) and not os.listdir(job_dir):
        os.rmdir(job_dir)
    sweep_dir = str(hc.sweep.dir)  # holding only Hydra's multirun.yaml, it records no run: it goes too
    if os.path.isdir(sweep_dir) and os.listdir(sweep_dir) == ["multirun.yaml"]:
        os.remove(os.path.join(sweep_dir, "multirun.yaml"))
        os.rmdir(sweep_dir)
    if returncode == USER_ERROR_EXIT:
        raise SystemExit(USER_ERROR_EXIT)
    raise subprocess.CalledProcessError(returncode, command)


def _with_wandb_hint(start: Callable[[], T]) -> T:
    """`start()`, with wandb's own errors (no network under WANDB_MODE=online) as one line and the fix."""
    try:
        return start()
    except Exception as e:
        if not type(e).__module__.startswith("wandb"):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ConfigError(f"logger=wandb could not start ({type(e).__name__}: {first}); without network use "
                          f"WANDB_MODE=offline (the default when WANDB_MODE is unset) or logger=csv") from e


def _train_app(cfg: DictConfig) -> None:
    from mixtrain.train.run import EntryContext, train

    if _is_multirun_job():
        _run_sweep_job()
        return
    config = _bind_or_exit(cfg, TrainConfig)
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    fresh = FreshDir(config.out_dir)  # a refused or failed start removes the out_dir it created
    with user_errors("mixtrain train", paths={"out_dir": config.out_dir, "data_dir": config.data_dir},
                     on_error=lambda e: launch.is_rank_zero() and not isinstance(e, RunDirError) and fresh.undo()):
        summary = _with_wandb_hint(lambda: train(config, entry=EntryContext(
            overrides=overrides, write_hydra_dir=_hydra_dir_writer(cfg))))
    if summary.get("stopped_by"):  # preempted: never exit 0 as if finished (128+signal, or requeued)
        sys.exit(launch.exit_after_signal(summary["stopped_by"]["signal"]))


def run_train() -> None:
    """`python -m mixtrain.train ...` (mixtrain/train/__main__.py)."""
    _main("train", _train_app)


# ------------------------------------------------------------------------------------- prepare, entropy
def _prepare_app(cfg: DictConfig) -> None:
    from mixtrain.prepare.tasks import prepare  # one machine, or task i of n (SLURM array, srun, torchrun)

    config = _bind_or_exit(cfg, PrepareConfig)
    with user_errors("mixtrain prepare", paths={"data_dir": config.data_dir}):
        manifest = prepare(config)
    print(f"[prepare] {config.data_dir}: {len(manifest['domains'])} domains {manifest['domains']}, "
          f"vocab {manifest['vocab_size']}, block_size {manifest['block_size']}", flush=True)


def run_prepare() -> None:
    """`python -m mixtrain.prepare ...` (mixtrain/prepare/__main__.py)."""
    _main("prepare", _prepare_app)


def _entropy_app(cfg: DictConfig) -> None:
    from mixtrain.prepare.domain_entropy import run_entropy

    config = _bind_or_exit(cfg, EntropyConfig)
    with user_errors("mixtrain entropy", paths={"data_dir": config.data_dir}):
        run_entropy(config)


def run_entropy() -> None:
    """`python -m mixtrain.prepare.entropy_cli ...` (`mixtrain entropy ...`)."""
    _main("entropy", _entropy_app)
