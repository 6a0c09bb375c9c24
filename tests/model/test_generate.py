"""Tests for mixtrain.model.generate: greedy sampling equals transformers' generate on the export;
seeded sampling repeats; a run directory and its HF export give the same text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[2]
PROMPT = "The model reads data from"


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory):
    """A real 3-step run, GQA, untied head."""
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("generate") / "run"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={run}", "prepare_if_missing=false",
            "seq_len=64", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false", "trainer.max_steps=3",
            "model.n_kv_head=2", "model.tie_embeddings=false"])
    train(cfg)
    return run


def _random_export(tokenizer, out_dir):
    """An HF folder of a random GPT whose greedy text varies (norm weights spread, as in test_export)."""
    from mixtrain.model.export import export_model
    from mixtrain.model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = dict(vocab_size=tokenizer.vocab_size, seq_len=64, n_layer=2, n_head=4, n_kv_head=2, d_model=64,
               tie_embeddings=False, init_std=0.2)
    gpt = GPT(GPTConfig(**cfg))
    for p in gpt.parameters():
        if p.dim() == 1:
            torch.nn.init.uniform_(p, 0.5, 1.5)
    return export_model(gpt.state_dict(), cfg, tokenizer, out_dir)


def test_greedy_equals_transformers_generate_on_the_export(tiny_run, tiny_data_dir, tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mixtrain.model.export import export_run
    from mixtrain.model.generate import generate
    from mixtrain.prepare.tokenizer import open_data_tokenizer

    hf_dir = _random_export(open_data_tokenizer(tiny_data_dir), tmp_path / "random")
    text, ids = generate(hf_dir, PROMPT, max_new_tokens=24, temperature=0, device="cpu")
    hf_tok = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    prompt = hf_tok(PROMPT, return_tensors="pt")["input_ids"]  # [bos] + text, as generate encodes it
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=24, do_sample=False, pad_token_id=hf_tok.eos_token_id)
    assert ids == out[0, prompt.shape[1]:].tolist()
    assert len(set(ids)) > 3  # a varied continuation, not one token repeated
    # (text: random byte tokens are invalid UTF-8, which HF and SentencePiece replace differently)
    # a trained run and its HF export: same weights, same tokenizer, same text
    run_text = generate(tiny_run, PROMPT, max_new_tokens=20, temperature=0, device="cpu")
    assert generate(export_run(tiny_run, tmp_path / "hf"), PROMPT, max_new_tokens=20, temperature=0,
                    device="cpu") == run_text


def test_sampling_is_seeded_and_top_k_1_is_greedy(tiny_run):
    from mixtrain.model.generate import generate

    greedy = generate(tiny_run, PROMPT, max_new_tokens=12, temperature=0, device="cpu")[1]
    a = generate(tiny_run, PROMPT, max_new_tokens=12, temperature=1.0, seed=3, device="cpu")[1]
    assert a == generate(tiny_run, PROMPT, max_new_tokens=12, temperature=1.0, seed=3, device="cpu")[1]
    others = [generate(tiny_run, PROMPT, max_new_tokens=12, temperature=1.0, seed=s, device="cpu")[1] for s in (4, 5)]
    assert any(o != a for o in others)  # the seed matters
    assert generate(tiny_run, PROMPT, max_new_tokens=12, temperature=0.7, top_k=1, seed=9, device="cpu")[1] == greedy


def test_cli_prints_the_continuation_and_names_bad_input(tiny_run, tmp_path, capsys):
    from mixtrain.model.generate import generate, main

    main([str(tiny_run), "--prompt", PROMPT, "--max-new-tokens", "8", "--temperature", "0"])
    text, _ = generate(tiny_run, PROMPT, max_new_tokens=8, temperature=0, device="cpu")
    assert capsys.readouterr().out == text + "\n" and text.strip()
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    main([str(tiny_run), "--prompt", PROMPT, "--max-new-tokens", "3", "--ckpt", str(ckpt), "--device", "cpu"])
    assert capsys.readouterr().out.strip()
    for args, message in ((["--temperature", "-1"], "--temperature -1.0: use 0"), (["--top-k", "0"], "--top-k 0"),
                          (["--ckpt", str(tmp_path / "no.ckpt")], "no.ckpt does not exist"),
                          (["--max-new-tokens", "-5"], "--max-new-tokens -5: use a positive number")):
        with pytest.raises(SystemExit):
            main([str(tiny_run), "--prompt", "x", "--device", "cpu", *args])
        assert message in capsys.readouterr().err


def test_cli_says_when_the_continuation_is_empty(tiny_run, capsys, monkeypatch):
    import mixtrain.model.generate as generate_module
    from mixtrain.model.generate import main

    for blank, what in (("", "empty"), ("\n \n", "only whitespace")):  # what a weak model's greedy output often is
        monkeypatch.setattr(generate_module, "generate", lambda *a, _blank=blank, **k: (_blank, []))
        main([str(tiny_run), "--prompt", PROMPT, "--max-new-tokens", "4"])
        captured = capsys.readouterr()
        assert captured.out == blank + "\n" and f"[generate] note: the continuation is {what}" in captured.err
    monkeypatch.undo()
    main([str(tiny_run), "--prompt", PROMPT, "--max-new-tokens", "4", "--temperature", "0"])
    captured = capsys.readouterr()
    assert ("[generate] note" in captured.err) == (not captured.out.strip())  # a note only for blank text


def test_an_export_with_an_hf_tokenizer_json_generates_like_transformers(tmp_path):
    """An HF-tokenizer export has no tokenizer.model: its tokenizer.json and named specials are used."""
    pytest.importorskip("transformers")
    from prepare.test_tokenizer import write_hf_tokenizer
    from transformers import AutoModelForCausalLM

    from mixtrain.model.generate import generate, hf_folder_tokenizer
    from mixtrain.prepare.tokenizer import open_tokenizer

    path = write_hf_tokenizer(tmp_path / "tok.json", specials=("<unk>", "[CLS]", "[SEP]"))
    hf_dir = _random_export(open_tokenizer(path, bos_token="[CLS]", eos_token="[SEP]"), tmp_path / "hf")
    tok = hf_folder_tokenizer(hf_dir)
    assert tok.kind == "hf" and (tok.bos_token, tok.eos_token, tok.bos_id, tok.eos_id) == ("[CLS]", "[SEP]", 1, 2)
    _, ids = generate(hf_dir, "the lazy fox", max_new_tokens=12, temperature=0, device="cpu")
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    prompt = torch.tensor([tok.encode_documents(["the lazy fox"])[0][:-1].tolist()])
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_id)
    assert ids == out[0, prompt.shape[1]:].tolist()


def test_another_tokenizer_of_the_same_vocabulary_size_is_warned_about(tiny_run, tiny_data_dir, tmp_path, capsys):
    """Issue 30: a tokenizer trained on other text has the same vocabulary size and other pieces."""
    import numpy as np
    from conftest import _code, _prose, _tables

    from mixtrain.model.generate import generate
    from mixtrain.prepare.tokenizer import train_tokenizer

    own = tiny_data_dir / "tokenizer.model"
    generate(tiny_run, PROMPT, max_new_tokens=2, temperature=0, device="cpu", tokenizer_path=str(own))
    assert "warning" not in capsys.readouterr().err  # the run's own tokenizer, passed explicitly: no warning
    other = tmp_path / "other.model"
    rng = np.random.default_rng(7)  # the same kinds of text, another sample and mixture: another 320 pieces
    train_tokenizer(_code(rng, 80) + _tables(rng, 20) + _prose(rng, 10), other, vocab_size=320)
    generate(tiny_run, PROMPT, max_new_tokens=2, temperature=0, device="cpu", tokenizer_path=str(other))
    err = capsys.readouterr().err
    assert f"--tokenizer {other} is not the tokenizer" in err and "nonsense" in err
