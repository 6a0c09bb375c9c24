"""Sample text from a trained run (or an exported HF folder) with its own tokenizer.

    python -m mixtrain.model.generate RUN_DIR --prompt TEXT [--max-new-tokens N] [--temperature T]
                                [--top-k K] [--seed S] [--ckpt PATH] [--device cpu|cuda]
    python -m mixtrain.model.generate HF_DIR --prompt TEXT ...        # a folder from mixtrain.model.export

Place in the flow: RUN/checkpoints (module.py) or HF_DIR (export.py) -> init_weights.py reads
the weights -> **generate.py** -> the continuation on stdout.

The prompt is encoded as in training, [bos] + text (no eos); tokens are drawn until
`--max-new-tokens` or the tokenizer's eos. `--temperature 0` is greedy (argmax);
otherwise logits / T, cut to the `--top-k` largest, sampled with a generator seeded by
`--seed` (same seed, same text). Prints the continuation only. The model sees at most its context (`seq_len`) tokens: a
longer window keeps the last `seq_len`. No KV cache: each step re-reads the window, which is
fine for checking a run by eye, not for serving (export and use transformers for that).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def hf_folder_tokenizer(folder: str | os.PathLike):
    """The tokenizer of an export: its SentencePiece tokenizer.model, else its tokenizer.json."""
    from mixtrain.prepare.tokenizer import open_tokenizer

    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        return open_tokenizer(folder / "tokenizer.model")
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} has neither tokenizer.model nor tokenizer.json; export it with "
                                "python -m mixtrain.model.export, or pass --tokenizer FILE")
    special = {}
    if (folder / "tokenizer_config.json").is_file():
        config = json.loads((folder / "tokenizer_config.json").read_text())
        special = {k: v if isinstance(v, str) else (v or {}).get("content") for k, v in config.items()
                   if k in ("bos_token", "eos_token")}
    return open_tokenizer(folder / "tokenizer.json", bos_token=special.get("bos_token"),
                          eos_token=special.get("eos_token"))


def load_model(source: str | os.PathLike, ckpt_path: str | None = None, tokenizer_path: str | None = None,
               device: str = "cpu"):
    """(GPT in eval mode on `device`, tokenizer) of a run directory, a checkpoint or an HF folder."""
    from mixtrain.model.export import run_tokenizer
    from mixtrain.model.init_weights import read_initial_weights
    from mixtrain.model.gpt import GPT, GPTConfig
    from mixtrain.prepare.tokenizer import open_tokenizer

    state, cfg, _ = read_initial_weights(ckpt_path or source)
    gpt = GPT(GPTConfig(**cfg))
    missing, unexpected = gpt.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("rope_")]  # rotary tables are rebuilt, never stored
    if missing or unexpected:
        raise ValueError(f"{ckpt_path or source}: weights do not match the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    if tokenizer_path is not None:
        tokenizer = open_tokenizer(tokenizer_path)
    elif _is_hf_folder(Path(source)):
        tokenizer = hf_folder_tokenizer(source)
    else:
        tokenizer = run_tokenizer(source)
    if tokenizer_path is not None and not _is_hf_folder(Path(source)):
        _warn_other_tokenizer(ckpt_path or source, tokenizer_path)
    if tokenizer.vocab_size != gpt.cfg.vocab_size:
        raise ValueError(f"the model has vocab_size {gpt.cfg.vocab_size} but the tokenizer {tokenizer.model_path} has "
                         f"{tokenizer.vocab_size}; pass the run's own tokenizer (--tokenizer)")
    return gpt.to(device).eval(), tokenizer


def _warn_other_tokenizer(source: str | os.PathLike, tokenizer_path: str) -> None:
    """--tokenizer that is not the run's (its checkpoint records the data's tokenizer hash,
    train/data_identity.py): same vocabulary size, other pieces, so the text would be nonsense."""
    from mixtrain.store.checkpoint_files import load_checkpoint_meta
    from mixtrain.store.datadir import file_sha256

    path = Path(source)
    ckpt = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
    try:
        saved = (load_checkpoint_meta(str(ckpt)).get("mixtrain_data") or {}).get("tokenizer_sha256")
    except Exception:  # no readable checkpoint here: nothing to compare (read_initial_weights names the problem)
        return
    if saved and file_sha256(tokenizer_path) != saved:
        print(f"[generate] warning: --tokenizer {tokenizer_path} is not the tokenizer {ckpt} was trained with "
              f"(sha256 {file_sha256(tokenizer_path)[:12]}, the run's {saved[:12]}): the same ids mean other pieces, "
              "so the text will be nonsense; leave --tokenizer out to use the run's own", file=sys.stderr, flush=True)


@torch.no_grad()
def generate_ids(gpt, prompt_ids: list[int], max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0, eos_id: int | None = None) -> list[int]:
    """The new token ids after `prompt_ids` (greedy when temperature is 0), stopping after eos."""
    if temperature < 0:
        raise ValueError(f"--temperature {temperature}: use 0 (greedy) or a positive number")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k {top_k}: use a positive number of tokens (or leave it out)")
    if int(max_new_tokens) < 1:
        raise ValueError(f"--max-new-tokens {max_new_tokens}: use a positive number of tokens to generate")
    device = next(gpt.parameters()).device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    new: list[int] = []
    for _ in range(int(max_new_tokens)):
        logits = gpt(ids[:, -gpt.cfg.seq_len:])[0, -1].float()  # [V]
        if temperature == 0:
            token = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            token = int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))
        new.append(token)
        if token == eos_id:
            break
        ids = torch.cat([ids, torch.tensor([[token]], device=device)], dim=1)
    return new


def generate(source: str | os.PathLike, prompt: str, max_new_tokens: int = 64, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, ckpt_path: str | None = None,
             tokenizer_path: str | None = None, device: str | None = None) -> tuple[str, list[int]]:
    """(continuation text, its token ids) of `prompt` from the model at `source`."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    gpt, tokenizer = load_model(source, ckpt_path, tokenizer_path, device)
    prompt_ids = tokenizer.encode_documents([prompt])[0][:-1].tolist()  # [bos] + text, as in training
    new = generate_ids(gpt, prompt_ids, max_new_tokens, temperature, top_k, seed, eos_id=tokenizer.eos_id)
    # decoded with the prompt: SentencePiece drops the leading space of a text's first piece
    full, head = tokenizer.decode(prompt_ids + new), tokenizer.decode(prompt_ids)
    return (full[len(head):] if full.startswith(head) else tokenizer.decode(new)), new


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixtrain generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="run directory (out_dir of mixtrain.train) or an exported HF folder")
    parser.add_argument("--prompt", required=True, help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=int, help="sample among the K most likely tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ckpt", help="a checkpoint file instead of RUN/checkpoints/last.ckpt")
    parser.add_argument("--tokenizer", help="tokenizer file instead of the run's (or the folder's) own")
    parser.add_argument("--device", help="cpu / cuda (default: cuda if available)")
    args = parser.parse_args(argv)
    try:
        text, _ = generate(args.source, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed,
                           ckpt_path=args.ckpt, tokenizer_path=args.tokenizer, device=args.device)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"[generate] error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(text, flush=True)
    if not text.strip():  # a weak model's greedy output is often only newlines: say so instead of a blank screen
        what = "empty" if not text else f"only whitespace ({text[:40]!r})"
        print(f"[generate] note: the continuation is {what}; an undertrained model often does this: train longer, "
              "or sample with --temperature 0.8 --top-k 50", file=sys.stderr, flush=True)


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain generate")
