"""Eval-only domains and the target loss: kept out of sampling and weights, validated, collected, fitted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mixtrain.fitting.collect import collect
from mixtrain.fitting.fit import main as fit_main
from mixtrain.train.target import target_importance, target_loss
from conftest import train_composed as train

CONF = str(Path(__file__).resolve().parents[2] / "conf")
TARGET = "tables"  # the fixture's domain used as the eval-only target


def test_target_importance_default_named_and_unknown():
    assert target_importance(None, ["a", "b"], ["a", "b", "t"]) == {"a": 0.5, "b": 0.5}
    assert target_importance({"t": 3, "a": 1}, ["a", "b"], ["a", "b", "t"]) == {"a": 0.25, "t": 0.75}
    with pytest.raises(ValueError, match="'x' is not a validated domain"):
        target_importance({"x": 1}, ["a"], ["a", "t"])
    assert target_loss({"a": 2.0, "t": 4.0}, {"a": 0.25, "t": 0.75}) == pytest.approx(3.5)
    assert target_loss({"a": 2.0}, {"a": 0.25, "t": 0.75}) is None


def test_target_loss_is_the_one_definition_for_floats_and_the_modules_tensors():
    import torch

    losses = {"a": torch.tensor(2.0), "b": torch.tensor(9.0), "t": torch.tensor(4.0)}
    value = target_loss(losses, {"a": 0.25, "b": 0.0, "t": 0.75})  # as module.py logs val/target
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float32 and float(value) == pytest.approx(3.5)
    assert target_loss({"a": torch.tensor(2.0), "b": None}, {"a": 1.0, "b": 0.0}) == torch.tensor(2.0)
    assert target_loss({"a": None}, {"a": 1.0}) is None


@pytest.fixture(scope="module")
def eval_only_runs(tiny_data_dir, tmp_path_factory):
    """Two short runs (uniform, natural) that never train on TARGET but validate on it."""
    root = tmp_path_factory.mktemp("eval_only")
    summaries = {}
    for mixing in ("uniform", "natural"):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=[
                "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={root / mixing}", "prepare_if_missing=false",
                "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false", f"mixing={mixing}",
                "trainer.max_steps=6", "trainer.val_check_interval=2", f"eval_only_domains=[{TARGET}]",
                f"target.importance={{{TARGET}: 3, code: 1}}",
            ])
        summaries[mixing] = train(cfg)
    return root, summaries


def _rows(run_dir) -> list[dict[str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_eval_only_domain_is_never_sampled_but_validated(eval_only_runs, tiny_data_dir):
    root, summaries = eval_only_runs
    domains = json.loads((Path(tiny_data_dir) / "manifest.json").read_text())["domains"]
    training = [d for d in domains if d != TARGET]
    for mixing, summary in summaries.items():
        rows = _rows(root / mixing)
        header = rows[0].keys()
        assert f"val/{TARGET}/loss" in header
        assert not [c for c in header if c in (f"mix/{TARGET}", f"mix/tokens/{TARGET}", f"train/{TARGET}/loss")]
        assert set(summary["initial_weights"]) == set(training)  # natural's weights: training tokens only
        assert set(summary["passes"]) == set(training)
        assert summary["tokens"] == sum(summary["final"][f"mix/tokens/{d}"] for d in training) == 6 * 4 * 32
        val_rows = [r for r in rows if r[f"val/{TARGET}/loss"]]
        assert [int(float(r["step"])) for r in val_rows] == [2, 4, 6]
        for r in val_rows:  # val/loss: training domains only; val/target: importance 3:1 of tables:code
            per = {d: float(r[f"val/{d}/loss"]) for d in domains}
            assert float(r["val/loss"]) == pytest.approx(sum(per[d] for d in training) / len(training), rel=1e-5)
            assert float(r["val/target"]) == pytest.approx(0.75 * per[TARGET] + 0.25 * per["code"], rel=1e-5)
        assert summary["target_importance"] == {"code": 0.25, TARGET: 0.75}
        assert summary["final"]["val/target"] == pytest.approx(float(val_rows[-1]["val/target"]), rel=1e-5)


def test_unknown_eval_only_domain_names_the_fix(tiny_data_dir, tmp_path):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'r'}", "prepare_if_missing=false",
            "eval_only_domains=[legal]",
        ])
    with pytest.raises(ValueError, match="'legal' is not a domain of .*prepare the eval text"):
        train(cfg)


def test_collect_and_fit_with_an_eval_only_domain(eval_only_runs, tmp_path):
    root, _ = eval_only_runs
    table = collect([str(root)])
    assert TARGET in table.eval_domains and TARGET not in table.train_domains
    assert table.n_runs == 2 and table.W.shape[1] == len(table.train_domains)
    assert TARGET not in collect([str(root)], training_domains_only=True).eval_domains

    from mixtrain.laws.table import write_table

    write_table(table, str(tmp_path / "table.csv"))
    header = (tmp_path / "table.csv").read_text().splitlines()[0].split(",")
    assert f"loss/{TARGET}" in header and f"w/{TARGET}" not in header
    with pytest.raises(SystemExit, match=f"{TARGET}.*not training domains"):  # bimix needs each domain's own weight
        fit_main(["--table", str(tmp_path / "table.csv"), "--law", "bimix", "--out", str(tmp_path / "b.json")])
    # a law relating every eval domain to all weights could fit it, but two runs cannot identify one:
    # the fit is refused and says how many runs it needs
    with pytest.raises(SystemExit, match=r"loglinear: 2 run\(s\) cannot identify .*need at least \d+ runs"):
        fit_main(["--table", str(tmp_path / "table.csv"), "--law", "loglinear", "--out", str(tmp_path / "law.json")])
    # with enough runs (more mixtures of the same domains, losses from a known law) it fits the eval-only
    # domain and optimises for the target alone
    import numpy as np

    from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table

    k, m = len(table.train_domains), len(table.eval_domains)
    effect = np.linspace(0.05, 0.2, k)[None, :] * np.ones((m, 1))

    def loss(W, s):
        return np.exp(1.0 + (-np.log(W + 1e-3)) @ effect.T - 0.1 * np.log(s)[:, None])  # more weight, lower loss

    more = synthetic_table(loss, dirichlet_mixtures(k, 12, seed=3), [2, 4, 6], table.train_domains,
                           eval_domains=table.eval_domains, noise=0.002)
    write_table(more, str(tmp_path / "more.csv"))
    fit_main(["--table", str(tmp_path / "more.csv"), "--law", "loglinear", "--out", str(tmp_path / "law.json")])
    importance = ",".join(f"{d}={1.0 if d == TARGET else 0.0}" for d in table.eval_domains)
    fit_main(["--law-file", str(tmp_path / "law.json"), "--optimize", "--step", "6", "--importance", importance,
              "--candidates", "5000", "--force-optimize", "--out", str(tmp_path / "weights.yaml")])
    import yaml

    saved = yaml.safe_load((tmp_path / "weights.yaml").read_text())
    weights = saved["weights"]
    assert set(weights) == set(table.train_domains) and sum(weights.values()) == pytest.approx(1.0)
    assert saved["proposal"]["predicted_mean_loss"]["proposal"]["full_fit"] > 0
