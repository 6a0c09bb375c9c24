"""Export a trained run to a Hugging Face `LlamaForCausalLM` folder (weights, config, tokenizer).

    python -m mixtrain.model.export RUN --out DIR [--ckpt PATH] [--tokenizer FILE] [--dtype float32|bfloat16]
                              [--max-position-embeddings N] [--overwrite]

Place in the flow: RUN/checkpoints/*.ckpt (module.py) -> hf_format.py mapping -> **export.py**
-> DIR/{config.json, generation_config.json, model.safetensors, tokenizer files} ->
`transformers.AutoModelForCausalLM.from_pretrained(DIR)`, evaluate.py (lm-eval), init_weights.py.

The checkpoint is RUN/checkpoints/last.ckpt (or the newest readable stepN.ckpt, as on resume)
unless `--ckpt` names one. The tokenizer is the one the run's data_dir was prepared with
(RUN/config.yaml -> data_dir/manifest.json), or `--tokenizer`: a SentencePiece `.model` is
exported as itself + an exact tokenizer.json conversion, an HF `tokenizer.json` as itself with
a post-processor that prepends BOS (the training convention); both with a PreTrainedTokenizerFast
tokenizer_config.json. Only weights leave: no optimizer, sampler or mixing state.
Re-exporting into the same DIR replaces the files an export writes and keeps the rest (a model
card); a non-empty DIR that is no export is refused unless `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from mixtrain.model.hf_format import hf_config, strip_prefix, to_hf_state_dict
from mixtrain.store.checkpoint_files import consolidated_checkpoint, resume_checkpoint

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
EXPORT_META = "mixtrain_export.json"
# what an export writes (exports made before mixtrain_export.json listed its "files")
EXPORT_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer.model",
                "tokenizer_config.json", "special_tokens_map.json", EXPORT_META)


def load_run_checkpoint(run_dir: str | os.PathLike | None, ckpt_path: str | os.PathLike | None = None
                        ) -> tuple[str, dict[str, Any]]:
    """(path, checkpoint) of `ckpt_path`, else RUN/checkpoints/last.ckpt (or the newest readable step)."""
    if ckpt_path is not None:
        path = str(ckpt_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"--ckpt {path} does not exist")
    else:
        ckpt_dir = os.path.join(str(run_dir), "checkpoints")
        if not os.path.isdir(ckpt_dir):
            raise FileNotFoundError(f"{ckpt_dir} does not exist: {run_dir} is not a mixtrain run directory "
                                    "(train one with python -m mixtrain.train out_dir=RUN) or pass --ckpt PATH")
        last = os.path.join(ckpt_dir, "last.ckpt")
        if os.path.isdir(last):
            path = last
        else:
            found = resume_checkpoint(ckpt_dir)
            if found is None:
                raise FileNotFoundError(f"no checkpoint in {ckpt_dir} (the run saved none yet); "
                                        "train longer or pass --ckpt PATH")
            if not os.path.isdir(found[0]):
                return found
            path = found[0]  # a sharded folder: its metadata only so far
    if os.path.isdir(path):  # FSDP2 / ModelParallelStrategy: one shard per rank in a folder, consolidated here
        return path, consolidated_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); pass another --ckpt") from None
    return path, ckpt


def checkpoint_model(ckpt: dict[str, Any], path: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(GPT state dict, GPTConfig kwargs) of a MixtureLM checkpoint."""
    try:
        cfg = dict(ckpt["hyper_parameters"]["model"])
        state = strip_prefix(ckpt["state_dict"])
    except (KeyError, TypeError):
        raise ValueError(f"{path} has no mixtrain model (hyper_parameters.model + state_dict); "
                         "is it a mixtrain.train checkpoint?") from None
    if "embed.weight" not in state:
        raise ValueError(f"{path}: its state_dict has no model.embed.weight; is it a mixtrain.train checkpoint?")
    cfg.pop("_target_", None)
    return state, cfg


