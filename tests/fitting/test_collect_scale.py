"""collect's num_params column (from the run's model config, counted on the meta device) next to
the tokens column (num_tokens): the input of the law across model sizes (mixtrain/laws/scaling.py)."""

from __future__ import annotations

import json

import pytest
import yaml
from test_fit_cli import write_metrics

from mixtrain.fitting import collect as collect_mod
from mixtrain.laws.table import read_table


def _config(run_dir, data_dir, **model):
    cfg = {"data_dir": str(data_dir), "seq_len": 32,
           "model": {"_target_": "mixtrain.model.gpt.GPTConfig", "vocab_size": None, "seq_len": 32, **model}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_scale_columns_follow_the_table_rows_and_count_the_models_parameters(tmp_path):
    from mixtrain.model.gpt import GPT, GPTConfig

    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"vocab_size": 300}))
    write_metrics(tmp_path / "small", [0.5, 0.3, 0.2], range(0, 7))
    write_metrics(tmp_path / "wide", [0.2, 0.2, 0.6], range(0, 7))
    _config(tmp_path / "small", data, n_layer=2, n_head=2, d_model=32)
    _config(tmp_path / "wide", data, n_layer=2, n_head=4, d_model=64, tie_embeddings=False)
    out = tmp_path / "T.csv"
    collect_mod.main([str(tmp_path / "small"), str(tmp_path / "wide"), "--out", str(out)])
    table = read_table(str(out))
    assert table.tokens is not None and table.num_params is not None
    rows = [{"run": r, "num_params": n} for r, n in zip(table.runs.tolist(), table.num_params.tolist())]
    want = {name: GPT(GPTConfig(vocab_size=300, seq_len=32, n_layer=2, **kw)).num_params()
            for name, kw in (("small", dict(n_head=2, d_model=32)),
                             ("wide", dict(n_head=4, d_model=64, tie_embeddings=False)))}
    assert {r["run"]: int(r["num_params"]) for r in rows} == want
    assert want["wide"] > want["small"]  # the untied head (vocab x d) counts: the manifest's vocabulary


def test_scale_needs_the_runs_model_config(tmp_path):
    write_metrics(tmp_path / "run", [0.5, 0.3, 0.2], range(0, 5))
    assert collect_mod.collect([str(tmp_path / "run")]).num_params is None  # no config.yaml: no column, no error
    with pytest.raises(ValueError, match="config.yaml: missing"):
        collect_mod.collect([str(tmp_path / "run")], num_params=True)
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump({"data_dir": str(tmp_path / "nowhere"),
                                                                 "model": {"n_layer": 1, "vocab_size": None}}))
    with pytest.raises(ValueError, match="vocab_size is null and data_dir"):
        collect_mod.collect([str(tmp_path / "run")], num_params=True)
    # default: the column only when every run's model can be counted (this one's cannot: no column, no error)
    assert collect_mod.collect([str(tmp_path / "run")]).num_params is None
    table = collect_mod.collect([str(tmp_path / "run")], num_params=False)
    assert table.n_rows == 2 and table.num_params is None
