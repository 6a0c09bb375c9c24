"""Checkpoint digests: a `<checkpoint>.sha256` file written after each checkpoint file, checked at load.

Place in the flow: mixtrain/train/checkpoints.py writes a digest after every checkpoint write and
moves it with the file when a staged checkpoint is published -> **checkpoint_digest.py** ->
store/checkpoint_files.py's `resume_checkpoint` checks it before a resume uses a checkpoint.

Why: 64 flipped bytes inside `last.ckpt` (a bad disk, a half-synced copy) loaded without a word
(torch.load reads tensor bytes unchecked) and the run went on from damaged weights to a NaN stop.

Format (JSON): {"format": 1, "algorithm": "sha256", "accepted": [{"sha256": ..., "bytes": ...}]}.
`accepted` lists more than one content only while a checkpoint is being replaced: `publish` first
adds the new file's digest to the old one's, renames the file, then keeps only the new digest, so
a kill at any point leaves a file its digest accepts. A checkpoint with no digest (written before
digests, or copied without it) is "unverified", not damaged.

Sharded (FSDP) checkpoint folders: every rank writes its shards (torch.distributed.checkpoint), then
at publish time, after the barrier, global rank 0 writes `FOLDER_DIGEST` inside the staged folder
({"format": 1, "algorithm": "sha256", "files": {relative path: {"sha256", "bytes"}}}) before the
folder takes its name, so the digest travels with the folder's one rename. A checked folder must
hold every listed file with its size and sha256; files it does not list (none are written after
the digest) are ignored. The cost is one sha256 pass over the whole checkpoint on rank 0 per save,
as for a file (BENCHMARKS.md, checkpoint digests).
"""

from __future__ import annotations

import json
import os
from typing import Any

from mixtrain.store.datadir import file_sha256
from mixtrain.store.runfiles import atomic_write

DIGEST_SUFFIX = ".sha256"
FOLDER_DIGEST = "mixtrain.sha256"  # inside a sharded checkpoint folder


def digest_path(path: str) -> str:
    return path + DIGEST_SUFFIX


def _entry(path: str) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "bytes": os.path.getsize(path)}


def _write(path: str, accepted: list[dict[str, Any]]) -> None:
    # the temp name ends in .partial: store/checkpoint_files.remove_partial_files clears one a kill left
    atomic_write(digest_path(path), json.dumps({"format": 1, "algorithm": "sha256", "accepted": accepted}),
                 tmp=digest_path(path) + ".partial", fsync=True)


def _accepted(path: str) -> list[dict[str, Any]] | None:
    try:
        with open(digest_path(path)) as f:
            return list(json.load(f)["accepted"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return []  # a damaged digest file accepts nothing: the checkpoint cannot be trusted either


def write_digest(path: str) -> dict[str, Any]:
    """Record the sha256 and size of checkpoint file `path` (after the file is complete)."""
    entry = _entry(path)
    _write(path, [entry])
    return entry


def publish(staged: str, final: str) -> None:
    """os.replace(staged, final) with the digest following the file, never a moment where the file
    on disk is one its digest rejects (see the module docstring)."""
    new = _accepted(staged)
    if new is None:  # staged without a digest (should not happen): record it now
        new = [_entry(staged)]
    if os.path.isfile(final):
        _write(final, new + (_accepted(final) or []))
    os.replace(staged, final)
    _write(final, new)
    if os.path.exists(digest_path(staged)):
        os.remove(digest_path(staged))


def write_folder_digest(folder: str) -> dict[str, Any]:
    """Record the sha256 and size of every file below sharded checkpoint `folder` (complete: every
    rank's shards written) in folder/FOLDER_DIGEST."""
    files = {}
    for parent, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            full = os.path.join(parent, name)
            rel = os.path.relpath(full, folder)
            if rel != FOLDER_DIGEST and not rel.endswith(".partial"):
                files[rel] = _entry(full)
    target = os.path.join(folder, FOLDER_DIGEST)
    atomic_write(target, json.dumps({"format": 1, "algorithm": "sha256", "files": files}), tmp=target + ".partial",
                 fsync=True)
    return files


def _folder_problem(folder: str) -> str | None:
    try:
        with open(os.path.join(folder, FOLDER_DIGEST)) as f:
            files = dict(json.load(f)["files"])
    except FileNotFoundError:
        return None  # unverified (written before folder digests), not damaged
    except (ValueError, KeyError, TypeError):
        return f"its digest file {FOLDER_DIGEST} is unreadable"
    for rel, entry in sorted(files.items()):
        full = os.path.join(folder, rel)
        if not os.path.isfile(full):
            return f"its shard file {rel} is missing (listed in {FOLDER_DIGEST})"
        if os.path.getsize(full) != entry.get("bytes"):
            return f"its shard file {rel} has {os.path.getsize(full):,} bytes, the digest says {entry.get('bytes'):,}"
        if file_sha256(full) != entry.get("sha256"):
            return f"the sha256 of its shard file {rel} differs from {FOLDER_DIGEST} (bytes damaged on disk)"
    return None


def digest_problem(path: str) -> str | None:
    """Why checkpoint `path` (a file, or a sharded folder) does not match its digest (naming the file),
    or None when it does or when it has no digest (unverified). Reads every byte (sha256)."""
    if os.path.isdir(path):
        return _folder_problem(path)
    accepted = _accepted(path)
    if accepted is None:
        return None
    if not accepted:
        return f"its digest file {os.path.basename(digest_path(path))} is unreadable"
    size = os.path.getsize(path)
    if not any(e.get("bytes") == size for e in accepted):
        return f"{size:,} bytes, its digest says {accepted[0].get('bytes'):,} (truncated or overwritten)"
    if not any(e.get("sha256") == file_sha256(path) for e in accepted):
        return f"its sha256 differs from {os.path.basename(digest_path(path))} (bytes damaged on disk)"
    return None
