"""Entry point: raw text domains -> SentencePiece -> litdata shards + stats (a prepared data_dir).

    python -m mixtrain.prepare data=demo data_dir=DIR                 # embedded demo corpus, no network
    python -m mixtrain.prepare data=dir data.root=RAW data_dir=DIR    # RAW/<domain>/*.{txt,jsonl,...,parquet}
    python -m mixtrain.prepare data=hf data.name=NAME data.domain_field=meta.pile_set_name data_dir=DIR
    python -m mixtrain.prepare ... num_workers=8                      # 8 tokenizer processes, same shards

Place in the flow: first stage; composes corpus.py, tokenizer.py and shards.py. Data sources
(`data.source`, one per conf/data/<name>.yaml) are a registry: `SOURCES`, `register_source`. Re-running is
idempotent (up-to-date domains are skipped, after checking their shards: `verify`) and atomic
(see shards.py). Config: prepare/config.py (`PrepareConfig`; conf/prepare.yaml picks the groups).

* RAW and DIR must not overlap (same folder, one inside the other, through symlinks too):
  building DIR/<domain> replaces that folder, which would delete raw text. The one exception
  is DIR/raw, where the demo and HF sources are written by prepare itself.
* A refused prepare writes nothing: every check (options, data.source, data.root and its files,
  one-file domains, overlapping folders) runs before the lock creates DIR, and Hydra's run dir
  is the cwd (conf/prepare.yaml), so not even a `.hydra_prepare` folder appears.
* One prepare at a time per DIR: an exclusive flock on DIR/.prepare.lock; a second process
  (e.g. every job of a SLURM sweep) waits up to `lock_timeout_s`, then finds the domains the
  first one built up to date. Across nodes this needs a filesystem with working flock (NFSv4
  does; Lustre needs the `flock` mount option).
* `data_dir=s3://... | gs://... | r2://... | file://...`: built in a local `staging_dir` with all
  of the above (the lock: locks.py), then uploaded by remote.py (what an object store cannot
  guarantee is listed there). `data.root=s3://... | gs://... | file://...` is mirrored into DIR/raw (remote.mirror).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mixtrain.errors import ConfigError
from mixtrain.prepare import corpus
from mixtrain.prepare.config import PrepareConfig
from mixtrain.store import remote
from mixtrain.store.locks import prepare_lock
from mixtrain.prepare.shards import (
    CHECKSUMS, ShardSettings, domain_is_current, domain_problem, fingerprint, record_checksums, remove_stale_temporaries, write_domain,
    write_json_atomic, write_manifest,
)
from mixtrain.prepare.tokenizer import balanced_sample, file_hash, open_tokenizer, train_tokenizer
from mixtrain.prepare.val_share import warn_val_share

log = logging.getLogger(__name__)


VERIFY_OPTIONS = ("deep", "cheap")


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_separate_folders(raw_root: str | os.PathLike, data_dir: str | os.PathLike, *,
                           internal_raw_ok: bool = True) -> None:
    """Refuse a RAW that is, contains or lies inside DIR (real paths), before anything is written.

    Building DIR/<domain> renames and deletes that folder, so any overlap can delete raw text.
    `internal_raw_ok`: RAW == DIR/raw (where prepare writes the demo and HF sources) is allowed,
    as long as no domain is called "raw". Domain folders that are symlinks are checked too.
    """
    raw, out = os.path.realpath(raw_root), os.path.realpath(data_dir)
    fix = ("put the prepared data elsewhere, e.g. data_dir=" + os.path.join(os.path.dirname(raw), "prepared")
           + f" next to the raw folder, never inside it (or move the raw corpus out of {data_dir})")
    if internal_raw_ok and raw == os.path.join(out, "raw"):
        if os.path.isdir(os.path.join(raw, "raw")):
            raise ValueError(f"{raw_root} holds a domain called 'raw': its shards would replace {raw} itself; "
                             "rename that domain folder")
        return
    where = ("is the same folder as" if raw == out else "is inside" if _inside(raw, out)
             else "contains" if _inside(out, raw) else None)
    if where:
        raise ValueError(f"the raw corpus folder {raw_root} (data.root, real path {raw}) {where} the prepared data "
                         f"folder {data_dir} (data_dir, real path {out}): prepare replaces DIR/<domain> folders and "
                         f"would delete raw text; {fix}")
    if os.path.isdir(raw):
        for entry in os.scandir(raw):
            target = os.path.realpath(entry.path)
            if entry.is_dir() and (_inside(target, out) or _inside(out, target)):
                raise ValueError(f"domain folder {entry.path} of the raw corpus (data.root) resolves to {target}, which overlaps "
                                 f"the prepared data folder {data_dir} (real path {out}): prepare would delete it; {fix}")


Source = Callable[[Mapping[str, Any], Path], Path]  # (the data config, DIR) -> RAW
SOURCES: dict[str, Source] = {}  # data.source -> function; one per conf/data/<name>.yaml


def register_source(name: str) -> Callable[[Source], Source]:
    """Decorator: `fn(data_cfg, data_dir) -> RAW` materialises the raw folder of `data.source=name`."""
    def add(fn: Source) -> Source:
        SOURCES[name] = fn
        return fn
    return add


@register_source("dir")
def _source_dir(data: Mapping[str, Any], data_dir: Path) -> Path:
    if remote.is_url(data["root"]):  # an object store: mirrored into DIR/raw, which prepare reads
        if urlparse(data["root"]).scheme == "file":
            check_separate_folders(urlparse(data["root"]).path, data_dir, internal_raw_ok=False)
        raw = data_dir / "raw"
        counts = remote.mirror(data["root"], raw, data.get("storage_options") or None)
        print(f"[prepare] data.root {data['root']}: {counts['files']} files mirrored in {raw} "
              f"({counts['downloaded']} downloaded, {counts['removed']} removed)", flush=True)
        return raw
    check_separate_folders(data["root"], data_dir, internal_raw_ok=False)
    return Path(data["root"])


@register_source("demo")
def _source_demo(data: Mapping[str, Any], data_dir: Path) -> Path:
    from mixtrain.prepare.demo_corpus import build_demo_corpus

    raw = data_dir / "raw"
    build_demo_corpus(raw, max_bytes_per_domain=int(data.get("max_bytes_per_domain", 2_000_000)))
    return raw


@register_source("hf")
def _source_hf(data: Mapping[str, Any], data_dir: Path) -> Path:
    from tqdm.auto import tqdm

    raw = data_dir / "raw"
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


def check_source(data: Mapping[str, Any]) -> None:
    """Refuse an unknown data.source, or data=dir without data.root (before anything is written)."""
    source = data.get("source", "dir")
    if source not in SOURCES:
        raise ValueError(f"unknown data.source {source!r}; use one of {sorted(SOURCES)} (conf/data/<name>.yaml)")
    if source == "dir" and not data.get("root"):
        raise ValueError("data=dir needs data.root=RAW (a folder with one sub-folder per domain)")
    if source == "hf" and not data.get("name"):
        raise ValueError("data=hf needs data.name (a Hugging Face dataset name or a local builder like 'json')")


def materialize_raw(data: Mapping[str, Any], data_dir: Path) -> Path:
    """The RAW folder of a data source: the user's folder, or DIR/raw for the demo and HF sources."""
    check_source(data)
    return SOURCES[data.get("source", "dir")](data, data_dir)


