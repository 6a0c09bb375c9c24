"""Every option of every Hydra group composes, and what it configures instantiates (mixing: through
the registry in mixtrain/mixing/strategy_registry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str, name: str = "train"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def test_every_group_has_options():
    for group in ("data", "tokenizer", "model", "mixing", "trainer", "logger", "experiment"):
        assert _options(group), group


@pytest.mark.parametrize("option", _options("model"))
def test_model_options(option):
    from mixtrain.model.gpt import GPT, GPTConfig

    cfg = _compose(f"model={option}")
    values = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    config = GPTConfig(**{**values, "vocab_size": 256})
    if option == "tiny":
        assert sum(p.numel() for p in GPT(config).parameters()) > 0


@pytest.mark.parametrize("option", _options("mixing"))
def test_mixing_options(option, tmp_path):
    from mixtrain.mixing import STRATEGIES, MixingStrategy, build_mixing

    overrides = [f"mixing={option}"]
    if option == "law":
        overrides.append(f"mixing.law_file={tmp_path / 'law.json'}")
    if option == "manual":
        overrides.append("mixing.weights={a: 1.0}")
    if option == "doremi":
        overrides.append(f"mixing.reference_run={tmp_path}")
    cfg = _compose(*overrides)
    config = OmegaConf.to_container(cfg.mixing, resolve=True)
    assert config["strategy"] == option and "_target_" not in config  # the registry builds it, by key
    mixing = build_mixing(config)
    assert isinstance(mixing.strategy, MixingStrategy) and type(mixing.strategy) is STRATEGIES[option]
    assert mixing.name == config["name"] and "name" not in mixing.config
    assert mixing.refit == (config.get("refit") or {})


def test_mixing_registry_matches_the_config_group():
    from mixtrain.mixing import STRATEGIES

    assert sorted(STRATEGIES) == _options("mixing")
    assert all(cls.name == key for key, cls in STRATEGIES.items())


def test_mixing_name_is_a_label_the_strategy_key_picks_the_class():
    from mixtrain.mixing import build_mixing
    from mixtrain.mixing.fitted_law import Law

    config = OmegaConf.to_container(_compose("mixing=law", "mixing.name=law-bimix", "mixing.law_file=l.json").mixing,
                                    resolve=True)
    mixing = build_mixing(config)
    assert mixing.name == "law-bimix" and isinstance(mixing.strategy, Law)


def test_build_mixing_errors_name_the_fix():
    from mixtrain.mixing import build_mixing

    with pytest.raises(ValueError, match=r"mixing.strategy='nope' is not a mixing strategy; use one of \[.*'uniform'"):
        build_mixing({"strategy": "nope", "name": "nope"})
    with pytest.raises(ValueError, match=r"mixing=uniform: .*unexpected keyword argument 'tmperature'"):
        build_mixing({"strategy": "uniform", "name": "uniform", "tmperature": 2.0})
    with pytest.raises(ValueError, match=r"mixing._target_=no.such.Class: cannot import it"):
        build_mixing({"name": "x", "_target_": "no.such.Class"})


@pytest.mark.parametrize("option", _options("trainer"))
def test_trainer_options(option, tmp_path):
    import lightning.pytorch as pl

    cfg = _compose(f"trainer={option}", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true")
    # what train/run.py's build_trainer does: nested _target_ (FSDP2's strategy) built, the rest Trainer arguments
    trainer = pl.Trainer(**instantiate(OmegaConf.to_container(cfg.trainer, resolve=True), _convert_="all"),
                         default_root_dir=str(tmp_path), logger=False)
    assert isinstance(trainer, pl.Trainer)


@pytest.mark.parametrize("option", _options("logger"))
def test_logger_options(option, tmp_path):
    cfg = _compose(f"logger={option}", f"out_dir={tmp_path}")
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        logger = instantiate(logger_cfg)
        assert logger is not None and name


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), node


@pytest.mark.parametrize("option", _options("experiment"))
def test_experiment_settings_reach_the_composed_config(option):
    """An experiment's own values win over train.yaml's (`_self_` before `optional experiment`),
    and the groups it overrides are the ones composed."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={option}"], return_hydra_config=True)
    assert cfg.trainer.max_steps > 0 and cfg.seq_len > 0
    settings = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{option}.yaml"), resolve=False)
    defaults = settings.pop("defaults", [])
    composed = dict(_leaves(OmegaConf.to_container(cfg, resolve=False)))  # interpolations as written
    for key, value in _leaves(settings):
        assert composed[key] == value, f"experiment={option}: {key}"
    for entry in defaults:
        for group, choice in entry.items():
            assert cfg.hydra.runtime.choices[group.split(" ")[-1].lstrip("/")] == choice, f"experiment={option}: {group}"


@pytest.mark.parametrize("option", _options("data"))
def test_data_options_compose_for_prepare(option):
    cfg = _compose(f"data={option}", "data_dir=/tmp/x", name="prepare")
    assert "data" in cfg and cfg.data_dir == "/tmp/x"


def test_tokenizer_option():
    cfg = _compose("tokenizer=spm")
    assert cfg.tokenizer.vocab_size > 0


def test_slurm_launcher_config_is_valid_yaml():
    launcher = OmegaConf.load(CONF / "hydra" / "launcher" / "slurm.yaml")
    assert launcher.tasks_per_node == launcher.gpus_per_node
