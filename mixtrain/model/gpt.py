"""A decoder-only GPT in one file: RMSNorm, rotary positions, SwiGLU MLP, SDPA causal attention.

Place in the flow: module.py builds `GPT(GPTConfig(...))` from `conf/model/<size>.yaml`
(vocab_size from the prepared data, seq_len from the run). Attention goes through
`torch.nn.functional.scaled_dot_product_attention(is_causal=True)`, so CUDA + bf16 uses the
flash kernel. Blocks are a ModuleList so FSDP2 can shard them one by one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mixtrain.model.config import GPTConfig  # noqa: F401  (the model section; GPT(GPTConfig) builds it)


def rotary_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # [hd/2]
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # [T, hd/2]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, T, hd]; rotate pairs (x1, x2) of the two halves of each head
    x1, x2 = x.float().chunk(2, dim=-1)  # [B, H, T, hd/2] each
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        c = self.cfg
        q, k, v = self.qkv(x).split([c.n_head * c.head_dim, c.n_kv_head * c.head_dim, c.n_kv_head * c.head_dim], -1)
        q = q.view(B, T, c.n_head, c.head_dim).transpose(1, 2)  # [B, H, T, hd]
        k = k.view(B, T, c.n_kv_head, c.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        v = v.view(B, T, c.n_kv_head, c.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=c.dropout if self.training else 0.0,
            enable_gqa=c.n_kv_head != c.n_head,
        )  # [B, H, T, hd]
        return self.proj(y.transpose(1, 2).reshape(B, T, c.d_model))  # [B, T, d]


class SwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # [B, T, h] each
        return self.down(F.silu(gate) * up)  # [B, T, d]


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), cos, sin))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError("model.vocab_size must be set before the model is built (it comes from the prepared "
                             "data's manifest: train/run.py fills it)")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        # GPT-2: residual projections scaled by 1/sqrt(2 n_layer) so the residual stream stays O(1)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=cfg.init_std / math.sqrt(2 * cfg.n_layer))

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.cfg.init_std)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        B, T = input_ids.shape
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence of {T} tokens exceeds the model's seq_len {self.cfg.seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # [T, hd/2]
        x = self.embed(input_ids)  # [B, T, d]
        for block in self.blocks:
            if self.cfg.activation_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, use_reentrant=False)
            else:
                x = block(x, cos, sin)
        return self.head(self.norm(x))  # [B, T, V]

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward): 6 N + 12 L d T (attention scores)."""
        T = seq_len or self.cfg.seq_len
        n = self.num_params(non_embedding=False) - (0 if self.cfg.tie_embeddings else self.embed.weight.numel())
        return 6.0 * n + 12.0 * self.cfg.n_layer * self.cfg.d_model * T


def per_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per position in float32: logits [B, T, V], targets [B, T] -> [B, T]."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.float().reshape(B * T, V), targets.reshape(B * T), reduction="none").view(B, T)


# Dense bf16 tensor-core peaks (FLOP/s) by device name substring, for MFU.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is ~756e12 (matched first below)
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "L4": 121e12,
}


def peak_flops_per_s(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a GPU named like torch.cuda.get_device_name(); None if unknown/CPU."""
    name = device_name.upper()
    if "H100" in name and "PCIE" in name:
        return 756e12
    for key, flops in PEAK_BF16_FLOPS.items():
        if key in name:
            return flops
    return None