def _check_options(verify: str, num_workers: int, txt_mode: str) -> None:
    if verify not in VERIFY_OPTIONS:
        raise ValueError(f"verify={verify!r} is not an option; use one of {VERIFY_OPTIONS}")
    if int(num_workers) < 1:
        raise ValueError(f"num_workers={num_workers} must be >= 1 (tokenizer processes)")
    corpus.check_txt_mode(txt_mode)


def check_raw(raw_root: str | os.PathLike, txt_mode: str) -> dict[str, list[Path]]:
    """{domain: files} of RAW, every file validated, and every domain able to give train and val
    documents under `txt_mode`; reads only (prepare calls it before anything is written)."""
    raw_root = Path(raw_root)
    files = {d: corpus.domain_files(raw_root, d) for d in corpus.list_domains(raw_root)}
    for d, found in files.items():  # known before any tokenizing: one .txt file per document cannot make 2 documents
        if txt_mode == "file" and len(found) < 2 and all(p.suffix.lower() == ".txt" for p in found):
            raise ValueError(f"domain {d!r}: {found[0]} is its only file, and with data.txt_mode=file (the "
                             "current setting) it is one document; a domain needs at least 2 (train and val): set "
                             f"{corpus.other_txt_modes(txt_mode)}, or add a second file to {raw_root / d}")
    return files


