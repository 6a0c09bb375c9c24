"""The `run` embedder: a mixtrain model's own hidden states, mean-pooled, as Chameleon embeds domains.

Place in the flow: a finished run (RUN/, a checkpoint) or its HF export -> **run_embedder.py**
(through model/generate.py's `load_model`: weights + the run's tokenizer) -> embed/pipeline.py -> E.
A document's vector is the mean over its first `max_tokens` tokens (BOS ... EOS, at most the
model's seq_len) of the hidden state after block `layer`; the default is Chameleon's
`hidden_states[len // 2]` (index 0 = the token embeddings, so block (n_layer + 1) // 2).
Documents are right-padded in a batch: attention is causal, so padding changes no earlier state,
and the padded positions are left out of the mean. Needs torch (the only embedder that does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import ConfigError


class RunEmbedder:
    name = "run"

    def __init__(self, run: str, max_tokens: int = 512, layer: int | None = None, batch_size: int = 16):
        if not run or not Path(run).exists():
            raise ConfigError(f"--embedder run: {run!r} does not exist; give --run a finished mixtrain run "
                              "directory, a checkpoint, or its HF export (mixtrain export)")
        self.run, self.max_tokens, self.batch_size = str(run), int(max_tokens), int(batch_size)
        self.layer = layer
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        return {"run": self.run, "max_tokens": self.max_tokens, "batch_size": self.batch_size,
                "layer": self.layer, "_model": None}

    def _load(self):
        if self._model is None:
            from mixtrain.model.generate import load_model

            self._model, self._tokenizer = load_model(self.run)
            n_layer = self._model.cfg.n_layer
            self.layer = (n_layer + 1) // 2 if self.layer is None else int(self.layer)
            if not 0 <= self.layer <= n_layer:
                raise ConfigError(f"--layer {self.layer}: the model of {self.run} has {n_layer} blocks (0..{n_layer})")
        return self._model

    def fit(self, texts: Sequence[str]) -> "RunEmbedder":
        self._load()
        return self  # the model is trained already; nothing is fitted here

    def _hidden(self, gpt, ids):
        import torch

        length = ids.shape[1]
        x = gpt.embed(ids)
        cos, sin = gpt.rope_cos[:length], gpt.rope_sin[:length]
        for block in gpt.blocks[: self.layer]:
            x = block(x, cos, sin)
        return x

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        gpt = self._load()
        limit = min(self.max_tokens, gpt.cfg.seq_len)
        docs = [d[:limit] for d in self._tokenizer.encode_documents(list(texts))]
        out = []
        with torch.no_grad():
            for i in range(0, len(docs), self.batch_size):
                batch = docs[i:i + self.batch_size]
                width = max(len(d) for d in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width, 1))
                for row, d in enumerate(batch):
                    ids[row, :len(d)] = torch.as_tensor(d, dtype=torch.long)
                    mask[row, :len(d)] = 1.0
                hidden = self._hidden(gpt, ids).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)

    def window_means(self, windows: np.ndarray) -> np.ndarray:
        """(n, d) token-means of the hidden state over full token windows (n, length), unnormalised as in
        Chameleon's code (the domain vector is their mean); used by train/chameleon_proxy.py."""
        import torch

        gpt = self._load()
        out = []
        with torch.no_grad():
            for i in range(0, len(windows), self.batch_size):
                ids = torch.as_tensor(np.asarray(windows[i:i + self.batch_size]), dtype=torch.long)
                out.append(self._hidden(gpt, ids).float().mean(dim=1).numpy())
        return np.concatenate(out).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        self._load()
        return {"embedder": self.name, "run": self.run, "layer": self.layer, "max_tokens": self.max_tokens}
