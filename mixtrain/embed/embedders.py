"""The embedder registry: `EMBEDDERS` (name -> builder) and the local Hugging Face encoder.

Place in the flow: embed/cli.py picks an embedder by name -> **embedders.py** builds it ->
embed/pipeline.py fits (hashing) and runs it. `hashing` (hashing.py) is the default and needs no
model; `hf` is a local sentence-transformers / HF encoder folder, mean-pooled, that never
downloads (extra `hf`: transformers); `run` is a mixtrain run's own model (run_embedder.py:
Chameleon's mean-pooled middle-layer hidden states). Every embedder has fit(texts), transform(texts) -> float32
rows of unit length, describe() -> its settings for the manifest, and pickles small (the `hf`
embedder pickles its folder and settings, not its weights, and reloads from the folder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.embed.hashing import HashingEmbedder, HashingSettings
from mixtrain.errors import ConfigError


class HFEmbedder:
    """Mean-pooled last hidden states of a local encoder folder (never a download)."""

    name = "hf"

    def __init__(self, path: str, max_tokens: int = 512, batch_size: int = 32):
        folder = Path(path) if path else None
        if folder is None or not folder.is_dir():
            raise ConfigError(f"--embedder hf: model folder {path!r} does not exist; give --model-path a local "
                              "encoder folder (mixtrain never downloads: fetch it yourself, e.g. `huggingface-cli "
                              "download NAME --local-dir DIR`, then pass DIR)")
        if not (folder / "config.json").is_file():
            raise ConfigError(f"--embedder hf: {folder} has no config.json, so loading it would need a download; "
                              "give a complete local encoder folder (config.json, tokenizer, weights)")
        self.path, self.max_tokens, self.batch_size = str(folder), int(max_tokens), int(batch_size)
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "max_tokens": self.max_tokens, "batch_size": self.batch_size, "_model": None}

    def _load(self):
        if self._model is None:
            try:
                from transformers import AutoModel, AutoTokenizer
            except ImportError:
                raise ConfigError("--embedder hf needs transformers: install mixtrain[hf]") from None
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                self._model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
            except OSError as e:
                raise ConfigError(f"--embedder hf: {self.path} cannot be loaded without a download ({e}); "
                                  "give a complete local folder") from None
        return self._model

    def fit(self, texts: Sequence[str]) -> "HFEmbedder":
        return self  # a pretrained encoder has nothing to fit

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self._load()
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                                        max_length=self.max_tokens, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        return np.concatenate(out).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"embedder": self.name, "path": self.path, "max_tokens": self.max_tokens}


def _hashing(options: dict[str, Any]) -> HashingEmbedder:
    keys = set(HashingSettings.__dataclass_fields__)
    return HashingEmbedder(HashingSettings(**{k: v for k, v in options.items() if k in keys and v is not None}))


def _hf(options: dict[str, Any]) -> HFEmbedder:
    return HFEmbedder(options.get("model_path") or "", max_tokens=options.get("max_tokens") or 512)


def _run(options: dict[str, Any]):
    from mixtrain.embed.run_embedder import RunEmbedder

    return RunEmbedder(options.get("run") or "", max_tokens=options.get("max_tokens") or 512, layer=options.get("layer"))


EMBEDDERS: dict[str, Callable[[dict[str, Any]], Any]] = {"hashing": _hashing, "hf": _hf, "run": _run}


def make_embedder(name: str, options: dict[str, Any]):
    if name not in EMBEDDERS:
        raise ConfigError(f"--embedder {name!r}: use one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[name](options)