def run_tokenizer(run_dir: str | os.PathLike | None, tokenizer_path: str | os.PathLike | None = None):
    """The run's tokenizer: `tokenizer_path`, else the one of RUN/config.yaml's data_dir."""
    from mixtrain.prepare.tokenizer import open_data_tokenizer, open_tokenizer

    if tokenizer_path is not None:
        return open_tokenizer(tokenizer_path)
    config = Path(str(run_dir)) / "config.yaml"
    if run_dir is None or not config.is_file():
        raise FileNotFoundError(f"{config} does not exist, so the run's data_dir (and tokenizer) is unknown; "
                                "pass --tokenizer FILE (the data_dir's tokenizer.model or hf_tokenizer.json)")
    import yaml

    data_dir = (yaml.safe_load(config.read_text()) or {}).get("data_dir")  # RUN/config.yaml is plain YAML
    try:
        return open_data_tokenizer(data_dir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (data_dir={data_dir} from {config}); pass --tokenizer FILE if the data "
                                "moved") from None


def _special_tokens(tokenizer) -> dict[str, str]:
    if tokenizer.kind == "spm":
        sp = tokenizer.sp
        out = {"bos_token": sp.id_to_piece(tokenizer.bos_id), "eos_token": sp.id_to_piece(tokenizer.eos_id)}
        if sp.unk_id() >= 0:
            out["unk_token"] = sp.id_to_piece(sp.unk_id())
        return out
    return {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token}


def _with_bos_template(tokenizer) -> str:
    """The HF tokenizer.json, its post-processor set so that add_special_tokens gives [bos] + ids.

    That is the model's training convention; lm-eval and AutoTokenizer users rely on the
    post-processor for BOS. A file that already does exactly that is kept as it is.
    """
    from tokenizers import processors

    tk = tokenizer.tk
    probe = "a b"
    if tk.encode(probe).ids != [tokenizer.bos_id, *tk.encode(probe, add_special_tokens=False).ids]:
        bos = tokenizer.bos_token
        tk = type(tk).from_str(tk.to_str())  # a copy: the loaded tokenizer keeps its own template
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                          special_tokens=[(bos, tokenizer.bos_id)])
    return tk.to_str()


def write_tokenizer(tokenizer, out_dir: Path, model_max_length: int) -> None:
    """The tokenizer files transformers' AutoTokenizer reads, for either tokenizer kind."""
    special = _special_tokens(tokenizer)
    if tokenizer.kind == "spm":
        # tokenizer.model for SentencePiece users; tokenizer.json (an exact conversion, see
        # tokenizer.sentencepiece_to_hf_json) is what AutoTokenizer loads: transformers' own
        # LlamaTokenizer conversion encodes text with leading whitespace differently
        from mixtrain.prepare.tokenizer import sentencepiece_to_hf_json

        shutil.copyfile(tokenizer.model_path, out_dir / "tokenizer.model")
        (out_dir / "tokenizer.json").write_text(sentencepiece_to_hf_json(tokenizer.model_path))
    else:
        (out_dir / "tokenizer.json").write_text(_with_bos_template(tokenizer))
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    if tokenizer.kind == "spm":  # literal "<s>" in text is text to SentencePiece: never cut out as BOS
        tok_cfg["split_special_tokens"] = True
    tok_cfg.update(special, model_max_length=int(model_max_length))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (os.umask sets it for a moment,
    which another thread creating a file in that moment would feel)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    """Move the files of `tmp` into `out_dir`, replacing only the files an export writes.

    A new folder appears whole (one rename). Into an existing one, each written file is
    replaced by rename, then the files the previous export wrote and this one did not (its
    mixtrain_export.json lists them) are removed; anything else there (a model card, notes) stays.
    """
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    previous = out_dir / EXPORT_META
    if previous.is_file():
        try:
            old_files = set(json.loads(previous.read_text()).get("files") or EXPORT_FILES)
        except ValueError:
            old_files = set(EXPORT_FILES)
    elif overwrite or not any(out_dir.iterdir()):
        old_files = set()
    else:
        shutil.rmtree(tmp)
        held = sorted(p.name for p in out_dir.iterdir())
        raise FileExistsError(f"{out_dir} exists, holds {held[:5]} and is not a mixtrain export; choose another "
                              f"--out, or pass --overwrite to write the export's files into it (only those are "
                              "replaced; the rest stays)")
    new_files = sorted(p.name for p in tmp.iterdir())
    for name in sorted(new_files, key=lambda n: n == EXPORT_META):  # the file list last: it names a complete set
        os.replace(tmp / name, out_dir / name)
    for name in sorted(old_files - set(new_files)):
        if (out_dir / name).is_file():
            (out_dir / name).unlink()
    tmp.rmdir()


