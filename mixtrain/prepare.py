"""Entry point: raw text domains -> SentencePiece -> litdata shards + stats (a prepared data_dir).

    python -m mixtrain.prepare data=demo data_dir=DIR                 # embedded demo corpus, no network
    python -m mixtrain.prepare data=dir data.root=RAW data_dir=DIR    # RAW/<domain>/*.{txt,jsonl,...,parquet}
    python -m mixtrain.prepare data=hf data.name=NAME data.domain_field=meta.pile_set_name data_dir=DIR

Place in the flow: first stage; composes corpus.py, tokenizer.py and shards.py. Re-running is
idempotent (up-to-date domains are skipped) and atomic (see shards.py). Config: conf/prepare.yaml.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixtrain import corpus
from mixtrain.shards import (
    ShardSettings, domain_is_current, fingerprint, remove_stale_temporaries, write_domain, write_json_atomic,
    write_manifest,
)
from mixtrain.tokenizer import Tokenizer, balanced_sample, file_hash, train_tokenizer

log = logging.getLogger(__name__)


def materialize_raw(data: Mapping[str, Any], data_dir: Path) -> Path:
    """The RAW folder of a data source: the user's folder, or DIR/raw for the demo and HF sources."""
    source = data.get("source", "dir")
    if source == "dir":
        if not data.get("root"):
            raise ValueError("data=dir needs data.root=RAW (a folder with one sub-folder per domain)")
        return Path(data["root"])
    raw = data_dir / "raw"
    if source == "demo":
        corpus.build_demo_corpus(raw, max_bytes_per_domain=int(data.get("max_bytes_per_domain", 2_000_000)))
        return raw
    if source == "hf":
        from tqdm.auto import tqdm

        if not data.get("name"):
            raise ValueError("data=hf needs data.name (a Hugging Face dataset name or a local builder like 'json')")
        marker = raw / ".hf-source.json"
        wanted = {k: data.get(k) for k in ("name", "config_name", "split", "data_files", "domain_field",
                                           "text_field", "max_docs_per_domain", "max_records")}
        if marker.is_file() and json.loads(marker.read_text()) == json.loads(json.dumps(wanted, default=str)):
            return raw  # already split from this exact source
        records = corpus.load_hf_records(data["name"], split=data.get("split", "train"),
                                         data_files=data.get("data_files"), config_name=data.get("config_name"),
                                         streaming=bool(data.get("streaming", True)), max_records=data.get("max_records"))
        with tqdm(desc=f"split {data['name']} by {data['domain_field']}", unit="rec") as bar:
            corpus.split_hf_dataset(records, data["domain_field"], raw, text_field=data.get("text_field", "text"),
                                    max_docs_per_domain=data.get("max_docs_per_domain"), progress=bar)
        write_json_atomic(marker, wanted)
        return raw
    raise ValueError(f"unknown data.source {source!r}; use demo, dir or hf")


