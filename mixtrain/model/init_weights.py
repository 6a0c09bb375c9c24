"""Initial weights for a new run: an HF Llama folder or a mixtrain checkpoint / run (weights only).

Place in the flow: train/run.py `init_from=PATH` -> train/module.py configure_model builds the GPT ->
**init_weights.py** copies the weights in (before FSDP sharding) -> training starts at step 0.

Accepted `init_from`:
* an HF folder (config.json + model.safetensors, or a sharded model.safetensors.index.json),
  e.g. written by `python -m mixtrain.model.export` or any Llama-architecture model whose shape
  matches `model=`; mapped by hf_format.py;
* a mixtrain `.ckpt` file, or a run directory (its checkpoints/last.ckpt, or the newest
  readable step): only the model weights are taken, never the optimizer, the sampler, the
  mixing state or the step, so the new run may use other domains and another mixture
  (continued pretraining). The vocabulary must be the same (same tokenizer in the new data_dir).
A shape that differs is an error naming the field and both values; `seq_len` may differ
(rotary tables are built for the new run's length).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from mixtrain.model.hf_format import config_mismatches, from_hf_state_dict

# fields that change the function the weights compute without changing any shape
_NUMERIC = ("rope_theta", "norm_eps")


def read_hf_folder(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(HF state dict, config.json) of an HF model folder with safetensors weights."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif index.is_file():
        files = [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    else:
        raise FileNotFoundError(f"{folder} has config.json but no model.safetensors (or model.safetensors.index.json); "
                                "mixtrain reads safetensors weights only (re-save with save_pretrained(safe_serialization=True))")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state, config


def read_initial_weights(init_from: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(GPT state dict, GPTConfig kwargs of the source, description) from any accepted `init_from`."""
    from mixtrain.model.export import checkpoint_model, load_run_checkpoint

    path = Path(init_from)
    if not path.exists():
        raise FileNotFoundError(f"init_from={init_from} does not exist (an HF model folder, a mixtrain .ckpt or a run "
                                "directory)")
    if path.is_dir() and (path / "config.json").is_file():
        hf_state, config = read_hf_folder(path)
        try:
            state, cfg = from_hf_state_dict(hf_state, config)
        except ValueError as e:
            raise ValueError(f"init_from={init_from}: {e}") from None
        return state, cfg, {"init_from": str(path), "kind": "hf"}
    if path.is_dir() and not (path / "checkpoints").is_dir():
        raise ValueError(f"init_from={init_from} is a folder with neither config.json (an HF model) nor checkpoints/ "
                         "(a mixtrain run)")
    ckpt_path, ckpt = load_run_checkpoint(path, None) if path.is_dir() else load_run_checkpoint(None, path)
    state, cfg = checkpoint_model(ckpt, ckpt_path)
    return state, cfg, {"init_from": str(path), "kind": "mixtrain", "checkpoint": str(ckpt_path),
                        "source_step": int(ckpt.get("global_step", -1)),
                        "source_domains": list(ckpt.get("hyper_parameters", {}).get("domains", []))}


def _source_config(init_from: str | os.PathLike) -> dict[str, Any]:
    """GPTConfig kwargs of `init_from` without reading its weights (config.json / mmapped checkpoint)."""
    from mixtrain.model.export import checkpoint_model, load_run_checkpoint
    from mixtrain.model.hf_format import gpt_config_from_hf

    path = Path(init_from)
    if path.is_dir() and (path / "config.json").is_file():
        try:
            return gpt_config_from_hf(json.loads((path / "config.json").read_text()))
        except ValueError as e:
            raise ValueError(f"init_from={init_from}: {e}") from None
    if path.is_file() or (path / "checkpoints").is_dir():  # a mixtrain checkpoint (mmapped: no weights read)
        ckpt_path, ckpt = load_run_checkpoint(None, path) if path.is_file() else load_run_checkpoint(path)
        return checkpoint_model(ckpt, ckpt_path)[1]
    return read_initial_weights(path)[1]  # raises the error that says what init_from must be


def check_initial_weights(gpt_cfg, init_from: str | os.PathLike) -> None:
    """Refuse an `init_from` that does not fit GPTConfig `gpt_cfg` (cheap: no weights read).

    train/run.py calls it before anything is written to the run directory.
    """
    _check_fits({k: getattr(gpt_cfg, k) for k in gpt_cfg.__dataclass_fields__}, _source_config(init_from), init_from)


def _check_fits(ours: dict[str, Any], cfg: dict[str, Any], init_from) -> None:
    if int(cfg["vocab_size"]) != int(ours["vocab_size"]):
        raise ValueError(f"init_from={init_from} has vocab_size {cfg['vocab_size']} but this run's data has "
                         f"{ours['vocab_size']}: prepare the new data_dir with the same tokenizer "
                         "(tokenizer.model_path=... for SentencePiece, tokenizer=hf tokenizer.path=... for HF)")
    problems = config_mismatches(ours, {**ours, **cfg})
    problems += [f"{k}: {ours[k]!r} vs {cfg[k]!r}" for k in _NUMERIC if k in cfg and float(cfg[k]) != float(ours[k])]
    if problems:
        raise ValueError(f"init_from={init_from} does not fit this model (this run vs init_from): "
                         + "; ".join(problems) + ". Choose the model= (or model.* overrides) it was trained with")


def load_initial_weights(gpt: torch.nn.Module, init_from: str | os.PathLike) -> dict[str, Any]:
    """Copy the weights of `init_from` into `gpt` (an unsharded mixtrain GPT); returns what was loaded."""
    state, cfg, info = read_initial_weights(init_from)
    _check_fits({k: getattr(gpt.cfg, k) for k in gpt.cfg.__dataclass_fields__}, cfg, init_from)
    missing, unexpected = gpt.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("rope_")]
    if missing or unexpected:
        raise ValueError(f"init_from={init_from}: weights do not match the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return info
