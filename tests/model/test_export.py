"""Tests for mixtrain.model.hf_format, mixtrain.model.export and mixtrain.model.init_weights: HF Llama out and in.

A real tiny run (GQA, untied head) is exported through `python -m mixtrain.model.export RUN`, loaded
by transformers and compared with mixtrain's GPT (logits within 1e-4, same token ids); random
GPTs cover tied/untied x GQA/MHA; imports go back into a GPT exactly, mismatches are named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from hydra import compose, initialize_config_dir  # noqa: E402

from mixtrain.model.export import checkpoint_model, export_model, load_run_checkpoint  # noqa: E402
from mixtrain.model.hf_format import from_hf_state_dict, hf_config, to_hf_state_dict  # noqa: E402
from mixtrain.model.init_weights import check_initial_weights, load_initial_weights  # noqa: E402
from mixtrain.model.gpt import GPT, GPTConfig  # noqa: E402
from mixtrain.prepare.tokenizer import open_data_tokenizer, open_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "conf")
DOCS = ["The model reads data from many domains.", "def f_1(x, y):\n    return x * 3 + y  # code",
        "  leading spaces, 12,345\n\n and a blank line", "ünïcödé ✓ 漢字 never seen"]


def _train_cfg(data_dir, out_dir, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=[
            "experiment=smoke", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false", *overrides])


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory):
    """A real 3-step run with grouped-query attention and an untied head."""
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("export") / "run"
    train(_train_cfg(tiny_data_dir, run, "trainer.max_steps=3", "model.n_kv_head=2", "model.tie_embeddings=false"))
    return run


def _random_gpt(vocab_size: int, tie: bool, n_kv_head: int | None, seed: int = 0) -> tuple[GPT, dict]:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, seq_len=48, n_layer=2, n_head=4, n_kv_head=n_kv_head, d_model=64,
               tie_embeddings=tie, rope_theta=5000.0, norm_eps=1e-6)
    gpt = GPT(GPTConfig(**cfg)).eval()
    for p in gpt.parameters():  # norm weights away from 1: a swapped or dropped norm shows in the logits
        if p.dim() == 1:
            torch.nn.init.uniform_(p, 0.5, 1.5)
    return gpt, cfg


def _hf_logits(folder, ids: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    assert type(model).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("tie,n_kv_head", [(True, None), (True, 2), (False, 1), (False, None)])
def test_export_matches_transformers_logits(tiny_data_dir, tmp_path, tie, n_kv_head):
    tok = open_data_tokenizer(tiny_data_dir)
    gpt, cfg = _random_gpt(tok.vocab_size, tie, n_kv_head)
    out = export_model(gpt.state_dict(), cfg, tok, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is tie and config["num_key_value_heads"] == (n_kv_head or 4)
    ids = torch.randint(0, tok.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = gpt(ids)
    assert (ours - _hf_logits(out, ids)).abs().max().item() <= 1e-4
    # and back: the HF state dict maps onto the same GPT exactly
    back, back_cfg = from_hf_state_dict(to_hf_state_dict(gpt.state_dict(), cfg), config)
    gpt2 = GPT(GPTConfig(**back_cfg))
    gpt2.load_state_dict(back)
    with torch.no_grad():
        assert torch.equal(gpt2.eval()(ids), ours)


def test_export_cli_on_a_real_run(tiny_run, tiny_data_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    out = tmp_path / "hf"
    proc = subprocess.run([sys.executable, "-m", "mixtrain.model.export", str(tiny_run), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer.model",
            "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "mixtrain_export.json").read_text())
    assert meta["global_step"] == 3 and meta["checkpoint"].endswith("last.ckpt")
    path, ckpt = load_run_checkpoint(tiny_run)
    state, cfg = checkpoint_model(ckpt, path)
    gpt = GPT(GPTConfig(**cfg)).eval()
    gpt.load_state_dict(state)
    ids = torch.randint(0, cfg["vocab_size"], (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (gpt(ids) - _hf_logits(out, ids)).abs().max().item() <= 1e-4
    # the exported tokenizer gives mixtrain's ids ([bos] + text), leading whitespace and bytes included
    hf_tok, ours = AutoTokenizer.from_pretrained(str(out)), open_data_tokenizer(tiny_data_dir)
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id) == (ours.bos_id, ours.eos_id)
    for doc, ids in zip(DOCS, ours.encode_documents(DOCS)):
        assert hf_tok(doc)["input_ids"] == ids[:-1].tolist()
        assert hf_tok.decode(ids[1:-1].tolist()) == doc
    # files are 0666 minus the umask (safetensors alone would write 0600), the folder 0777 minus it
    mask = os.umask(0)
    os.umask(mask)
    for p in out.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask
    assert meta["files"] == sorted(p.name for p in out.iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["max_position_embeddings"] == cfg["seq_len"] == 32  # the model's context by default


def test_reexport_keeps_the_users_files_and_refuses_foreign_folders(tiny_run, tiny_data_dir, tmp_path, capsys):
    from prepare.test_tokenizer import write_hf_tokenizer

    from mixtrain.model.export import main

    out = tmp_path / "hf"
    main([str(tiny_run), "--out", str(out)])
    (out / "README.md").write_text("my model card")  # the user's own file
    first = (out / "model.safetensors").stat().st_ino
    # again, with an HF tokenizer.json (same vocabulary size) and a longer stated context
    hf_json = write_hf_tokenizer(tmp_path / "tok.json", vocab_size=320)
    main([str(tiny_run), "--out", str(out), "--tokenizer", str(hf_json), "--max-position-embeddings", "4096"])
    assert (out / "README.md").read_text() == "my model card"
    assert (out / "model.safetensors").stat().st_ino != first  # replaced
    assert not (out / "tokenizer.model").exists()  # written by the first export only: removed
    assert json.loads((out / "config.json").read_text())["max_position_embeddings"] == 4096
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 4096
    # a folder that is no export: refused, untouched; with --overwrite only the export's files are added
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--out", str(mine)])
    assert "is not a mixtrain export; choose another --out, or pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert not list(tmp_path.glob("*.tmp-*"))  # the half-written folder is gone
    main([str(tiny_run), "--out", str(mine), "--overwrite"])
    assert (mine / "notes.txt").read_text() == "keep" and (mine / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--out", str(tmp_path / "x"), "--max-position-embeddings", "0"])
    assert "--max-position-embeddings 0" in capsys.readouterr().err


def test_export_with_an_hf_tokenizer_json(tmp_path):
    from prepare.test_tokenizer import write_hf_tokenizer
    from transformers import AutoTokenizer

    tok = open_tokenizer(write_hf_tokenizer(tmp_path / "tokenizer.json"))
    gpt, cfg = _random_gpt(tok.vocab_size, True, 2)
    out = export_model(gpt.state_dict(), cfg, tok, tmp_path / "hf")
    hf_tok = AutoTokenizer.from_pretrained(str(out))
    assert (hf_tok.bos_token, hf_tok.eos_token) == ("<s>", "</s>")
    for doc, ids in zip(DOCS, tok.encode_documents(DOCS)):
        assert hf_tok(doc, add_special_tokens=False)["input_ids"] == ids[1:-1].tolist()
        assert hf_tok(doc)["input_ids"] == ids[:-1].tolist()  # BOS prepended, as in training (lm-eval relies on it)
    ids = torch.randint(0, tok.vocab_size, (1, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (gpt(ids) - _hf_logits(out, ids)).abs().max().item() <= 1e-4


def test_export_errors_name_the_path_and_the_fix(tiny_run, tiny_data_dir, tmp_path):
    from mixtrain.model.export import main

    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "x")])
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint in .*empty/checkpoints.*--ckpt"):
        load_run_checkpoint(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"is not a mixtrain run directory.*--ckpt"):
        load_run_checkpoint(tmp_path)
    (tmp_path / "sharded.ckpt").mkdir()
    with pytest.raises(ValueError, match="not a sharded checkpoint"):  # a real one is consolidated (test_launch.py)
        load_run_checkpoint(None, tmp_path / "sharded.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt is not a readable checkpoint"):
        load_run_checkpoint(None, tmp_path / "junk.ckpt")
    from prepare.test_tokenizer import write_hf_tokenizer

    other = write_hf_tokenizer(tmp_path / "other.json", vocab_size=280)
    from mixtrain.model.export import export_run

    with pytest.raises(ValueError, match="vocab_size 320 but the tokenizer .*other.json has 280"):
        export_run(tiny_run, tmp_path / "hf", tokenizer_path=str(other))


def test_hf_config_fields_follow_the_gpt_config():
    config = hf_config({"vocab_size": 100, "d_model": 64, "n_head": 4, "n_kv_head": 2, "n_layer": 3, "seq_len": 16,
                        "tie_embeddings": False, "rope_theta": 500.0, "norm_eps": 1e-6}, bos_id=1, eos_id=2)
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]) == (64, 4, 2)
    assert config["intermediate_size"] == 192 and config["head_dim"] == 16  # 8/3 * 64 rounded up to 64
    assert (config["rope_theta"], config["rms_norm_eps"], config["max_position_embeddings"]) == (500.0, 1e-6, 16)
    with pytest.raises(ValueError, match="hidden_act='gelu'.*attention_bias=true"):
        from_hf_state_dict({}, {**config, "hidden_act": "gelu", "attention_bias": True})
    with pytest.raises(ValueError, match="rope type 'linear'"):
        from_hf_state_dict({}, {**config, "rope_parameters": {"rope_type": "linear", "factor": 2.0}})


def test_init_from_hf_folder_and_mixtrain_run(tiny_run, tiny_data_dir, tmp_path):
    path, ckpt = load_run_checkpoint(tiny_run)
    state, cfg = checkpoint_model(ckpt, path)
    out = export_model(state, cfg, open_data_tokenizer(tiny_data_dir), tmp_path / "hf")
    for source in (out, tiny_run, path):  # HF folder, run directory, checkpoint file
        gpt = GPT(GPTConfig(**{**cfg, "seq_len": 64}))  # a longer seq_len is fine: rotary tables are rebuilt
        info = load_initial_weights(gpt, source)
        assert info["kind"] == ("hf" if source == out else "mixtrain")
        for key, value in gpt.state_dict().items():
            assert torch.equal(value, state[key]), (source, key)
    assert info["source_step"] == 3 and info["source_domains"] == ["code", "prose", "tables"]
    with pytest.raises(ValueError, match=r"n_layer: 2 vs 4.*model="):
        load_initial_weights(GPT(GPTConfig(**{**cfg, "n_layer": 2})), tiny_run)
    for source in (out, tiny_run, path):  # the cheap check train.py runs first reads no weights, says the same
        check_initial_weights(GPTConfig(**cfg), source)
        with pytest.raises(ValueError, match=r"n_layer: 2 vs 4"):
            check_initial_weights(GPTConfig(**{**cfg, "n_layer": 2}), source)
    with pytest.raises(ValueError, match=r"n_kv_head: 4 vs 2"):
        load_initial_weights(GPT(GPTConfig(**{**cfg, "n_kv_head": 4})), out)
    with pytest.raises(ValueError, match=r"tie_embeddings: True vs False"):
        load_initial_weights(GPT(GPTConfig(**{**cfg, "tie_embeddings": True})), out)
    with pytest.raises(ValueError, match=r"vocab_size 320 but this run's data has 300.*same tokenizer"):
        load_initial_weights(GPT(GPTConfig(**{**cfg, "vocab_size": 300})), tiny_run)
    with pytest.raises(FileNotFoundError, match="init_from=.*nowhere does not exist"):
        load_initial_weights(GPT(GPTConfig(**cfg)), tmp_path / "nowhere")
    os.remove(out / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_initial_weights(GPT(GPTConfig(**cfg)), out)


def test_train_init_from_a_run_on_other_domains(tiny_run, tiny_data_dir, tmp_path):
    """Continued pretraining: weights of tiny_run, new training domains and mixture, step 0, no resume."""
    from conftest import train_composed as train

    run = tmp_path / "continued"
    summary = train(_train_cfg(tiny_data_dir, run, "trainer.max_steps=2", "model.n_kv_head=2",
                               "model.tie_embeddings=false", "eval_only_domains=[tables]", "mixing=uniform",
                               "optim.lr=0.0", f"init_from={tiny_run}"))
    assert summary["step"] == 2
    source = checkpoint_model(load_run_checkpoint(tiny_run)[1])[0]
    path, ckpt = load_run_checkpoint(run)
    assert ckpt["hyper_parameters"]["domains"] == ["code", "prose"]
    for key, value in checkpoint_model(ckpt, path)[0].items():  # lr 0: the weights are still the source's
        assert torch.equal(value, source[key]), key


def test_checkpoint_of_a_compiled_model_exports_the_same_keys():
    gpt, cfg = _random_gpt(64, True, None)
    plain = {"model." + k: v for k, v in gpt.state_dict().items()}
    compiled = {"model._orig_mod." + k: v for k, v in gpt.state_dict().items()}  # compile=true checkpoints
    for state in (plain, compiled):
        got, _ = checkpoint_model({"state_dict": state, "hyper_parameters": {"model": {**cfg, "_target_": "x"}}})
        assert set(got) == set(gpt.state_dict())
    with pytest.raises(ValueError, match="has no mixtrain model"):
        checkpoint_model({"state_dict": plain}, "foreign.ckpt")


def test_prepare_train_export_with_tokenizer_hf(tiny_raw_dir, tmp_path):
    """tokenizer=hf end to end: the user's tokenizer.json (custom BOS/EOS) -> shards -> run -> export."""
    from prepare.test_tokenizer import write_hf_tokenizer
    from transformers import AutoTokenizer

    from conftest import prepare_composed as prepare_from_config
    from conftest import train_composed as train

    user_tok = write_hf_tokenizer(tmp_path / "user_tokenizer.json", specials=("<unk>", "[CLS]", "[SEP]"))
    data = tmp_path / "data"
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("prepare", overrides=[
            "data=dir", f"data.root={tiny_raw_dir}", f"data_dir={data}", "tokenizer=hf", f"tokenizer.path={user_tok}",
            'tokenizer.bos_token="[CLS]"', 'tokenizer.eos_token="[SEP]"', "shards.block_size=65",
            "shards.blocks_per_chunk=8", "shards.min_val_tokens=1200", "shards.val_fraction=0.05"])
    manifest = prepare_from_config(cfg)
    assert (manifest["tokenizer"], manifest["vocab_size"], manifest["bos_id"], manifest["eos_id"]) == \
        ("hf_tokenizer.json", 300, 1, 2)
    train(_train_cfg(data, tmp_path / "run", "trainer.max_steps=2"))
    out = tmp_path / "hf"
    from mixtrain.model.export import main

    main([str(tmp_path / "run"), "--out", str(out)])
    hf_tok, ours = AutoTokenizer.from_pretrained(str(out)), open_data_tokenizer(data)
    assert (hf_tok.bos_token, hf_tok.eos_token) == ("[CLS]", "[SEP]")
    for doc, ids in zip(DOCS, ours.encode_documents(DOCS)):
        assert hf_tok(doc)["input_ids"] == ids[:-1].tolist()
