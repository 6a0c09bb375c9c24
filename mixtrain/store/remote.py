"""Object stores (s3://, gs://, r2://, and file://): raw text in, prepared DIR out.

Place in the flow: `mirror` copies a raw corpus URL (data.root) into DIR/raw ->
mixtrain/prepare/corpus.py reads it; mixtrain/prepare/pipeline.py builds DIR in a local staging
folder with every guarantee of a local DIR -> **remote.py** `publish` uploads it to the URL ->
`pull` copies it (verified) to a local folder on another machine, where mixtrain/train/run.py
reads it (`local_data_dir`).

Used as is: litdata's FsProvider clients (upload, download, exists, delete on S3/GCS/R2, with
their usual credentials: AWS_* / ~/.aws, GOOGLE_APPLICATION_CREDENTIALS) and fsspec's local
filesystem for file:// URLs (the tests run this exact code through it, without network).
What this module adds, because neither does it:
* listing with size and modification time (litdata's providers have no listing; fsspec's s3/gs
  backends, s3fs/gcsfs, are not dependencies), so that `mirror` is incremental: it downloads only
  new or changed objects (through a temporary + rename), gives each copy the object's mtime (so
  prepare's fingerprints see exactly what changed), deletes local files no longer in the store,
  and skips hidden names (".*") on both sides;
* a publish order that readers can rely on: per domain its remote stats.json is deleted first,
  then the shard files, checksums.json, and stats.json last (its presence means "complete", as
  locally); manifest.json is deleted first and uploaded last; a domain whose remote stats.json
  has the local fingerprint is skipped (idempotent). Not atomic for readers: one during a publish
  may see "not prepared", never a half domain that claims to be complete. Two machines
  publishing one URL are not coordinated: publish each URL from one job;
* a verified pull: every shard file checked against checksums.json (size, sha256) before the
  manifest is written, so a pulled DIR is complete or refused;
* the staging folder of a URL (prepare builds there under the POSIX guarantees an object store
  lacks: flock, atomic rename, read-back sha256) and, for training, one pull per node under the
  prepare lock (locks.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mixtrain.store.locks import prepare_lock

OBJECT_STORE_SCHEMES = ("s3", "gs", "r2")  # litdata.streaming.fs_provider
SCHEMES = OBJECT_STORE_SCHEMES + ("file",)


def is_url(path: Any) -> bool:
    return "://" in str(path)


def check_url(url: str) -> None:
    scheme = urlparse(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(f"data_dir={url}: the scheme {scheme}:// is not supported; use a local path or one of "
                         + ", ".join(s + "://" for s in SCHEMES))


def staging_dir(url: str, root: str | os.PathLike | None = None) -> Path:
    """The local folder where prepare builds the DIR published at `url` (a persistent cache)."""
    root = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mixtrain" / "staging"
    name = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return root / name


class LocalProvider:
    """litdata's FsProvider interface for file:// URLs over fsspec's local filesystem; an upload
    goes through a temporary + rename, so a reader never sees half a file."""

    def __init__(self):
        import fsspec

        self.fs = fsspec.filesystem("file", auto_mkdir=True)  # an upload creates its folders

    @staticmethod
    def _path(url: str) -> str:
        return urlparse(url).path

    def upload_file(self, local_path: str, remote_path: str) -> None:
        target = self._path(remote_path)
        tmp = f"{os.path.dirname(target)}/.{os.path.basename(target)}.tmp-{os.getpid()}"
        self.fs.put_file(local_path, tmp)
        self.fs.mv(tmp, target)

    def download_file(self, remote_path: str, local_path: str) -> None:
        self.fs.get_file(self._path(remote_path), local_path)

    def exists(self, path: str) -> bool:
        return self.fs.isfile(self._path(path))

    def delete_file_or_directory(self, path: str) -> None:
        if self.fs.exists(self._path(path)):
            self.fs.rm(self._path(path), recursive=True)


def provider(url: str, storage_options: dict[str, Any] | None = None):
    check_url(url)
    if urlparse(url).scheme == "file":
        return LocalProvider()
    from litdata.streaming.fs_provider import _get_fs_provider

    return _get_fs_provider(url, storage_options or {})


def _join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def _read_remote_json(fs, url: str) -> Any | None:
    if not fs.exists(url):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "f.json")
        fs.download_file(url, local)
        try:
            return json.loads(Path(local).read_text())
        except ValueError:
            return None  # a corrupt remote file is simply replaced


# ------------------------------------------------------------------------------ raw text in
def _list_file(url: str, fs) -> Iterator[tuple[str, int, int]]:
    root = LocalProvider._path(url).rstrip("/")
    if not fs.fs.isdir(root):
        raise FileNotFoundError(f"data.root={url}: {root} is not a folder")
    for path, info in fs.fs.find(root, detail=True).items():
        yield os.path.relpath(path, root), int(info["size"]), int(round(info["mtime"] * 1e9))


def _bucket_prefix(url: str) -> tuple[str, str]:
    """("bucket", "some/folder/") of s3://bucket/some/folder; the prefix is "" for a whole bucket."""
    parsed = urlparse(url)
    path = parsed.path.strip("/")
    return parsed.netloc, path + "/" if path else ""


