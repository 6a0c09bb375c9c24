"""`mixtrain fit --law ensemble`: fit, report, law.json, then --optimize from the file (laws/ensemble.py)."""

from __future__ import annotations

import json

import numpy as np
import yaml

from mixtrain.fitting import fit as fit_mod
from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table
from mixtrain.laws.table import write_table

DOMAINS = ["code", "prose", "web"]


def loss(W, s):
    return (W + 1e-3) ** -np.array([0.1, 0.2, 0.15]) * (np.array([20.0, 10.0, 30.0]) * s[:, None] ** -0.4 + 2.0)


def test_fit_ensemble_then_optimize(tmp_path, capsys):
    table = tmp_path / "T.csv"
    write_table(synthetic_table(loss, dirichlet_mixtures(3, 9, seed=1), [100, 400, 1600], DOMAINS, noise=0.002),
                str(table))
    fit_mod.main(["--table", str(table), "--law", "ensemble", "--folds", "3", "--out", str(tmp_path / "law.json")])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "law.json").read_text())
    weights = saved["config"]["weights"]
    assert saved["law"] == "ensemble" and set(saved["members"]) == set(weights) and len(weights) >= 2
    assert abs(sum(weights.values()) - 1) < 1e-9 and "ensemble: " in out
    fit_mod.main(["--law-file", str(tmp_path / "law.json"), "--optimize", "--step", "1600", "--candidates", "800",
                  "--bootstrap", "3", "--out", str(tmp_path / "w.yaml")])
    w = yaml.safe_load((tmp_path / "w.yaml").read_text())["weights"]
    assert set(w) == set(DOMAINS) and abs(sum(w.values()) - 1) < 1e-6
