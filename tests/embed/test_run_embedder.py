"""The `run` embedder: Chameleon's hidden_states[len // 2], mean-pooled, checked against transformers' own."""

from __future__ import annotations

import numpy as np
import pytest

from mixtrain.embed.pipeline import embed_corpus
from mixtrain.embed.store import load_docs, load_vectors
from mixtrain.errors import ConfigError


def _random_export(tokenizer, out_dir):
    import torch

    from mixtrain.model.export import export_model
    from mixtrain.model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = dict(vocab_size=tokenizer.vocab_size, seq_len=64, n_layer=3, n_head=4, n_kv_head=2, d_model=32,
               tie_embeddings=False, init_std=0.2)
    return export_model(GPT(GPTConfig(**cfg)).state_dict(), cfg, tokenizer, out_dir)


@pytest.mark.slow  # ~25 s on the shared 2 cores: transformers' import and model load dominate
def test_run_embedder_is_the_mean_of_the_middle_hidden_state(tiny_data_dir, tiny_raw_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from mixtrain.prepare.tokenizer import open_data_tokenizer

    tokenizer = open_data_tokenizer(tiny_data_dir)
    hf_dir = _random_export(tokenizer, tmp_path / "random")
    few = tmp_path / "raw" / "prose"
    few.mkdir(parents=True)
    for name in sorted(p.name for p in (tiny_raw_dir / "prose").iterdir())[:9]:
        (few / name).write_text((tiny_raw_dir / "prose" / name).read_text())
    manifest = embed_corpus(tmp_path / "raw", tmp_path / "E", embedder="run",
                            options={"run": str(hf_dir), "max_tokens": 40}, batch_size=4)
    assert manifest["embedder"]["layer"] == 2 and manifest["dim"] == 32  # hidden_states[4 // 2]: after block 2
    docs, vectors = load_docs(tmp_path / "E"), load_vectors(tmp_path / "E")
    llama = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True).eval()
    assert vectors.shape == (9, 32) and list(docs["domain"]) == ["prose"] * 9
    texts = [(tmp_path / "raw" / s).read_text() for s in docs["source"][:3]]
    for text, vector in zip(texts, vectors[:3]):
        ids = torch.as_tensor(tokenizer.encode_documents([text])[0][:40], dtype=torch.long)[None]
        with torch.no_grad():
            hidden = llama(ids, output_hidden_states=True).hidden_states
        expected = torch.nn.functional.normalize(hidden[len(hidden) // 2][0].mean(0), dim=0).numpy()
        assert np.allclose(vector, expected, atol=1e-4)


def test_run_embedder_names_a_missing_run(tiny_raw_dir, tmp_path):
    with pytest.raises(ConfigError, match="--embedder run: .* does not exist"):
        embed_corpus(tiny_raw_dir, tmp_path / "E2", embedder="run", options={"run": str(tmp_path / "no_run")})
    assert not (tmp_path / "E2").exists()