def prepare_corpus(raw_root: str | os.PathLike, data_dir: str | os.PathLike, *, settings: ShardSettings,
                   vocab_size: int = 8192, tokenizer_model: str | None = None,
                   sample_bytes_per_domain: int = 1_000_000, text_field: str = "text", txt_mode: str = "file",
                   tokenizer_options: Mapping[str, Any] | None = None, verify: str = "deep",
                   lock_timeout_s: float = 6 * 3600.0, num_workers: int = 1) -> dict[str, Any]:
    """Tokenize every domain of RAW into DIR; returns the manifest. Library function (no Hydra).

    num_workers: tokenizer processes (shards.encode_batches); the output is the same for any
    number, so it is not part of a domain's fingerprint.

    verify: how up-to-date domains are checked before being skipped ("deep": sha256 of every
    shard file, "cheap": sizes); a domain that fails is rebuilt, and the bad file is printed.
    """
    if remote.is_url(data_dir):
        raise ValueError(f"prepare_corpus(data_dir={data_dir}) needs a local folder: prepare into a local one and "
                         "upload it with mixtrain.store.remote.publish(local, url) (the command line does both for a URL data_dir)")
    _check_options(verify, num_workers, txt_mode)
    check_separate_folders(raw_root, data_dir)  # before anything is written or deleted
    check_raw(raw_root, txt_mode)  # a refused corpus leaves no data_dir behind
    with prepare_lock(data_dir, lock_timeout_s):
        return _prepare_locked(Path(raw_root), Path(data_dir), settings=settings, vocab_size=vocab_size,
                               tokenizer_model=tokenizer_model, sample_bytes_per_domain=sample_bytes_per_domain,
                               text_field=text_field, txt_mode=txt_mode, tokenizer_options=tokenizer_options,
                               verify=verify, num_workers=int(num_workers))


def _txt_hint(files: list[Path], txt_mode: str) -> str:
    txt = [p for p in files if p.suffix.lower() == ".txt"]
    if not txt:
        return ""
    return (f"; its {len(txt)} .txt file(s) are split with data.txt_mode={txt_mode} (the current setting) - if "
            f"that is the wrong rule, set {corpus.other_txt_modes(txt_mode)}")


def ensure_tokenizer(raw_root: Path, data_dir: Path, domains: list[str], raw_prints: dict[str, str],
                     read_opts: dict[str, str], *, vocab_size: int, tokenizer_model: str | None,
                     tokenizer_options: Mapping[str, Any] | None, sample_bytes_per_domain: int) -> tuple[Any, str]:
    """DIR's tokenizer, trained (or copied) unless DIR/tokenizer.json says it is current; (tokenizer, its hash).
    Called under the prepare lock (one-machine prepare, or task 0 of a multi-task one: prepare/tasks.py)."""
    # an HF tokenizer.json is used as is; data_dir/tokenizer.json is mixtrain's tokenizer metadata
    hf = bool(tokenizer_model) and Path(tokenizer_model).suffix == ".json"
    model_path = data_dir / ("hf_tokenizer.json" if hf else "tokenizer.model")
    tok_meta = data_dir / "tokenizer.json"
    if tokenizer_model:
        source = {"copied_from": str(tokenizer_model), "hash": file_hash(tokenizer_model)}
        if hf:  # bos_token / eos_token
            source.update(kind="hf", options=dict(tokenizer_options or {}))
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
    tokenizer = open_tokenizer(model_path, **(dict(tokenizer_options or {}) if hf else {}))
    tok_hash = file_hash(model_path)
    if hf:  # other special tokens = other ids from the same file
        tok_hash += f":{tokenizer.bos_id}:{tokenizer.eos_id}"
    return tokenizer, tok_hash


def _prepare_locked(raw_root: Path, data_dir: Path, *, settings: ShardSettings, vocab_size: int,
                    tokenizer_model: str | None, sample_bytes_per_domain: int, text_field: str, txt_mode: str,
                    tokenizer_options: Mapping[str, Any] | None, verify: str, num_workers: int) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(data_dir)  # safe: the lock says no other prepare is writing here
    files = check_raw(raw_root, txt_mode)  # again under the lock: what is tokenized is what was checked
    domains = list(files)
    read_opts = {"text_field": text_field, "txt_mode": txt_mode}
    raw_prints = {d: corpus.files_fingerprint(files[d]) for d in domains}

    tokenizer, tok_hash = ensure_tokenizer(raw_root, data_dir, domains, raw_prints, read_opts, vocab_size=vocab_size,
                                           tokenizer_model=tokenizer_model, tokenizer_options=tokenizer_options,
                                           sample_bytes_per_domain=sample_bytes_per_domain)

    for d in domains:
        fp = fingerprint(FORMAT_TAG, raw_prints[d], tok_hash, read_opts, vars(settings))  # not num_workers: same bytes
        if domain_is_current(data_dir, d, fp):
            problem = domain_problem(data_dir, d, deep=verify == "deep")
            if problem is None:
                print(f"[prepare] {d}: up to date, skipped", flush=True)
                continue
            if not (data_dir / d / CHECKSUMS).is_file() and domain_problem(data_dir, d, deep=False) is None:
                # prepared by an older mixtrain: every chunk has litdata's recorded size, so adopt the
                # shards (record their checksums now) rather than re-tokenizing a whole corpus
                record_checksums(data_dir / d)
                print(f"[prepare] {d}: up to date (no checksums.json yet: chunk sizes match index.json, "
                      f"checksums recorded now), skipped", flush=True)
                continue
            print(f"[prepare] {d}: up to date but {problem}; rebuilding it", flush=True)
        stats = write_domain(d, corpus.iter_documents(raw_root, d, **read_opts), tokenizer, data_dir, settings, fp,
                             extra_stats={"source_files": len(files[d])}, hint=_txt_hint(files[d], txt_mode),
                             num_workers=num_workers)
        empty = f", {stats['num_empty_docs']:,} empty documents counted and left out" if stats["num_empty_docs"] else ""
        print(f"[prepare] {d}: {stats['num_docs']:,} docs, {stats['num_tokens']:,} tokens "
              f"({stats['num_train_tokens']:,} train / {stats['num_val_tokens']:,} val), {stats['num_bytes']:,} bytes"
              + empty, flush=True)
        warn_val_share(d, stats)  # a small domain: min_val_tokens may take up to half of it
    stale = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and (p / "stats.json").is_file() and p.name not in domains)
    if stale:
        log.warning("%s holds prepared domains that are no longer in %s and are left out of the manifest: %s",
                    data_dir, raw_root, stale)
    return write_manifest(data_dir, domains, settings, tokenizer)


