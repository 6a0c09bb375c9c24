"""The round loop with a multi-fidelity pool (mixtrain.fitting.search_loop): round 0 from the pool, each chosen row
trained at its model preset, the recommendation for the largest size, and the errors that name the file and column."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from mixtrain.errors import ConfigError, DataError
from mixtrain.fitting.search import main as search_main
from mixtrain.fitting.search_loop import groups, main as loop_main, pool_kind, read_sized_pool, recommend, write_first
from mixtrain.fitting.search_rounds import read_rounds
from mixtrain.laws.table import make_table, write_table
from mixtrain.mixing.static import read_weights_file

DOMS = ["a", "b", "c"]
SIZES = {"tiny": (1000.0, 1.0), "small": (8000.0, 8.0)}  # model -> (num_params, cost)


def _pool_file(path, n_mix=30, seed=0, model=True):
    W = np.random.default_rng(seed).dirichlet(np.ones(len(DOMS)), n_mix)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", *("w/" + d for d in DOMS), "num_params", "cost"] + (["model"] if model else []))
        for name, (params, cost) in SIZES.items():
            for i, row in enumerate(W):
                w.writerow([f"{name}-{i}", *row, params, cost] + ([name] if model else []))
    return W


def _true_loss(W, params):
    params = np.broadcast_to(np.asarray(params, float), (len(W),))
    large = params[:, None] > 5000  # the large size's optimum (0.6, 0.3, 0.1); the small size prefers another mixture
    target = np.where(large, np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.3, 0.5]))
    return 3.0 - 0.3 * np.log(params / 1000) / np.log(8) + 2.0 * ((W - target) ** 2).sum(axis=1)


def _table_file(path, W, params):
    L = _true_loss(W, params)
    L = np.repeat(L[:, None], len(DOMS), axis=1)
    t = make_table(DOMS, DOMS, [f"r{i}" for i in range(len(W))], np.full(len(W), 100.0), W, L, num_params=params)
    write_table(t, str(path))


def test_first_batch_mixes_sizes_and_groups_by_model(tmp_path, capsys):
    pool_path = tmp_path / "pool.csv"
    _pool_file(pool_path)
    assert pool_kind(str(pool_path)) == "multi"
    files = write_first(read_sized_pool(str(pool_path)), 6, str(tmp_path / "r0"), seed=3)
    assert len(files) == 6
    rows = list(csv.DictReader(open(tmp_path / "r0" / "next.csv")))
    assert [r["model"] for r in rows].count("small") == 2 and len({r["run"] for r in rows}) == 6  # ceil(0.2 x 6)
    got = dict(groups(str(tmp_path / "r0")))
    assert sorted(got) == ["small", "tiny"] and len(got["tiny"]) == 4
    for model, paths in got.items():  # each file is a trainable weights file of a row of that model
        for p in paths:
            assert sum(read_weights_file(p).values()) == pytest.approx(1.0)
    loop_main(["groups", str(tmp_path / "r0")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert {ln.split()[0] for ln in lines} == {"small", "tiny"} and all(len(ln.split()[1].split(",")) in (2, 4) for ln in lines)


def test_recommendation_is_for_the_largest_size_and_plots(tmp_path):
    pool_path = tmp_path / "pool.csv"
    W = _pool_file(pool_path, n_mix=40, seed=1)
    rng = np.random.default_rng(2)
    small = W[rng.choice(40, 14, replace=False)]
    large = W[rng.choice(40, 5, replace=False)]
    Wt = np.vstack([small, large])
    params = np.r_[np.full(14, 1000.0), np.full(5, 8000.0)]
    _table_file(tmp_path / "table.csv", Wt, params)
    (tmp_path / "round-0").mkdir()
    doc = recommend(str(tmp_path / "table.csv"), str(pool_path), str(tmp_path / "round-0" / "weights.yaml"))
    rec = np.array([doc["weights"][d] for d in DOMS])
    assert doc["proposal"]["model"] == "small" and doc["proposal"]["num_params"] == 8000.0
    assert any(np.allclose(rec, w) for w in W)  # a pool row at the largest size
    true_large = _true_loss(W, 8000.0)
    assert _true_loss(rec[None], 8000.0)[0] < np.median(true_large)  # better than a typical pool row
    assert read_weights_file(tmp_path / "round-0" / "weights.yaml") == pytest.approx(doc["weights"])
    (row,) = read_rounds(str(tmp_path))
    assert row["proposal"][1] <= row["proposal"][0] <= row["proposal"][2] and row["runs"] == 19


@pytest.mark.slow
def test_next_batch_from_a_sized_pool_groups_by_model(tmp_path):
    """`proxy --next` on a sized pool (the multi-fidelity GP, ~50 s on 2 shared cores) -> rows grouped by model."""
    pool_path = tmp_path / "pool.csv"
    W = _pool_file(pool_path, n_mix=40, seed=1)
    rng = np.random.default_rng(2)
    Wt = np.vstack([W[rng.choice(40, 14, replace=False)], W[rng.choice(40, 5, replace=False)]])
    _table_file(tmp_path / "table.csv", Wt, np.r_[np.full(14, 1000.0), np.full(5, 8000.0)])
    search_main(["--next", "3", "--table", str(tmp_path / "table.csv"), "--pool", str(pool_path),
                 "--out", str(tmp_path / "next")])
    chosen = list(csv.DictReader(open(tmp_path / "next" / "next.csv")))
    assert len(chosen) == 3 and all(r["model"] in SIZES for r in chosen)
    assert sum(len(f) for _, f in groups(str(tmp_path / "next"))) == 3


def test_loop_errors_name_the_file_and_column(tmp_path):
    bad = tmp_path / "nomodel.csv"
    _pool_file(bad, model=False)
    with pytest.raises(DataError, match=r"nomodel\.csv.*'model' column"):
        pool_kind(str(bad))
    single = tmp_path / "single.csv"
    single.write_text("w/a,w/b,w/c\n0.2,0.3,0.5\n")
    assert pool_kind(str(single)) == "single"
    with pytest.raises(DataError, match=r"single\.csv: no 'num_params' column"):
        write_first(read_pool_single(single), 2, str(tmp_path / "x"))
    pool_path = tmp_path / "pool.csv"
    _pool_file(pool_path, n_mix=3)
    with pytest.raises(ConfigError, match=r"--num-runs 9: the pool .*pool\.csv has 3 rows at the cheapest"):
        write_first(read_sized_pool(str(pool_path)), 9, str(tmp_path / "y"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty/next\.csv: missing"):
        groups(str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match="search_loop recommend: --pool .*single.csv: no 'num_params'"):
        _table_file(tmp_path / "t.csv", np.full((2, 3), 1 / 3), np.full(2, 1000.0))
        loop_main(["recommend", "--table", str(tmp_path / "t.csv"), "--pool", str(single), "--out", str(tmp_path / "w.yaml")])


def read_pool_single(path):
    from types import SimpleNamespace

    from mixtrain.fitting.search import read_pool

    return read_pool(str(path), SimpleNamespace(train_domains=DOMS, source="t", num_params=None))


def _preset_params(model: str, data_dir, overrides: list[str]) -> int:
    """num_params as `mixtrain collect` counts it for a conf/model preset (non-embedding, the data's vocabulary)."""
    import json
    from pathlib import Path

    import torch
    from hydra import compose, initialize_config_dir

    from mixtrain.model.gpt import GPT, GPTConfig

    repo = Path(__file__).resolve().parents[2]
    preset, *extra = model.split(";")
    with initialize_config_dir(config_dir=str(repo / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=proxy", *overrides, f"model={preset}", *extra])
    kw = {k: v for k, v in cfg.model.items() if k != "_target_"}
    kw["vocab_size"] = kw.get("vocab_size") or json.load(open(Path(data_dir) / "manifest.json"))["vocab_size"]
    kw["seq_len"] = int(kw.get("seq_len") or cfg.seq_len)
    with torch.device("meta"):
        return int(GPT(GPTConfig(**kw)).num_params(non_embedding=True))


@pytest.mark.slow
def test_round_loop_trains_the_size_each_row_names(tiny_data_dir, tmp_path):
    """launch/proxy_sweep.sh with a sized pool: round 0 and round 1 train at the size each row names (a preset, or a
    preset with overrides: tiny with 1 layer vs tiny's 4), every
    round's weights.yaml is the recommendation for the largest size, and a rerun after a crash resumes."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    tiny = ["prepare_if_missing=false", "seq_len=32", "batch_size=4", "trainer.max_steps=12",
            "trainer.val_check_interval=3", "val_blocks_per_domain=4"]
    doms = json.load(open(Path(tiny_data_dir) / "manifest.json"))["domains"]
    sizes = {"tiny;model.n_layer=1": "tiny_model.n_layer_1", "tiny": "tiny"}  # model column -> its runs' folder
    params = {m: _preset_params(m, tiny_data_dir, tiny) for m in sizes}
    assert params["tiny"] > 2 * params["tiny;model.n_layer=1"]
    W = np.random.default_rng(0).dirichlet(np.ones(len(doms)), 12)
    pool = tmp_path / "pool.csv"
    with open(pool, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", *(f"w/{d}" for d in doms), "num_params", "model"])
        for m in sizes:
            for i, row in enumerate(W):
                w.writerow([f"{sizes[m]}-{i}", *row, params[m], m])
    out = tmp_path / "search"
    env = {**os.environ, "PYTHON": sys.executable, "ROUNDS": "1", "PER_ROUND": "2", "POOL": str(pool),
           "WANDB_MODE": "offline", "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)}
    cmd = ["bash", "launch/proxy_sweep.sh", str(tiny_data_dir), str(out), "5", *tiny]  # ridge (--next) needs >= 4 runs
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert len(list((out / "runs" / "round-0" / "tiny").glob("*/summary.json"))) == 1  # ceil(5 / 5) large
    assert len(list((out / "runs" / "round-0" / sizes["tiny;model.n_layer=1"]).glob("*/summary.json"))) == 4
    nxt = list(csv.DictReader(open(out / "round-1" / "next" / "next.csv")))
    for m in {r["model"] for r in nxt}:  # round 1 trained each chosen row at the size it names
        assert len(list((out / "runs" / "round-1" / sizes[m]).glob("*/summary.json"))) == sum(r["model"] == m for r in nxt)
    table = list(csv.DictReader(open(out / "table.csv")))
    assert {float(r["num_params"]) for r in table} <= {float(v) for v in params.values()}
    rec = yaml.safe_load(open(out / "weights.yaml"))
    assert rec["proposal"]["model"] == "tiny" and sum(rec["weights"].values()) == pytest.approx(1.0)
    assert [r["round"] for r in read_rounds(str(out))] == [0, 1] and (out / "rounds.png").exists()
    (out / "runs" / "round-1" / ".done").unlink()  # a crash in round 1: the rerun skips round 0
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0 and "round 0: runs done, skipped" in proc.stdout, proc.stderr[-3000:]
