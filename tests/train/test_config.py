"""The typed config (mixtrain/train/config.py, prepare/config.py) built once by mixtrain/hydra_app.py:
every composed option binds; a misspelt key is refused with its name wherever it comes from (the
command line with `+`, an experiment file, a user's YAML file); defaults are written only in the
dataclasses; Hydra's flags work in any position of the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixtrain.hydra_app import ConfigError, bind, compose, entry_argv
from mixtrain.prepare.config import EntropyConfig, PrepareConfig
from mixtrain.train.config import OptimConfig, SamplerConfig, TrainConfig

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def test_the_default_train_config_binds_to_typed_sections():
    config = compose("train")
    assert isinstance(config, TrainConfig)
    assert isinstance(config.optim, OptimConfig) and isinstance(config.sampler, SamplerConfig)
    assert config.optim == OptimConfig()  # the defaults are the dataclass's: conf/train.yaml repeats none
    assert config.run_name == "natural-seed0" and config.out_dir == "runs/natural-seed0"  # interpolations resolved
    assert config.model.n_layer == 4 and config.model.vocab_size is None  # model=tiny; vocab from the data later
    assert config.mixing["strategy"] == "natural" and config.trainer["accelerator"] == "cpu"


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_binds(option):
    assert isinstance(compose("train", [f"experiment={option}"]), TrainConfig)


@pytest.mark.parametrize("override, key", [
    ("+optim.lrr=1", "optim.lrr"),
    ("+sampler.num_worker=4", "sampler.num_worker"),
    ("+target.importances={a: 1}", "target.importance"),
    ("+batchsize=8", "batchsize"),
])
def test_a_key_added_with_plus_is_refused_with_its_name(override, key):
    with pytest.raises(ConfigError) as e:
        compose("train", [override])
    message = str(e.value)
    assert message.startswith(override.lstrip("+").split("=")[0] + " is not a setting"), message
    if "." in key:  # the section's real settings are listed: the fix is in the message
        section = key.split(".")[0]
        assert all(f.name in message for f in __import__("dataclasses").fields(type(getattr(TrainConfig(), section))))


def test_a_bad_key_in_a_yaml_mapping_is_refused_with_its_full_name():
    """What an experiment or a user's YAML file contributes reaches bind() as a nested mapping."""
    with pytest.raises(ConfigError, match=r"^sampler\.mode_x is not a setting of sampler"):
        bind({"sampler": {"mode_x": "stratified"}}, TrainConfig)
    with pytest.raises(ConfigError, match=r"^shards\.val_fractoin is not a setting of shards"):
        bind({"data_dir": "d", "shards": {"val_fractoin": 0.1}}, PrepareConfig)
    with pytest.raises(ConfigError, match=r"data_dir must be given"):
        bind({}, EntropyConfig)
    with pytest.raises(ConfigError, match=r"resume_mixing=maybe: use refuse"):
        bind({"resume_mixing": "maybe", "mixing": {"name": "uniform"}}, TrainConfig)
    bound = bind({"sampler": {"mode": "stratified"}, "mixing": {"name": "uniform"}}, TrainConfig)
    assert bound.sampler.mode == "stratified" and bound.run_name == "uniform-seed0"


def _run(*args: str, cwd: Path, extra_conf: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "mixtrain.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_misspelt_key_in_a_user_experiment_file_stops_the_run_with_its_name(tmp_path):
    user = tmp_path / "myconf" / "experiment"
    user.mkdir(parents=True)
    (user / "mine.yaml").write_text("# @package _global_\noptim:\n  lr: 1.0e-3\n  warmup_step: 5\n")
    proc = _run(f"--config-dir={tmp_path / 'myconf'}", "experiment=mine", f"out_dir={tmp_path / 'run'}",
                "data_dir=/nonexistent", cwd=REPO)
    assert proc.returncode != 0
    assert "warmup_step" in proc.stderr and "optim" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_key_added_with_plus_on_the_command_line_stops_with_one_line(tmp_path):
    proc = _run("+optim.lrr=1", f"out_dir={tmp_path / 'run'}", cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("[mixtrain] optim.lrr is not a setting of optim"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [("mixing=ado", "--cfg", "job"), ("--cfg", "job", "mixing=ado")])
def test_hydras_flags_work_in_any_position(args, tmp_path):
    proc = _run(*args, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = yaml.safe_load(proc.stdout)
    assert printed["mixing"]["strategy"] == "ado" and printed["optim"]["lr"] == OptimConfig.lr


def test_entry_argv_puts_its_overrides_next_to_the_users(monkeypatch):
    monkeypatch.setenv("MIXTRAIN_HYDRA_SUBDIR", ".hydra")
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert entry_argv(["t", "a=1", "--cfg", "job"]) == ["t", "hydra.output_subdir=null", "a=1", "--cfg", "job"]
    assert entry_argv(["t", "--cfg", "job"]) == ["t", "--cfg", "job", "hydra.output_subdir=null"]
    assert entry_argv(["t", "-m", "a=1,2"]) == ["t", "-m", "hydra.output_subdir=null", "a=1,2"]
    assert entry_argv(["t", "hydra.output_subdir=meta", "b=2"])[1:] == ["hydra.output_subdir=null", "b=2"]
    assert os.environ["MIXTRAIN_HYDRA_SUBDIR"] == "meta"
    monkeypatch.setenv("RANK", "1")  # another rank: Hydra creates nothing in the run dir
    assert entry_argv(["t", "hydra.run.dir=x", "a=1"])[1:] == ["hydra.output_subdir=null", "hydra.run.dir=.", "a=1"]


@pytest.mark.parametrize("name", ["train", "prepare", "entropy"])
def test_conf_top_files_hold_no_default_values(name):
    """Each default lives in one place, the dataclass: conf/<name>.yaml is its defaults list (+ Hydra's own)."""
    data = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert set(data) <= {"defaults", "hydra"}, set(data) - {"defaults", "hydra"}
    assert data["defaults"][0] == f"{name}_schema"


def test_a_section_is_built_without_hydra():
    """Builders take sections a test or a bench builds in plain Python."""
    config = TrainConfig(optim=OptimConfig(lr=1e-3), sampler=SamplerConfig(mode="stratified"))
    assert config.optim.lr == 1e-3 and config.sampler.mode == "stratified" and config.max_nonfinite_steps == 3
    with pytest.raises(ValueError, match="resume_global_batch=never"):
        TrainConfig(resume_global_batch="never")
    prep = config.prepare_config()
    assert prep.data_dir == config.data_dir and prep.shards.block_size >= config.seq_len + 1


def test_composing_a_config_imports_no_torch():
    """Every command's entry point composes and checks its config before torch is needed: `--cfg job`,
    a refused key and a sweep's parent process stay fast (the model section is model/config.py)."""
    code = ("import sys; from mixtrain.hydra_app import compose; compose('train', ['mixing=ado']); "
            "compose('prepare', ['data_dir=d']); assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