def _list_s3(url: str, fs) -> Iterator[tuple[str, int, int]]:
    bucket, prefix = _bucket_prefix(url)
    for page in fs.client.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                yield obj["Key"][len(prefix):], int(obj["Size"]), int(obj["LastModified"].timestamp() * 1e9)


def _list_gs(url: str, fs) -> Iterator[tuple[str, int, int]]:
    bucket, prefix = _bucket_prefix(url)
    for blob in fs.client.list_blobs(bucket, prefix=prefix):
        if not blob.name.endswith("/"):
            yield blob.name[len(prefix):], int(blob.size), int(blob.updated.timestamp() * 1e9)


LISTERS = {"file": _list_file, "s3": _list_s3, "gs": _list_gs}  # scheme -> (relative path, bytes, mtime ns)


def mirror(url: str, local_root: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> dict[str, int]:
    """Make local_root a copy of the objects under `url` (see the module docstring); returns counts."""
    scheme = urlparse(url).scheme
    if scheme not in LISTERS:
        raise ValueError(f"data.root={url}: raw text can be read from {', '.join(s + '://' for s in LISTERS)} URLs, "
                         f"not {scheme}://; copy it to a local folder first")
    fs = provider(url, storage_options)
    local_root = Path(local_root)
    listed = {rel: (size, mtime) for rel, size, mtime in LISTERS[scheme](url, fs)
              if not any(part.startswith(".") for part in rel.split("/"))}
    if not listed:
        raise ValueError(f"data.root={url} holds no files; put each domain's files under {url.rstrip('/')}/<domain>/")
    downloaded = 0
    for rel, (size, mtime) in sorted(listed.items()):
        local = local_root / rel
        if local.is_file() and local.stat().st_size == size and local.stat().st_mtime_ns == mtime:
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp-{os.getpid()}")
        try:
            fs.download_file(_join(url, rel), str(tmp))
            os.utime(tmp, ns=(mtime, mtime))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        downloaded += 1
    removed = 0
    for p in sorted(local_root.rglob("*"), reverse=True):  # children before their folders
        rel = p.relative_to(local_root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if p.is_file() and rel not in listed:
            p.unlink()
            removed += 1
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    return {"files": len(listed), "downloaded": downloaded, "removed": removed}


# ------------------------------------------------------------------------------ prepared DIR out
def _tokenizer_files(manifest: dict[str, Any]) -> list[str]:
    """The tokenizer file the manifest names, plus prepare's tokenizer.json record of its source."""
    return sorted({str(manifest.get("tokenizer", "tokenizer.model")), "tokenizer.model", "tokenizer.json"})


def publish(local_dir: str | os.PathLike, url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Upload a prepared local DIR to `url` (see the module docstring); returns the domains uploaded."""
    local_dir = Path(local_dir)
    fs = provider(url, storage_options)
    manifest = json.loads((local_dir / "manifest.json").read_text())
    fs.delete_file_or_directory(_join(url, "manifest.json"))
    uploaded = []
    for domain in manifest["domains"]:
        folder = local_dir / domain
        stats = json.loads((folder / "stats.json").read_text())
        remote_stats = _read_remote_json(fs, _join(url, domain, "stats.json"))
        if remote_stats is not None and remote_stats.get("fingerprint") == stats["fingerprint"]:
            continue
        fs.delete_file_or_directory(_join(url, domain, "stats.json"))
        for name in json.loads((folder / "checksums.json").read_text())["files"]:
            fs.upload_file(str(folder / name), _join(url, domain, name))
        fs.upload_file(str(folder / "checksums.json"), _join(url, domain, "checksums.json"))
        fs.upload_file(str(folder / "stats.json"), _join(url, domain, "stats.json"))
        uploaded.append(domain)
    for name in _tokenizer_files(manifest):
        if (local_dir / name).is_file():
            fs.upload_file(str(local_dir / name), _join(url, name))
    fs.upload_file(str(local_dir / "manifest.json"), _join(url, "manifest.json"))
    return uploaded


def pull(url: str, local_dir: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Download a published DIR into local_dir, every shard checked (deep) before the manifest is written."""
    from mixtrain.store.datadir import domain_problem

    local_dir = Path(local_dir)
    fs = provider(url, storage_options)
    manifest = _read_remote_json(fs, _join(url, "manifest.json"))
    if manifest is None:
        raise FileNotFoundError(f"{url}/manifest.json does not exist (or is being published): {url} is not a "
                                "prepared data_dir; run `python -m mixtrain.prepare ... data_dir=URL` first")
    local_dir.mkdir(parents=True, exist_ok=True)
    (local_dir / "manifest.json").unlink(missing_ok=True)  # written last: its presence means "complete"
    for domain in manifest["domains"]:
        folder = local_dir / domain
        for split in ("train", "val"):
            (folder / split).mkdir(parents=True, exist_ok=True)
        fs.download_file(_join(url, domain, "checksums.json"), str(folder / "checksums.json"))
        for name in json.loads((folder / "checksums.json").read_text())["files"]:
            fs.download_file(_join(url, domain, name), str(folder / name))
        fs.download_file(_join(url, domain, "stats.json"), str(folder / "stats.json"))
        problem = domain_problem(local_dir, domain, deep=True)
        if problem:
            raise ValueError(f"domain {domain!r} pulled from {url}: {problem}; delete {_join(url, domain, 'stats.json')} "
                             f"and re-run prepare with data_dir={url} (it re-uploads every domain whose remote stats.json "
                             "is missing or has another fingerprint), then pull again")
    for name in _tokenizer_files(manifest):
        if fs.exists(_join(url, name)):
            fs.download_file(_join(url, name), str(local_dir / name))
    (local_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


# ------------------------------------------------------------------------------ training from a URL
def local_data_dir(url: str, cache_root: str | os.PathLike | None = None,
                   storage_options: dict[str, Any] | None = None, lock_timeout_s: float = 6 * 3600.0) -> Path:
    """The local copy mixtrain/train/run.py reads for a URL data_dir: the staging folder of `url` (where a
    prepare on this machine built it, so nothing is downloaded), pulled when it has no manifest
    or one whose fingerprint differs from the published manifest's. Every process of a node calls
    this; the staging folder's prepare lock makes one of them pull and the others find it current."""
    check_url(url)
    local = staging_dir(url, cache_root)
    with prepare_lock(local, lock_timeout_s):
        fs = provider(url, storage_options)
        published = _read_remote_json(fs, _join(url, "manifest.json"))
        if published is None:
            raise FileNotFoundError(f"data_dir={url}: {url}/manifest.json does not exist (or is being published); "
                                    f"run `python -m mixtrain.prepare ... data_dir={url}` first")
        here = local / "manifest.json"
        current = json.loads(here.read_text()) if here.is_file() else None
        if current is None or current.get("fingerprint") != published.get("fingerprint"):
            print(f"[mixtrain] data_dir {url}: copying it to {local} (checked file by file)", flush=True)
            pull(url, local, storage_options)
    return local
