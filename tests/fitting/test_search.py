"""Sequential proxy search (`mixtrain proxy --next K`): the batch, the pool's run column, multi-fidelity,
and every refusal naming its file and column."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from mixtrain.errors import ConfigError, DataError
from mixtrain.fitting import proxy
from mixtrain.fitting.search import read_pool, search
from mixtrain.laws import make_law
from mixtrain.laws.optim.acquisition import draw_pool, next_batch
from mixtrain.laws.synthetic import World
from mixtrain.laws.table import make_table, read_table, write_table


def _world_table(tmp_path, n=16, k=4, seed=0):
    w = World(k, seed)
    t = w.proxy_table(n, seed=seed)
    path = tmp_path / "table.csv"
    write_table(t, str(path))
    return w, read_table(str(path)), path


def _write_pool(path, domains, W, extra=None):
    extra = extra or {}
    with open(path, "w", newline="") as f:
        cols = ["run"] + [f"w/{d}" for d in domains] + list(extra)
        wr = csv.writer(f)
        wr.writerow(cols)
        for i, r in enumerate(W):
            wr.writerow([f"pool{i:03d}"] + [repr(float(x)) for x in r] + [v[i] for v in extra.values()])


@pytest.mark.parametrize("method", ["thompson", "climb", "qei"])
def test_next_batch_exploits_and_explores(tmp_path, method):
    """The batch is distinct, new, better than the pool on average under the truth, and spends some runs
    on coverage (the farthest pool mixtures from the runs)."""
    w, table, _ = _world_table(tmp_path, n=16, k=4)
    law = make_law("ridge").fit(table, cv_folds=0)
    pool = draw_pool(law, 4000, np.random.default_rng(1))
    b = next_batch(law, pool, 8, step=w.s_ref, method=method, seed=0)
    assert len(set(b.index)) == 8 and sum(r.startswith("explore") for r in b.reason) == 2
    truth = np.array([w.mean_loss(pool[i]) for i in range(0, len(pool), 10)])
    exploit = [w.mean_loss(pool[i]) for i, r in zip(b.index, b.reason) if not r.startswith("explore")]
    assert np.mean(exploit) < np.median(truth)
    obs = table.W[table.final_rows()]
    for i in b.index:
        assert 0.5 * np.abs(obs - pool[i]).sum(axis=1).min() >= 0.02  # no duplicate of a run


def test_proxy_next_cli_keeps_the_pool_run_column(tmp_path, capsys):
    w, table, tpath = _world_table(tmp_path, n=12, k=4)
    pool_W = np.random.default_rng(3).dirichlet(np.ones(4), 40)
    _write_pool(tmp_path / "pool.csv", table.train_domains, pool_W)
    proxy.main(["--next", "5", "--table", str(tpath), "--pool", str(tmp_path / "pool.csv"), "--out", str(tmp_path / "next")])
    paths = capsys.readouterr().out.strip().split(",")
    rows = list(csv.DictReader(open(tmp_path / "next" / "next.csv")))
    assert len(rows) == len(paths) == 5 and all(r["run"].startswith("pool") for r in rows)
    for r, p in zip(rows, paths):
        i = int(r["run"][4:])
        weights = yaml.safe_load(open(p))["weights"]
        np.testing.assert_allclose(list(weights.values()), pool_W[i] / pool_W[i].sum(), atol=1e-12)
        assert r["run"] in p


def test_errors_name_file_and_column(tmp_path):
    w, table, tpath = _world_table(tmp_path, n=10, k=4)
    bad = tmp_path / "pool_doms.csv"
    _write_pool(bad, ["d00", "d01", "d02", "xx"], np.full((5, 4), 0.25))
    with pytest.raises(DataError, match=r"pool_doms\.csv.*w/xx"):
        read_pool(str(bad), table)
    small = tmp_path / "pool_small.csv"
    _write_pool(small, table.train_domains, np.random.default_rng(0).dirichlet(np.ones(4), 3))
    with pytest.raises(ConfigError, match=r"--next 5: the pool .*pool_small\.csv has 3 rows"):
        search(table, 5, pool=read_pool(str(small), table))
    text = open(tpath).read().splitlines()
    nan = tmp_path / "nan.csv"
    nan.write_text("\n".join([text[0], text[1].rsplit(",", 1)[0] + ",nan", *text[2:]]) + "\n")
    with pytest.raises(SystemExit, match=r"nan\.csv line 2.*loss/d03"):
        proxy.main(["--next", "2", "--table", str(nan), "--out", str(tmp_path / "o")])
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([*text, text[1]]) + "\n")
    with pytest.raises(SystemExit, match=r"dup\.csv.*run"):
        proxy.main(["--next", "2", "--table", str(dup), "--out", str(tmp_path / "o")])
    mf = tmp_path / "pool_mf.csv"
    _write_pool(mf, table.train_domains, np.full((4, 4), 0.25), {"num_params": ["1e6", "1e6", "1e7", "1e7"]})
    with pytest.raises(DataError, match=r"table\.csv.*'num_params'"):
        read_pool(str(mf), table)


def test_multi_fidelity_chooses_size_and_recommends_at_the_largest(tmp_path):
    """A pool at 3 sizes (costs 1, 4, 16): the GP (BoTorch multi-fidelity) picks rows at some size, explores at
    the cheapest, and recommends a mixture at the largest size."""
    w = World(3, 2)
    rng = np.random.default_rng(0)
    sizes, costs = [1e6, 4e6, 16e6], [1.0, 4.0, 16.0]
    W = rng.dirichlet(np.ones(3), 30)
    runs, L, npar = [], [], []
    for s, n in enumerate(sizes[:2] + [sizes[2]]):
        take = W[: (8 if s < 2 else 3)]
        for i, r in enumerate(take):
            runs.append(f"s{s}-{i}")
            L.append(w.loss(r[None], np.array([w.s_ref]))[0] + 0.3 * (2 - s))  # smaller: higher loss
            npar.append(n)
    Wt = np.vstack([W[:8], W[:8], W[:3]])
    table = make_table(w.domains, w.domains, runs, np.full(len(runs), 100.0), Wt, np.array(L), num_params=npar)
    pool_W = np.vstack([W, W, W])
    _write_pool(tmp_path / "pool.csv", w.domains, pool_W,
                {"num_params": [repr(n) for n in sizes for _ in W], "cost": [repr(c) for c in costs for _ in W]})
    pool = read_pool(str(tmp_path / "pool.csv"), table)
    batch, C, _, rec = search(table, 4, pool=pool)
    assert len(set(batch.index)) == 4 and "multi-fidelity" in batch.reason[0]
    chosen_sizes = [float(pool.rows[i]["num_params"]) for i in batch.index]
    assert chosen_sizes[-1] == 1e6  # exploration at the cheapest size
    trained = {(round(float(n)), tuple(np.round(r, 9))) for n, r in zip(npar, Wt)}
    assert all((round(float(pool.rows[i]["num_params"])), tuple(np.round(pool_W[i], 9))) not in trained for i in batch.index)
    assert float(pool.rows[rec["row"]]["num_params"]) == 16e6 and np.isfinite(rec["predicted_mean_loss"])