FORMAT_TAG = "mixtrain-shards-v1"


def prepare(config: PrepareConfig) -> dict[str, Any]:
    """Prepare `config.data_dir` (prepare/config.py: conf/prepare.yaml, or a training run's data and
    tokenizer groups); returns its manifest."""
    data, tok = dict(config.data), dict(config.tokenizer)
    txt_mode = data.get("txt_mode", "file")
    if config.prepare.join_only or config.prepare.num_nodes not in (None, 1):  # launcher variables are not read here
        raise ConfigError("prepare(config) prepares on one machine; a prepare spread over tasks (prepare.num_nodes, "
                          "prepare.join_only) is mixtrain.prepare.tasks.prepare(config), which the command line runs")
    _check_options(config.verify, config.num_workers, txt_mode)
    check_source(data)
    url = config.data_dir if remote.is_url(config.data_dir) else None
    if url:  # an object store: build in a local staging folder with every guarantee, then upload
        remote.check_url(url)
        data_dir = remote.staging_dir(url, config.staging_dir)
        print(f"[prepare] data_dir {url}: building in the local staging folder {data_dir}, then uploading", flush=True)
    else:
        data_dir = Path(config.data_dir)
    root = data.get("root") if data.get("source", "dir") == "dir" else None
    if root and (not remote.is_url(root) or urlparse(root).scheme == "file"):  # before the lock creates DIR
        check_separate_folders(urlparse(root).path if remote.is_url(root) else root, data_dir, internal_raw_ok=False)
    if root and not remote.is_url(root):
        check_raw(root, txt_mode)  # a refused corpus writes nothing, not even DIR/.prepare.lock
    tok_args = _tokenizer_args(tok)
    with prepare_lock(data_dir, config.lock_timeout_s):  # materialize_raw writes DIR/raw for the demo and HF sources
        raw = materialize_raw(data, data_dir)
        manifest = prepare_corpus(
            raw, data_dir, settings=config.shards, **tok_args, text_field=data.get("text_field", "text"),
            txt_mode=txt_mode, verify=config.verify, lock_timeout_s=config.lock_timeout_s,
            num_workers=config.num_workers,
        )
        if url:
            uploaded = remote.publish(data_dir, url, dict(config.storage_options or {}))
            print(f"[prepare] {url}: uploaded {uploaded or 'no domain (all up to date)'} and manifest.json", flush=True)
        return manifest


def _tokenizer_args(tok: Mapping[str, Any]) -> dict[str, Any]:
    """prepare_corpus's tokenizer arguments from the `tokenizer` group (spm: train or reuse; hf: copy)."""
    if tok.get("kind") == "hf":  # an existing HF tokenizer.json: copied, not trained
        if tok.get("path") in (None, "???"):
            raise ValueError("tokenizer=hf needs tokenizer.path=PATH/tokenizer.json (a Hugging Face tokenizers file)")
        return {"vocab_size": 0, "tokenizer_model": str(tok["path"]), "sample_bytes_per_domain": 0,
                "tokenizer_options": {"bos_token": tok.get("bos_token"), "eos_token": tok.get("eos_token")}}
    return {"vocab_size": int(tok["vocab_size"]), "tokenizer_model": tok.get("model_path"),
            "sample_bytes_per_domain": int(tok["sample_bytes_per_domain"]),
            "tokenizer_options": {k: tok[k] for k in ("model_type", "character_coverage", "num_threads") if k in tok}}
