"""Shared fixtures: a tiny raw corpus with three clearly different domains, its prepared data_dir, and
the bench/ scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import sys

import numpy as np
import pytest

import mixtrain.hydra_app  # noqa: F401  (registers the config schemas that conf/*.yaml list first)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parents[1]
# tests/ on the path: the helper modules beside this file (crash.py, online_helpers.py) for tests in subfolders
sys.path.insert(0, str(Path(__file__).resolve().parent))


def smoke_overrides(data_dir, out_dir, *extra: str) -> list[str]:
    """The overrides of a seconds-long CPU run (experiment=smoke) on a prepared tiny data_dir."""
    return ["experiment=smoke", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false", *extra]


def smoke_cfg(data_dir, out_dir, *extra: str):
    """conf/train.yaml composed (by Hydra, unbound) with `smoke_overrides`: pass it to `train_composed`."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=smoke_overrides(data_dir, out_dir, *extra))


def train_composed(cfg, *args, **kwargs):
    """train() of a Hydra-composed config (hydra.compose in a test): bound to TrainConfig first, as the
    entry point does (mixtrain/hydra_app.py)."""
    from mixtrain.hydra_app import bind
    from mixtrain.train.config import TrainConfig
    from mixtrain.train.run import train

    return train(bind(cfg, TrainConfig), *args, **kwargs)


def prepare_composed(cfg):
    """prepare() of a Hydra-composed conf/prepare.yaml (or train.yaml) config, bound to PrepareConfig."""
    from mixtrain.hydra_app import bind
    from mixtrain.prepare.config import PrepareConfig
    from mixtrain.prepare.pipeline import prepare

    return prepare(bind(cfg, PrepareConfig))


@pytest.fixture
def load_bench():
    """bench/<name>.py as a module (bench/ holds scripts, not a package)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


WORDS = ("the model reads data from many domains and learns which mixture of text helps most when "
         "training language models on code prose and tables with a budget of tokens").split()


def _prose(rng, n_docs):
    return [" ".join(rng.choice(WORDS, size=rng.integers(80, 250))).capitalize() + "." for _ in range(n_docs)]


def _code(rng, n_docs):
    docs = []
    for i in range(n_docs):
        lines = [f"def f_{i}_{j}(x, y):\n    return x * {rng.integers(0, 99)} + y  # {rng.choice(WORDS)}"
                 for j in range(rng.integers(5, 20))]
        docs.append("\n\n".join(lines))
    return docs


def _tables(rng, n_docs):
    return ["\n".join(",".join(str(v) for v in rng.integers(0, 1000, size=6)) for _ in range(rng.integers(20, 60)))
            for _ in range(n_docs)]


def write_raw_corpus(root: Path, seed: int = 0, n_docs: int = 60) -> Path:
    rng = np.random.default_rng(seed)
    (root / "prose").mkdir(parents=True)
    for i, doc in enumerate(_prose(rng, n_docs)):
        (root / "prose" / f"doc{i:03d}.txt").write_text(doc)
    (root / "code").mkdir()
    with open(root / "code" / "part.jsonl", "w") as f:
        for doc in _code(rng, n_docs):
            f.write(json.dumps({"text": doc}) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "tables").mkdir()
    pq.write_table(pa.table({"text": _tables(rng, n_docs)}), root / "tables" / "part.parquet")
    return root


@pytest.fixture(scope="session")
def tiny_raw_dir(tmp_path_factory) -> Path:
    return write_raw_corpus(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="session")
def tiny_data_dir(tiny_raw_dir, tmp_path_factory) -> Path:
    from mixtrain.prepare.pipeline import prepare_corpus
    from mixtrain.prepare.shards import ShardSettings

    out = tmp_path_factory.mktemp("prepared")
    prepare_corpus(tiny_raw_dir, out, vocab_size=320, sample_bytes_per_domain=200_000,
                   settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05))
    return out


def prepare_corpus_for_test(tmp_path: Path) -> Path:
    """The tiny corpus plus a domain `noise` of uniformly random characters (about uniform random tokens),
    prepared: a domain no other domain learns from (tests of gradient strategies)."""
    from mixtrain.prepare.pipeline import prepare_corpus
    from mixtrain.prepare.shards import ShardSettings

    raw = write_raw_corpus(tmp_path / "raw")
    rng = np.random.default_rng(1)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    (raw / "noise").mkdir()
    for i in range(60):
        (raw / "noise" / f"doc{i:03d}.txt").write_text("".join(rng.choice(alphabet, size=1200)))
    out = tmp_path / "prepared"
    prepare_corpus(raw, out, vocab_size=512, sample_bytes_per_domain=200_000,
                   settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=1200, val_fraction=0.05))
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules that train tiny models (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):
    they gain nothing from intra-op threads, and on a busy 2-core machine two spinning OpenMP
    threads make an AdamW step ~100x slower. Restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_laws(monkeypatch):
    """The law tests' fake_laws(spec): name -> fake law class whose CV under fold seed s has decision regret spec[name][0][s]
    (random-pick regret 1) and mean-loss Spearman spec[name][1]: the auto rule sees exactly these numbers."""
    import mixtrain.laws.law_choice as choice
    from mixtrain.laws import BiMixLaw

    def cv(regret, rho):
        return {"regret_top1": regret, "regret_topk": regret, "regret_random": 1.0,
                "mean_loss_spearman": rho, "mean_spearman": 0.9, "mean_mre": 0.01}

    def make(spec):
        def fake(name):
            class Fake(BiMixLaw):
                def fit(self, table, *, cv_folds=5, seed=0, importance=None):
                    super().fit(table, cv_folds=0)
                    self.name = name
                    self.report["cv"] = cv(spec[name][0][seed], spec[name][1])
                    return self
            Fake.name = name
            return Fake

        monkeypatch.setattr(choice, "cross_validate",
                            lambda law, table, folds, seed, importance: cv(spec[law.name][0][seed], spec[law.name][1]))
        return {name: fake(name) for name in spec}

    return make
