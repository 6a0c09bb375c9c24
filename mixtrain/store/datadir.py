"""The prepared data directory's JSON files: how they are read, recorded and verified.

Place in the flow: mixtrain/prepare/shards.py writes `DIR/<domain>/{train,val}/` and, through this
module, `checksums.json`, `stats.json` and `DIR/manifest.json` -> **datadir.py** -> every reader of
DIR (mixtrain/train/datamodule.py, mixtrain/fitting/proxy.py, mixtrain/prepare/domain_entropy.py,
chunk_check.py, remote.py's pull, the start-up check of mixtrain/train/run.py).
Layout: docs/formats.md. Free of litdata and torch: reading DIR never loads the writer.

* Verified: every file of `DIR/<domain>/{train,val}/` is recorded with its size and sha256 in
  `DIR/<domain>/checksums.json` (written before stats.json). `verify_data_dir(DIR)` checks
  existence and sizes (cheap: train start), `deep=True` also the checksums (prepare re-runs
  rebuild a domain that fails). stats.json is not covered: mixtrain/prepare/domain_entropy.py
  caches into it.
* Current: a domain whose stats.json holds the fingerprint of this prepare's inputs and settings
  is complete and up to date (`domain_is_current`); prepare skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mixtrain.store import runfiles

FORMAT_VERSION = 1
PREPARE_HINT = "run `python -m mixtrain.prepare data=demo data_dir={dir}` (or data=dir data.root=RAW)"


def read_manifest(data_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest.json in {data_dir}: it is not a prepared data directory; "
                                + PREPARE_HINT.format(dir=data_dir))
    try:
        manifest = json.loads(path.read_text())
        manifest["domains"], manifest["block_size"], manifest["vocab_size"]  # noqa: B018 (required keys)
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path} is corrupt ({e}); delete it and re-run prepare") from None
    return manifest


def read_stats(data_dir: str | os.PathLike, domain: str) -> dict[str, Any]:
    path = Path(data_dir) / domain / "stats.json"
    if not path.is_file():
        raise FileNotFoundError(f"domain {domain!r}: no {path}; its shards are missing or incomplete; "
                                + PREPARE_HINT.format(dir=data_dir))
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is corrupt ({e}); delete {path.parent} and re-run prepare") from None


CHECKSUMS = "checksums.json"
SPLITS = ("train", "val")
_FIX = ("re-run `python -m mixtrain.prepare ...` with the same data_dir (it rebuilds that domain), "
        "or delete {folder} and re-run prepare")


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 that checksums.json records (and chunk_check.py compares against)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def record_checksums(domain_dir: Path) -> dict[str, Any]:
    """Size and sha256 of every file of domain_dir/{train,val}/, written to domain_dir/checksums.json."""
    files = {}
    for split in SPLITS:
        for f in sorted((domain_dir / split).iterdir()):
            if f.is_file():
                files[f"{split}/{f.name}"] = {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
    record = {"format": 1, "algorithm": "sha256", "files": files}
    write_json_atomic(domain_dir / CHECKSUMS, record)
    return record


def _index_chunks(index: Path) -> list[dict[str, Any]] | str:
    """The chunk list of a litdata index.json, or a description of why it cannot be read."""
    try:
        chunks = json.loads(index.read_text())["chunks"]
        [(c["filename"], int(c["chunk_bytes"])) for c in chunks]  # noqa: B018 (required keys)
        return chunks
    except FileNotFoundError:
        return f"{index} is missing"
    except (ValueError, KeyError, TypeError) as e:
        return f"{index} is corrupt ({type(e).__name__}: {e})"


def domain_problem(data_dir: str | os.PathLike, domain: str, *, deep: bool = False) -> str | None:
    """Why DIR/<domain>'s shards cannot be trusted (naming the file), or None when they check out.

    With checksums.json: every recorded file exists with its recorded size (deep: and sha256),
    and every chunk index.json lists is recorded. Without it (data prepared by an older
    mixtrain): every chunk index.json lists exists with its `chunk_bytes`; deep is then a problem.
    """
    folder = Path(data_dir) / domain
    record_path = folder / CHECKSUMS
    try:
        recorded = json.loads(record_path.read_text())["files"]
    except FileNotFoundError:
        recorded = None
    except (ValueError, KeyError, TypeError) as e:
        return f"{record_path} is corrupt ({type(e).__name__}: {e})"
    if recorded is None and deep:
        return f"{record_path} is missing (prepared by an older mixtrain, or deleted): the shards cannot be checked"
    for split in SPLITS:
        chunks = _index_chunks(folder / split / "index.json")
        if isinstance(chunks, str):
            return chunks
        for c in chunks:
            f = folder / split / c["filename"]
            if recorded is not None and f"{split}/{c['filename']}" not in recorded:
                return f"{f} is listed in {folder / split / 'index.json'} but not in {record_path}"
            if recorded is None:  # no record: litdata's own chunk sizes are all we have
                if not f.is_file():
                    return f"shard {f} is missing"
                if f.stat().st_size != int(c["chunk_bytes"]):
                    return f"shard {f} has {f.stat().st_size} bytes, index.json says {c['chunk_bytes']} (truncated or overwritten)"
    for name, entry in (recorded or {}).items():
        f = folder / name
        if not f.is_file():
            return f"shard file {f} is missing"
        size = f.stat().st_size
        if size != int(entry["bytes"]):
            how = "truncated" if size < int(entry["bytes"]) else "grown or overwritten"
            return f"shard file {f} has {size} bytes, {entry['bytes']} were written ({how})"
        if deep and file_sha256(f) != entry["sha256"]:
            return f"shard file {f} does not match its sha256 in {record_path} (corrupted on disk or overwritten)"
    return None


def verify_data_dir(data_dir: str, *, deep: bool = False) -> None:
    """Check every domain of a prepared DIR; ValueError naming the bad file and the fix.

    Cheap (train start): manifest, stats.json, index.json and existence + size of every shard file.
    deep=True: also the sha256 of every shard file (reads all of them).
    """
    for domain in read_manifest(data_dir)["domains"]:
        folder = Path(data_dir) / domain
        if not (folder / "stats.json").is_file():
            raise ValueError(f"domain {domain!r}: {folder / 'stats.json'} is missing, the domain is incomplete; "
                             + _FIX.format(folder=folder))
        problem = domain_problem(data_dir, domain, deep=deep)
        if problem:
            raise ValueError(f"domain {domain!r}: {problem}; " + _FIX.format(folder=folder))


def verify_shards(data_dir: str | os.PathLike) -> None:
    """The cheap check (kept name): see verify_data_dir."""
    verify_data_dir(str(data_dir))


def write_json_atomic(path: Path, data: Any) -> None:
    """The data directory's JSON files (stats, checksums, manifest): runfiles' one atomic writer, sorted keys."""
    runfiles.write_json_atomic(path, data, sort_keys=True, allow_nan=True)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def domain_is_current(data_dir: Path, domain: str, domain_fingerprint: str) -> bool:
    path = data_dir / domain / "stats.json"
    try:
        return json.loads(path.read_text()).get("fingerprint") == domain_fingerprint
    except (OSError, ValueError):
        return False
