"""Verify-on-first-read: a shard chunk's sha256 is checked against prepare's checksums.json the
first time a process reads from it, so flipped bytes stop training with the file named.

Place in the flow: mixtrain/prepare/shards.py records `DIR/<domain>/checksums.json` at prepare ->
**chunk_check.py** -> mixtrain/sampler/readers.py (`ChunkVerifier.check` before every batch read)
and mixtrain/train/datamodule.py (a domain's val chunks when its val reader opens). The start-up
check of mixtrain/train/run.py (`datadir.verify_data_dir`) only compares sizes; this catches a
byte changed in place.

Cost (BENCHMARKS.md "Chunk verification"): one sha256 pass over each chunk, once per reading
process (rank or DataLoader worker), at the first batch that draws from it; a batch that draws
from verified chunks pays a set lookup per sample. A rank reads each chunk it samples from
once more than it would otherwise, at sha256 speed (hashlib, about 1-2 GB/s per core). Data
prepared before checksums.json existed has nothing to compare against and is not checked here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

from mixtrain.store.datadir import CHECKSUMS, file_sha256


class CorruptShardError(ValueError):
    pass


class ChunkVerifier:
    """Checks chunk c of split folder i (DIR/<domain>/<split>) once, on its first `check`."""

    def __init__(self, split_dirs: Sequence[str | os.PathLike]):
        self._dirs = [os.fspath(d) for d in split_dirs]
        self._files: list[list[str] | None] = [None] * len(self._dirs)  # chunk filenames per folder
        self._recorded: list[dict | None] = [None] * len(self._dirs)  # checksums.json entries per folder
        self._done: set[tuple[int, int]] = set()

    def _load(self, i: int) -> None:
        folder = self._dirs[i]
        with open(os.path.join(folder, "index.json")) as f:
            self._files[i] = [c["filename"] for c in json.load(f)["chunks"]]
        record = os.path.join(os.path.dirname(folder), CHECKSUMS)
        try:
            with open(record) as f:
                self._recorded[i] = json.load(f)["files"]
        except FileNotFoundError:
            self._recorded[i] = {}  # prepared before checksums.json: nothing to check against

    def check(self, pairs: Iterable[tuple[int, int]]) -> None:
        """(folder, chunk) pairs about to be read: CorruptShardError naming the file if a chunk not
        verified yet differs from its record."""
        for folder, c in pairs:
            if (folder, c) in self._done:
                continue
            if self._files[folder] is None:
                self._load(folder)
            name = self._files[folder][c]
            split_dir = self._dirs[folder]
            entry = self._recorded[folder].get(f"{os.path.basename(split_dir)}/{name}")
            path = os.path.join(split_dir, name)
            if entry is not None and file_sha256(path) != entry["sha256"]:
                record = os.path.join(os.path.dirname(split_dir), CHECKSUMS)
                raise CorruptShardError(
                    f"shard file {path} does not match its sha256 in {record} (changed on disk since prepare); "
                    "training stops rather than train on it: re-run `python -m mixtrain.prepare` with the same "
                    "data_dir (verify=deep rebuilds that domain), then resume=true")
            self._done.add((folder, c))

    def check_all(self) -> None:
        """Every chunk of every folder (a val reader: small, read from the start)."""
        for i in range(len(self._dirs)):
            if self._files[i] is None:
                self._load(i)
            self.check((i, c) for c in range(len(self._files[i])))
