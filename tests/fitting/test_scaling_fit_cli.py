"""`mixtrain.fitting.fit --law scaling` on a table with num_params and tokens columns, and `--optimize --params N
--tokens D` at a size and budget nobody trained (laws/scaling_mixing.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from laws.test_scaling_law import DOMAINS, MIXTURES, _true_loss

from mixtrain.fitting.fit import main as fit_main
from mixtrain.laws import LAWS, fit_law, load_law
from mixtrain.laws.table import make_table, read_table, write_table

SIZES = [3e6, 1e7, 3e7, 1e8]  # four: the largest is the held-out size
STEPS = [300, 1000, 3000, 10000]
TOKENS_PER_STEP = 1e6


def _table():
    runs, steps, W, L, tok, npar = [], [], [], [], [], []
    for n in SIZES:
        for i, h in enumerate(MIXTURES):
            for s in STEPS:
                runs.append(f"n{n:g}-mix{i}"), steps.append(s), W.append(h), tok.append(s * TOKENS_PER_STEP)
                npar.append(n), L.append(_true_loss(n, s * TOKENS_PER_STEP, h))
    return make_table(DOMAINS, DOMAINS, runs, steps, W, L, tok, num_params=npar)


@pytest.fixture(scope="module")
def law_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaling")
    write_table(_table(), str(tmp / "T.csv"))
    assert read_table(str(tmp / "T.csv")).num_params.tolist() == _table().num_params.tolist()  # the column round-trips
    fit_main(["--table", str(tmp / "T.csv"), "--law", "scaling", "--out", str(tmp / "law.json")])
    return tmp / "law.json"


def test_scaling_is_registered_fits_and_checks_a_held_out_size(law_file, capsys):
    assert "scaling" in LAWS
    report = json.loads(law_file.read_text())["report"]
    assert report["mean_r2"] > 0.999
    held = report["held_out_size"]
    assert held["size"] == max(SIZES) and held["mean_mre"] < 0.01  # exact data: the 1e8 model from three smaller
    law = load_law(str(law_file))
    W = np.array(MIXTURES[:2])
    want = np.array([_true_loss(3e9, 1e12, h) for h in W])  # far outside the fitted sizes and budgets
    assert law.predict_at(3e9, 1e12, W) == pytest.approx(want, rel=2e-3)
    zero = law.predict(np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]), [1000, 1000])  # a domain at weight 0
    assert np.all(np.isfinite(zero)) and np.all(zero > 0)


def test_auto_does_not_consider_scaling_even_with_num_params():
    table = _table()
    law = fit_law(table.subset(table.steps == 10000), "auto", cv_folds=2)
    assert law.name != "scaling"
    assert "not an auto candidate" in law.report["auto"]["candidates"]["scaling"]["error"]


def test_scaling_needs_the_size_columns():
    t = _table()
    plain = type(t)(t.train_domains, t.eval_domains, t.runs, t.steps, t.W, t.L, t.tokens, t.source)
    with pytest.raises(ValueError, match="no num_params column"):
        LAWS["scaling"]().fit(plain)


def test_optimize_at_an_untrained_size_reports_the_loss_there(law_file, tmp_path, capsys):
    outs = {}
    for n, d in ((1e9, 1e11), (3e7, 3e9)):
        out = tmp_path / f"w{n:g}.yaml"
        fit_main(["--law-file", str(law_file), "--optimize", "--params", f"{n:g}", "--tokens", f"{d:g}",
                  "--candidates", "3000", "--bootstrap", "2", "--force-proposal", "--out", str(out)])
        text = out.read_text()
        outs[n] = yaml.safe_load(text)["proposal"]["proposal"]
        line = next(x for x in text.splitlines() if x.startswith("# predicted val loss"))
        got = {kv.split("=")[0]: float(kv.split("=")[1]) for kv in line.split(": ", 1)[1].split()}
        w = yaml.safe_load(text)["weights"]
        want = _true_loss(n, d, [w[k] for k in DOMAINS])
        assert [got[k] for k in DOMAINS] == pytest.approx(want, rel=2e-3)  # the loss at (N, D), not at a fitted size
        assert "does not depend on N or D" in text
    # the additive form: the same mixture at every size and budget (same seed, same candidates)
    assert outs[1e9] == pytest.approx(outs[3e7], abs=1e-9)
    with pytest.raises(SystemExit, match="knows no model size"):
        bimix = tmp_path / "bimix.json"
        fit_main(["--table", str(law_file.parent / "T.csv"), "--folds", "0", "--out", str(bimix)])
        fit_main(["--law-file", str(bimix), "--optimize", "--params", "1e9", "--tokens", "1e11", "--out",
                  str(tmp_path / "x.yaml")])


def test_predict_at_a_model_size_and_refuse_a_step_that_contradicts_tokens(law_file, tmp_path):
    mix = tmp_path / "mix.csv"
    mix.write_text("w/code,w/prose,w/web,step\n" + ",".join(map(str, MIXTURES[0])) + ",100000\n")
    fit_main(["--law-file", str(law_file), "--predict", str(mix), "--params", "1e9", "--out", str(tmp_path / "p.csv")])
    row = (tmp_path / "p.csv").read_text().splitlines()[1].split(",")
    want = _true_loss(1e9, 100000 * TOKENS_PER_STEP, MIXTURES[0])
    assert [float(x) for x in row[-3:]] == pytest.approx(want, rel=2e-3)
    with pytest.raises(SystemExit, match="is not --tokens"):
        fit_main(["--law-file", str(law_file), "--optimize", "--step", "1000", "--tokens", "1e11", "--out",
                  str(tmp_path / "w.yaml")])
