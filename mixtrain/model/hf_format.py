"""The pure mapping between mixtrain's GPT and Hugging Face's Llama: state dicts and config.

Place in the flow: module.py checkpoint (`model.*` weights + `hyper_parameters.model`)
-> **hf_format.py** -> export.py (config.json + model.safetensors); and back:
HF Llama folder -> **hf_format.py** -> init_weights.py (a new run's initial weights).

mixtrain's GPT is a Llama: RMSNorm, SwiGLU, rotary on half-split pairs (HF's rotate_half),
no biases. Two layouts differ and are split / fused here:
    blocks.i.attn.qkv      [(H + 2 Hkv) hd, d]  rows [q | k | v]  <-> q_proj, k_proj, v_proj
    blocks.i.mlp.gate_up   [2 h, d]             rows [gate | up]   <-> gate_proj, up_proj
Tied embeddings: `head.weight` is `embed.weight`; HF ties `lm_head` to `embed_tokens` when
`tie_word_embeddings` is true, so the export leaves `lm_head.weight` out.
Only torch (tensor slicing); no Lightning, no transformers import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

# GPTConfig field -> LlamaConfig field, for the fields whose value carries over unchanged
_SAME = {
    "vocab_size": "vocab_size", "d_model": "hidden_size", "mlp_hidden": "intermediate_size",
    "n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_kv_head": "num_key_value_heads",
    "norm_eps": "rms_norm_eps", "seq_len": "max_position_embeddings", "tie_embeddings": "tie_word_embeddings",
    "init_std": "initializer_range",
}


def _resolved(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """GPTConfig kwargs with the derived defaults filled in (n_kv_head, mlp_hidden)."""
    from mixtrain.model.config import GPTConfig

    known = GPTConfig.__dataclass_fields__
    c = GPTConfig(**{k: v for k, v in dict(cfg).items() if k in known})
    return {k: getattr(c, k) for k in known}


def hf_config(cfg: Mapping[str, Any], bos_id: int, eos_id: int, torch_dtype: str = "float32",
              max_position_embeddings: int | None = None) -> dict[str, Any]:
    """A LlamaConfig (config.json) equivalent to the GPTConfig kwargs `cfg`.

    max_position_embeddings: the model's context (`seq_len`, the rotary table it was built
    with) unless given; HF's RoPE computes angles for any position, so it is a stated limit.
    """
    c = _resolved(cfg)
    out: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        **{hf: c[ours] for ours, hf in _SAME.items()},
        "max_position_embeddings": int(c["seq_len"] if max_position_embeddings is None else max_position_embeddings),
        "head_dim": c["d_model"] // c["n_head"],
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
        # transformers < 5 reads rope_theta; >= 5 reads rope_parameters (and still accepts rope_theta)
        "rope_theta": float(c["rope_theta"]),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(c["rope_theta"])},
        "rope_scaling": None,
        "bos_token_id": int(bos_id), "eos_token_id": int(eos_id), "pad_token_id": None,
        "torch_dtype": torch_dtype, "dtype": torch_dtype, "use_cache": True, "pretraining_tp": 1,
    }
    return out


def gpt_config_from_hf(config: Mapping[str, Any]) -> dict[str, Any]:
    """GPTConfig kwargs from a Llama config.json; refuses what mixtrain's GPT cannot express."""
    arch = config.get("model_type")
    if arch not in ("llama", None):
        raise ValueError(f"config.json has model_type={arch!r}; mixtrain imports Llama-architecture models only")
    problems = []
    if config.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act={config['hidden_act']!r} (mixtrain: silu)")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            problems.append(f"{key}=true (mixtrain has no biases)")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        problems.append(f"rope type {rope_type!r} (mixtrain: plain rotary, no scaling)")
    heads, hidden = int(config["num_attention_heads"]), int(config["hidden_size"])
    if config.get("head_dim") not in (None, hidden // heads):
        problems.append(f"head_dim={config['head_dim']} (mixtrain: hidden_size / num_attention_heads = {hidden // heads})")
    if problems:
        raise ValueError("config.json is a Llama that mixtrain's GPT cannot express: " + "; ".join(problems))
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    return {
        "vocab_size": int(config["vocab_size"]), "d_model": hidden, "mlp_hidden": int(config["intermediate_size"]),
        "n_layer": int(config["num_hidden_layers"]), "n_head": heads,
        "n_kv_head": int(config.get("num_key_value_heads") or heads), "norm_eps": float(config.get("rms_norm_eps", 1e-6)),
        "seq_len": int(config.get("max_position_embeddings", 2048)), "rope_theta": float(theta),
        "tie_embeddings": bool(config.get("tie_word_embeddings", False)),
    }


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The GPT's own keys from a MixtureLM state_dict (`model.` and torch.compile's `_orig_mod.` removed)."""
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if key.startswith("_orig_mod."):
            key = key[len("_orig_mod."):]
        out[key] = value
    return out


def to_hf_state_dict(gpt_state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """HF LlamaForCausalLM state dict from a GPT state dict (`embed.weight`, `blocks.0.attn.qkv.weight`, ...)."""
    c = _resolved(cfg)
    hd = c["d_model"] // c["n_head"]
    q_rows, kv_rows = c["n_head"] * hd, c["n_kv_head"] * hd
    out = {"model.embed_tokens.weight": gpt_state["embed.weight"], "model.norm.weight": gpt_state["norm.weight"]}
    for i in range(c["n_layer"]):
        b, h = f"blocks.{i}.", f"model.layers.{i}."
        q, k, v = gpt_state[b + "attn.qkv.weight"].split([q_rows, kv_rows, kv_rows], dim=0)
        gate, up = gpt_state[b + "mlp.gate_up.weight"].chunk(2, dim=0)
        out.update({
            h + "input_layernorm.weight": gpt_state[b + "attn_norm.weight"],
            h + "self_attn.q_proj.weight": q, h + "self_attn.k_proj.weight": k, h + "self_attn.v_proj.weight": v,
            h + "self_attn.o_proj.weight": gpt_state[b + "attn.proj.weight"],
            h + "post_attention_layernorm.weight": gpt_state[b + "mlp_norm.weight"],
            h + "mlp.gate_proj.weight": gate, h + "mlp.up_proj.weight": up,
            h + "mlp.down_proj.weight": gpt_state[b + "mlp.down.weight"],
        })
    if not c["tie_embeddings"]:
        out["lm_head.weight"] = gpt_state["head.weight"]
    # safetensors refuses views that share storage: every tensor gets its own contiguous copy
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def from_hf_state_dict(hf_state: Mapping[str, torch.Tensor],
                       config: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(GPT state dict, GPTConfig kwargs) from an HF Llama state dict and its config.json."""
    cfg = gpt_config_from_hf(config)
    expected = set(to_hf_state_dict_keys(cfg))
    have = {k for k in hf_state if not k.endswith("rotary_emb.inv_freq")}
    if not cfg["tie_embeddings"] and "lm_head.weight" not in have and "model.embed_tokens.weight" in have:
        raise ValueError("config.json has tie_word_embeddings=false but the weights have no lm_head.weight")
    missing, extra = sorted(expected - have), sorted(have - expected - {"lm_head.weight"})
    if missing or extra:
        raise ValueError(f"the HF weights do not match config.json: missing {missing[:5]}, unexpected {extra[:5]}")
    out = {"embed.weight": hf_state["model.embed_tokens.weight"], "norm.weight": hf_state["model.norm.weight"]}
    for i in range(cfg["n_layer"]):
        b, h = f"blocks.{i}.", f"model.layers.{i}."
        out.update({
            b + "attn_norm.weight": hf_state[h + "input_layernorm.weight"],
            b + "attn.qkv.weight": torch.cat([hf_state[h + f"self_attn.{p}_proj.weight"] for p in "qkv"], dim=0),
            b + "attn.proj.weight": hf_state[h + "self_attn.o_proj.weight"],
            b + "mlp_norm.weight": hf_state[h + "post_attention_layernorm.weight"],
            b + "mlp.gate_up.weight": torch.cat([hf_state[h + "mlp.gate_proj.weight"], hf_state[h + "mlp.up_proj.weight"]], dim=0),
            b + "mlp.down.weight": hf_state[h + "mlp.down_proj.weight"],
        })
    out["head.weight"] = out["embed.weight"] if cfg["tie_embeddings"] else hf_state["lm_head.weight"]
    return out, cfg


def to_hf_state_dict_keys(cfg: Mapping[str, Any]) -> list[str]:
    """The keys `to_hf_state_dict` writes for GPTConfig kwargs `cfg` (lm_head only if untied)."""
    c = _resolved(cfg)
    keys = ["model.embed_tokens.weight", "model.norm.weight"]
    for i in range(c["n_layer"]):
        keys += [f"model.layers.{i}.{n}.weight" for n in (
            "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    return keys + ([] if c["tie_embeddings"] else ["lm_head.weight"])


def config_mismatches(ours: Mapping[str, Any], theirs: Mapping[str, Any],
                      fields: tuple[str, ...] = ("vocab_size", "d_model", "mlp_hidden", "n_layer", "n_head",
                                                 "n_kv_head", "tie_embeddings")) -> list[str]:
    """'field: ours vs theirs' for every architecture field that differs (resolved defaults compared)."""
    a, b = _resolved(ours), _resolved(theirs)
    out = []
    for f in fields:
        x, y = a[f], b[f]
        same = math.isclose(x, y) if isinstance(x, float) and isinstance(y, float) else x == y
        if not same:
            out.append(f"{f}: {x!r} vs {y!r}")
    return out
