"""CLIs: collect (metrics.csv -> table) and fit (fit -> predict -> optimize -> weights.yaml)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mixtrain.fitting import collect as collect_mod
from mixtrain.fitting import fit as fit_mod
from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table
from mixtrain.laws.table import read_table, write_table

DOMAINS = ["code", "prose", "web"]
ALPHA, B, BETA, C = np.array([0.1, 0.2, 0.15]), np.array([20.0, 10.0, 30.0]), np.array([0.5, 0.3, 0.6]), np.array([2.0, 2.5, 1.8])


def loss(W, s):
    return (W + 1e-3) ** -ALPHA * (B * s[:, None] ** -BETA + C)


def write_metrics(run_dir, weights, steps, *, val_every=2, resumed_at=None):
    """A metrics.csv like loggers.py writes: train rows, val rows every `val_every` steps, mix/ on some rows."""
    os.makedirs(run_dir, exist_ok=True)
    cols = (["step", "tokens", "train/loss", "val/loss"] + [f"mix/{d}" for d in DOMAINS]
            + [f"mix/tokens/{d}" for d in DOMAINS] + [f"val/{d}/loss" for d in DOMAINS])
    rows = []
    order = list(steps) + ([s for s in steps if s >= resumed_at] if resumed_at else [])
    for n, s in enumerate(order):
        row = {"step": s, "tokens": s * 1000, "train/loss": 3.0}
        if n == 0 or s % 3 == 0:  # weights logged on some rows only
            row.update({f"mix/{d}": f"{w:.6f}" for d, w in zip(DOMAINS, weights)})
        if s % val_every == 0:
            L = loss(np.array([weights]), np.array([float(max(s, 1))]))[0]
            if resumed_at and s >= resumed_at and n >= len(steps):
                L = L * 0.99  # the resumed run's re-logged value wins
            row.update({f"val/{d}/loss": v for d, v in zip(DOMAINS, L)})
            row["val/loss"] = float(np.mean(L))
        rows.append(row)
    with open(os.path.join(run_dir, "metrics.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def test_collect_two_runs(tmp_path):
    write_metrics(tmp_path / "run_a", [0.5, 0.3, 0.2], range(0, 11))
    write_metrics(tmp_path / "run_b", [0.1, 0.6, 0.3], range(0, 11), resumed_at=6)
    out = tmp_path / "T.csv"
    collect_mod.main([str(tmp_path / "run_a"), str(tmp_path / "run_b"), "--out", str(out)])
    t = read_table(str(out))
    assert t.run_names == ["run_a", "run_b"]
    assert t.train_domains == tuple(DOMAINS) and t.eval_domains == tuple(DOMAINS)
    a = t.runs == "run_a"
    assert t.steps[a].tolist() == [2, 4, 6, 8, 10]  # step 0 dropped, rows without val skipped
    np.testing.assert_allclose(t.W[a][0], [0.5, 0.3, 0.2])
    np.testing.assert_allclose(t.tokens[a], [2000, 4000, 6000, 8000, 10000])
    b = t.runs == "run_b"
    expected = loss(np.array([[0.1, 0.6, 0.3]]), np.array([8.0]))[0] * 0.99  # resumed value kept
    np.testing.assert_allclose(t.L[b][t.steps[b] == 8][0], expected)

    collect_mod.main([str(tmp_path / "run_a"), str(tmp_path / "run_b"), "--out", str(out), "--final-only"])
    t = read_table(str(out))
    assert t.n_rows == 2 and t.steps.tolist() == [10, 10]
    collect_mod.main([str(tmp_path / "run_a"), "--out", str(out), "--every", "4"])
    assert read_table(str(out)).steps.tolist() == [4, 8]


def test_collect_hydra_multirun_folder(tmp_path):
    for i, w in enumerate([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]):
        write_metrics(tmp_path / "multirun" / "2026-01-01" / "12-00-00" / str(i), w, range(1, 7))
    os.makedirs(tmp_path / "multirun" / "2026-01-01" / "12-00-00" / ".hydra")
    t = collect_mod.collect([str(tmp_path / "multirun")])
    assert t.run_names == ["0", "1"] and t.n_rows == 6


def test_collect_errors(tmp_path):
    with pytest.raises(ValueError, match="no metrics.csv in it or below it"):
        collect_mod.collect([str(tmp_path)])
    write_metrics(tmp_path / "a", [0.5, 0.3, 0.2], range(1, 5))
    os.makedirs(tmp_path / "b")
    (tmp_path / "b" / "metrics.csv").write_text("step,mix/code,val/code/loss\n2,1.0,3.0\n")
    with pytest.raises(ValueError, match="domains differ"):
        collect_mod.collect([str(tmp_path / "a"), str(tmp_path / "b")])


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    t = synthetic_table(loss, dirichlet_mixtures(3, 8, seed=1), [100, 200, 400, 800, 1600], DOMAINS, noise=0.002)
    path = d / "T.csv"
    write_table(t, str(path))
    return d, path


def test_fit_predict_optimize_end_to_end(table_csv, capsys):
    d, table = table_csv
    law_json, plots = d / "law.json", d / "plots"
    fit_mod.main(["--table", str(table), "--law", "bimix", "--out", str(law_json), "--plot", str(plots)])
    out = capsys.readouterr().out
    assert "CV-rho" in out and "code" in out and "mean" in out
    # what choosing a mixture depends on, next to the parameter-free own-weight baseline
    assert "own-rho" in out and "top-1 regret" in out and "mixture choice over 8 held-out runs" in out
    saved = json.loads(law_json.read_text())
    assert saved["law"] == "bimix" and saved["report"]["cv"]["folds"] == 5
    assert sorted(os.listdir(plots)) == ["code.png", "prose.png", "web.png"]

    mix = d / "mix.csv"
    mix.write_text("name,w/code,w/prose,w/web\nfirst,0.2,0.3,0.5\nzero,1,0,0\n")
    pred = d / "pred.csv"
    fit_mod.main(["--law-file", str(law_json), "--predict", str(mix), "--step", "1000", "--out", str(pred)])
    rows = list(csv.DictReader(open(pred)))
    assert list(rows[0]) == ["name", "w/code", "w/prose", "w/web", "step", "loss/code", "loss/prose", "loss/web"]
    got = np.array([[float(r[f"loss/{x}"]) for x in DOMAINS] for r in rows])
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[0], loss(np.array([[0.2, 0.3, 0.5]]), np.array([1000.0]))[0], rtol=0.01)

    weights_yaml = d / "weights.yaml"
    # the real entry point, as a user runs it: the default optimiser is the sampled, bootstrap-robust one
    proc = subprocess.run(
        [sys.executable, "-m", "mixtrain.fitting.fit", "--law-file", str(law_json), "--optimize", "--step", "5000",
         "--importance", "code=2,prose=1", "--min-weight", "0.05", "--max-weight", "web=0.3", "--candidates", "20000",
         "--natural", "code=1,prose=2,web=1", "--out", str(weights_yaml)],
        check=True, capture_output=True, text=True,
    )
    text = weights_yaml.read_text()
    assert text.startswith("# written by: python -m mixtrain.fitting.fit")
    from mixtrain.mixing.static import read_weights_file  # the manual strategy's reader

    weights = read_weights_file(str(weights_yaml))
    assert list(weights) == DOMAINS
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    import yaml

    # the bootstrap report, in the file's comments, its metadata and on the console
    meta = yaml.safe_load(text)["proposal"]
    assert meta["optimizer"] == "sampled" and meta["bootstrap"] == 20 and meta["n_candidates"] >= 20000
    pred = meta["predicted_mean_loss"]
    assert {"proposal", "uniform", "natural"} <= set(pred) and any(k.startswith("run ") for k in pred)
    for v in pred.values():
        assert v["lo"] <= v["hi"]
    diff = meta["proposal_minus_uniform"]
    assert diff["lo"] <= diff["mean"] <= diff["hi"]
    prop = meta["proposal"]
    assert min(prop.values()) >= 0.05 - 1e-9 and prop["web"] <= 0.3 + 1e-9  # floors and caps hold
    for line in ("# predicted mean loss at step 5000", "#   proposal ", "#   uniform ", "#   natural ",
                 "# proposal - uniform:", "# written: "):
        assert line in text, line
        assert "fit: " + line[2:] in proc.stdout, line
    # web's cap 0.3 < 1/3: the step is taken from uniform made to respect the floors and caps
    t = meta["shrink"]["t"]
    assert 0 <= t <= 1 and meta["shrink"]["quantile"] == 0.6
    assert meta["chosen"] == {0: "uniform within --min-weight/--max-weight", 1: "proposal"}.get(t, f"blend {t:g}")
    assert min(weights.values()) >= 0.05 - 1e-9 and weights["web"] <= 0.3 + 1e-9
    assert "# shrinkage: " in text and "fit: shrinkage: " in proc.stdout
    # the former gradient optimiser, by flag; its support limits are still explicit
    fit_mod.main(["--law-file", str(law_json), "--optimize", "--optimizer", "slsqp", "--step", "5000",
                  "--min-weight", "0.05", "--max-weight", "web=0.3", "--out", str(weights_yaml)])
    text = weights_yaml.read_text()
    assert "# TV to the nearest observed mixture:" in text and "# active constraints:" in text
    meta = yaml.safe_load(text)["optimum"]
    assert meta["trust_radius"] == 0.25 and meta["support_margin"] == 0.05
    assert 0 <= meta["tv_to_nearest_observed"] <= 0.25 + 1e-6 and meta["nearest_run"].startswith("run")
    assert isinstance(meta["active_constraints"], list)
    free_yaml = d / "free.yaml"
    fit_mod.main(["--law-file", str(law_json), "--optimize", "--optimizer", "slsqp", "--step", "5000",
                  "--importance", "code=50", "--support-margin", "none", "--trust-radius", "none", "--out", str(free_yaml)])
    fit_mod.main(["--law-file", str(law_json), "--optimize", "--optimizer", "slsqp", "--step", "5000",
                  "--importance", "code=50", "--trust-radius", "0.01", "--out", str(weights_yaml)])
    out = capsys.readouterr().out
    free, tight = yaml.safe_load(free_yaml.read_text())["optimum"], yaml.safe_load(weights_yaml.read_text())["optimum"]
    assert free["trust_radius"] is None and free["support_margin"] is None
    assert tight["tv_to_nearest_observed"] <= 0.01 + 1e-6 < free["tv_to_nearest_observed"]
    assert "trust region TV <= 0.01" in tight["active_constraints"] and "fit: active constraints:" in out


def test_fit_auto_and_cli_errors(table_csv, capsys):
    d, table = table_csv
    fit_mod.main(["--table", str(table), "--out", str(d / "auto.json"), "--folds", "3", "--law", "auto"])
    assert "auto: chose" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="fit: .*has no 'step' column: pass --step"):
        (d / "nostep.csv").write_text("w/code,w/prose,w/web\n1,1,1\n")
        fit_mod.main(["--law-file", str(d / "auto.json"), "--predict", str(d / "nostep.csv"), "--out", str(d / "p.csv")])
    with pytest.raises(SystemExit, match="fit: .*minimum weights sum to 1.5 > 1"):
        fit_mod.main(["--law-file", str(d / "auto.json"), "--optimize", "--step", "10", "--min-weight", "0.5",
                      "--out", str(d / "w.yaml")])
    small = synthetic_table(loss, dirichlet_mixtures(3, 3, seed=2), [100, 200, 400], DOMAINS)
    write_table(small, str(d / "small.csv"))
    with pytest.raises(SystemExit, match=r"fit: exp: .*3 distinct mixture\(s\); this law needs at least 5"):
        fit_mod.main(["--table", str(d / "small.csv"), "--law", "exp", "--out", str(d / "x.json")])