def export_model(gpt_state: dict[str, torch.Tensor], cfg: dict[str, Any], tokenizer, out_dir: str | os.PathLike,
                 dtype: str = "float32", extra: dict[str, Any] | None = None,
                 max_position_embeddings: int | None = None, overwrite: bool = False) -> Path:
    """Write an HF Llama folder from a GPT state dict + GPTConfig kwargs + tokenizer.

    `max_position_embeddings` (config.json; the tokenizer's model_max_length) defaults to the
    model config's context, `seq_len`: the longest sequence the model was built and trained for
    (RoPE itself has no hard limit; beyond the trained length quality is untested).
    Files are written 0666 minus the umask (0644 usually), as any other tool writes them.
    """
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype}: use one of {sorted(DTYPES)}")
    if int(cfg["vocab_size"]) != tokenizer.vocab_size:
        raise ValueError(f"the model has vocab_size {cfg['vocab_size']} but the tokenizer {tokenizer.model_path} has "
                         f"{tokenizer.vocab_size}; pass the run's own tokenizer (--tokenizer)")
    context = int(cfg.get("seq_len", 1024) if max_position_embeddings is None else max_position_embeddings)
    if context <= 0:
        raise ValueError(f"--max-position-embeddings {context}: give a positive number of tokens")
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hf_state = {k: v.to(DTYPES[dtype]) for k, v in to_hf_state_dict(gpt_state, cfg).items()}
    save_file(hf_state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = hf_config(cfg, tokenizer.bos_id, tokenizer.eos_id, torch_dtype=dtype, max_position_embeddings=context)
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id, "_from_model_config": True}
    (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    write_tokenizer(tokenizer, tmp, model_max_length=context)
    files = sorted([p.name for p in tmp.iterdir()] + [EXPORT_META])
    (tmp / EXPORT_META).write_text(json.dumps({"mixtrain_model": dict(cfg), **(extra or {}), "files": files},
                                              indent=2, default=str) + "\n")
    mask = _umask()  # safetensors writes 0600; every other tool's files are 0666 & ~umask
    for path in tmp.iterdir():
        path.chmod(0o666 & ~mask)
    tmp.chmod(0o777 & ~mask)
    _publish(tmp, out_dir, overwrite)
    return out_dir


def export_run(run_dir: str | os.PathLike | None, out_dir: str | os.PathLike, ckpt_path: str | None = None,
               tokenizer_path: str | None = None, dtype: str = "float32", max_position_embeddings: int | None = None,
               overwrite: bool = False) -> Path:
    """Export RUN's checkpoint (see `load_run_checkpoint`) with its tokenizer to `out_dir`."""
    path, ckpt = load_run_checkpoint(run_dir, ckpt_path)
    state, cfg = checkpoint_model(ckpt, path)
    tokenizer = run_tokenizer(run_dir, tokenizer_path)
    extra = {"checkpoint": os.path.abspath(path), "global_step": int(ckpt.get("global_step", -1)),
             "domains": list(ckpt.get("hyper_parameters", {}).get("domains", []))}
    return export_model(state, cfg, tokenizer, out_dir, dtype=dtype, extra=extra,
                        max_position_embeddings=max_position_embeddings, overwrite=overwrite)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixtrain export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", help="run directory (out_dir of mixtrain.train)")
    parser.add_argument("--out", required=True, help="folder to write (an earlier export there: its files are "
                        "replaced, other files such as a model card stay)")
    parser.add_argument("--ckpt", help="a checkpoint file instead of RUN/checkpoints/last.ckpt")
    parser.add_argument("--tokenizer", help="tokenizer file instead of the one of RUN's data_dir")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--max-position-embeddings", type=int, metavar="N",
                        help="config.json max_position_embeddings and the tokenizer's model_max_length (default: the "
                        "model's context, its seq_len; RoPE runs longer, but untrained there)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing folder that is not an export (only the export's files are replaced)")
    args = parser.parse_args(argv)
    if args.run is None and args.ckpt is None:
        parser.error("give RUN or --ckpt PATH")
    try:
        out = export_run(args.run, args.out, ckpt_path=args.ckpt, tokenizer_path=args.tokenizer, dtype=args.dtype,
                         max_position_embeddings=args.max_position_embeddings, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f"[export] error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"[export] {out}: LlamaForCausalLM (transformers.AutoModelForCausalLM.from_pretrained('{out}'))", flush=True)


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain export")
