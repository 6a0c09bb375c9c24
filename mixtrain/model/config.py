"""`GPTConfig`: the model section (conf/model/<size>.yaml) as a plain dataclass, free of torch.

Place in the flow: conf/model/<size>.yaml -> TrainConfig.model (train/config.py) -> train/run.py fills
`vocab_size` from the prepared data and `seq_len` from the run -> gpt.GPT(config). Kept apart from
gpt.py so that composing and checking a config (every command's entry point, `--cfg job`, a sweep's
parent process) does not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class GPTConfig:
    vocab_size: int | None = None  # from the prepared data's manifest (train/run.py fills it before the model is built)
    seq_len: int = 1024  # longest sequence (rotary table size)
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None  # grouped-query attention; None = n_head
    d_model: int = 768
    mlp_hidden: int | None = None  # SwiGLU hidden width; None = 8/3 d rounded up to 64
    dropout: float = 0.0
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    init_std: float = 0.02
    activation_checkpointing: bool = False

    def __post_init__(self):
        if self.vocab_size is not None and self.vocab_size <= 0:
            raise ValueError(f"model.vocab_size={self.vocab_size} must be positive (it comes from the prepared data's manifest)")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise ValueError(
                f"d_model ({self.d_model}) must divide by n_head ({self.n_head}) and n_head by n_kv_head ({self.n_kv_head})"
            )
        if self.mlp_hidden is None:
            self.mlp_hidden = 64 * math.ceil(8 * self.d_model / 3 / 64)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head