def prepare_corpus(raw_root: str | os.PathLike, data_dir: str | os.PathLike, *, settings: ShardSettings,
                   vocab_size: int = 8192, tokenizer_model: str | None = None,
                   sample_bytes_per_domain: int = 1_000_000, text_field: str = "text", txt_mode: str = "file",
                   tokenizer_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Tokenize every domain of RAW into DIR; returns the manifest. Library function (no Hydra)."""
    raw_root, data_dir = Path(raw_root), Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(data_dir)
    domains = corpus.list_domains(raw_root)
    files = {d: corpus.domain_files(raw_root, d) for d in domains}  # validates every file up front
    read_opts = {"text_field": text_field, "txt_mode": txt_mode}
    raw_prints = {d: corpus.files_fingerprint(files[d]) for d in domains}

    model_path = data_dir / "tokenizer.model"
    tok_meta = data_dir / "tokenizer.json"
    if tokenizer_model:
        source = {"copied_from": str(tokenizer_model), "hash": file_hash(tokenizer_model)}
    else:
        source = {"trained_on": raw_prints, "vocab_size": int(vocab_size), "sample_bytes": int(sample_bytes_per_domain),
                  "options": dict(tokenizer_options or {}), "read": read_opts}
    if not (model_path.is_file() and tok_meta.is_file() and json.loads(tok_meta.read_text()) == json.loads(json.dumps(source))):
        if tokenizer_model:
            import shutil

            shutil.copyfile(tokenizer_model, model_path)
        else:
            sample = balanced_sample({d: corpus.iter_documents(raw_root, d, **read_opts) for d in domains},
                                     int(sample_bytes_per_domain))
            print(f"[prepare] training SentencePiece (vocab {vocab_size}) on {len(sample):,} lines balanced over "
                  f"{len(domains)} domains", flush=True)
            train_tokenizer(sample, model_path, vocab_size=vocab_size, **dict(tokenizer_options or {}))
        write_json_atomic(tok_meta, source)
    tokenizer = Tokenizer(model_path)
    tok_hash = file_hash(model_path)

    for d in domains:
        fp = fingerprint(FORMAT_TAG, raw_prints[d], tok_hash, read_opts,
                         {k: v for k, v in vars(settings).items() if k != "num_workers"})
        if domain_is_current(data_dir, d, fp):
            print(f"[prepare] {d}: up to date, skipped", flush=True)
            continue
        stats = write_domain(d, corpus.iter_documents(raw_root, d, **read_opts), tokenizer, data_dir, settings, fp,
                             extra_stats={"source_files": len(files[d])})
        print(f"[prepare] {d}: {stats['num_docs']:,} docs, {stats['num_tokens']:,} tokens "
              f"({stats['num_train_tokens']:,} train / {stats['num_val_tokens']:,} val), {stats['num_bytes']:,} bytes",
              flush=True)
    stale = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and (p / "stats.json").is_file() and p.name not in domains)
    if stale:
        log.warning("%s holds prepared domains that are no longer in %s and are left out of the manifest: %s",
                    data_dir, raw_root, stale)
    return write_manifest(data_dir, domains, settings, tokenizer)


FORMAT_TAG = "mixtrain-shards-v1"


def prepare_from_config(cfg) -> dict[str, Any]:
    """Prepare cfg.data_dir from a composed config (prepare.yaml, or train.yaml's data/tokenizer groups)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=True)
    tok = OmegaConf.to_container(cfg.tokenizer, resolve=True)
    shard_cfg = OmegaConf.to_container(cfg.get("shards") or OmegaConf.create({}), resolve=True)
    if "seq_len" in cfg:  # called by train.py: shards must hold at least one training sequence + 1
        shard_cfg["block_size"] = max(int(shard_cfg.get("block_size", ShardSettings.block_size)), int(cfg.seq_len) + 1)
    data_dir = Path(cfg.data_dir)
    raw = materialize_raw(data, data_dir)
    return prepare_corpus(
        raw, data_dir, settings=ShardSettings(**shard_cfg), vocab_size=int(tok["vocab_size"]),
        tokenizer_model=tok.get("model_path"), sample_bytes_per_domain=int(tok["sample_bytes_per_domain"]),
        text_field=data.get("text_field", "text"), txt_mode=data.get("txt_mode", "file"),
        tokenizer_options={k: tok[k] for k in ("model_type", "character_coverage", "num_threads") if k in tok},
    )


def main() -> None:
    import hydra

    @hydra.main(config_path="../conf", config_name="prepare", version_base="1.3")
    def _run(cfg) -> None:
        manifest = prepare_from_config(cfg)
        print(f"[prepare] {cfg.data_dir}: {len(manifest['domains'])} domains {manifest['domains']}, "
              f"vocab {manifest['vocab_size']}, block_size {manifest['block_size']}", flush=True)

    _run()


if __name__ == "__main__":
    sys.exit(main())
