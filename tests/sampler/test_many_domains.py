"""300 domains end to end: a real training run (train()) that refits, crashes, resumes exactly.

The data_dir is written directly in litdata's TokensLoader chunk format (one chunk per split and
domain), so 300 domains take a second to build instead of 300 prepare runs.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
from crash import CrashAt
from hydra import compose, initialize_config_dir

from conftest import train_composed as train

CONF = str(Path(__file__).resolve().parents[2] / "conf")
BLOCK = 33  # seq_len 32 + 1
NUM_DOMAINS = 300


def _write_chunked(folder: Path, tokens: np.ndarray) -> None:
    folder.mkdir(parents=True)
    body = tokens.astype(np.int32).tobytes()
    (folder / "chunk-0-0.bin").write_bytes(np.array([1, 12, 12 + len(body)], dtype=np.uint32).tobytes() + body)
    config = {"chunk_bytes": None, "chunk_size": 1, "compression": None, "data_format": ["no_header_tensor:16"],
              "data_spec": "[1, {\"type\": null, \"context\": null, \"children_spec\": []}]", "encryption": None,
              "item_loader": "TokensLoader"}
    chunks = [{"chunk_bytes": 12 + len(body), "chunk_size": 1, "dim": int(tokens.size), "filename": "chunk-0-0.bin"}]
    (folder / "index.json").write_text(json.dumps({"chunks": chunks, "config": config}))


def _many_domain_dir(root: Path) -> Path:
    rng = np.random.default_rng(0)
    names = [f"src{i:03d}/part" if i % 2 else f"lang{i:03d}" for i in range(NUM_DOMAINS)]
    names = [n.replace("/", "_") for n in names]
    for i, name in enumerate(names):
        # each domain repeats its own short pattern: per-domain losses differ, so refits move weights
        pattern = rng.integers(3, 200, size=5 + i % 7)
        train_tokens = np.resize(pattern, 12 * BLOCK)
        _write_chunked(root / name / "train", train_tokens)
        _write_chunked(root / name / "val", np.resize(pattern, 2 * BLOCK))
        (root / name / "stats.json").write_text(json.dumps({"domain": name, "num_train_tokens": int(train_tokens.size),
                                                            "num_val_tokens": 2 * BLOCK, "num_docs": 1}))
    (root / "manifest.json").write_text(json.dumps({"domains": names, "block_size": BLOCK, "vocab_size": 256,
                                                    "format": 1, "token_dtype": "int32"}))
    return root


def _cfg(data_dir, out_dir, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=[
            "experiment=smoke", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=8", "val_blocks_per_domain=1", "table_at_end=false", "mixing=odm",
            "mixing.refit_every_n_steps=2", "mixing.warmup_steps=0", "trainer.max_steps=8",
            "trainer.val_check_interval=4", "checkpoint_every_n_steps=4", "trainer.log_every_n_steps=2",
            "sampler.window_samples=8", "sampler.weight_lag_batches=2", "sampler.max_open_chunks=16", *overrides,
        ])


class OpenFiles(pl.Callback):
    """Open file descriptors of this process at the start of training and after each validation."""

    def __init__(self):
        self.counts: list[int] = []

    def on_train_start(self, trainer, pl_module):
        self.counts.append(len(os.listdir("/proc/self/fd")))

    def on_validation_end(self, trainer, pl_module):
        self.counts.append(len(os.listdir("/proc/self/fd")))


def _rows(run_dir) -> list[dict[str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # three training runs over 300 domains: 12 s on an idle 2-core box, 80 s under load
def test_300_domains_train_refit_and_resume_exactly(tmp_path):
    data_dir = _many_domain_dir(tmp_path / "data")
    domains = json.loads((data_dir / "manifest.json").read_text())["domains"]
    full = tmp_path / "full"
    files = OpenFiles()
    train(_cfg(data_dir, full), extra_callbacks=[files])
    # 300 train and 300 val domains were read; the budget (16 train chunks) and the val loaders that
    # let go of their file after their last block keep the process far below one file per domain
    assert len(files.counts) == 3 and max(files.counts) - files.counts[0] < 60, files.counts
    crashed = tmp_path / "crashed"
    try:
        train(_cfg(data_dir, crashed), extra_callbacks=[CrashAt(6)])
    except RuntimeError as e:
        assert "simulated crash" in str(e)
    train(_cfg(data_dir, crashed, "resume=true"))

    a, b = _rows(full), _rows(crashed)
    # written every log_every_n_steps=2 steps (and at validation): complete per-domain columns
    assert [r["step"] for r in a] == ["2", "4", "6", "8"]
    assert {f"mix/{d}" for d in domains} | {f"mix/tokens/{d}" for d in domains} <= set(a[0])
    assert sum(1 for d in domains if a[-1].get(f"train/{d}/loss")) >= 8  # the domains sampled since step 6
    assert all(a[-1][f"val/{d}/loss"] for d in domains)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for k in ra:
            if not k.startswith("perf/"):
                assert ra[k] == rb[k], (ra["step"], k, ra[k], rb[k])

    refits = [json.loads(line) for line in (full / "refits.jsonl").read_text().splitlines()]
    assert [r["step"] for r in refits] == [2, 4, 6, 8]
    updated = [r for r in refits if r["status"] in ("updated", "replaced")]
    assert updated and len(updated[-1]["new_weights"]) == NUM_DOMAINS
    assert abs(sum(updated[-1]["new_weights"].values()) - 1) < 1e-9  # ODM's EXP3 keeps eps_t = 1/K this early
    resumed = [json.loads(line) for line in (crashed / "refits.jsonl").read_text().splitlines()]
    assert [r["new_weights"] for r in resumed if r["step"] == 8] == [r["new_weights"] for r in refits if r["step"] == 8]
