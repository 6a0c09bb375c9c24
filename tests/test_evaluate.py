"""Tests for mixtrain.evaluate: lm-eval over a real tiny run's export, on a local offline task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parents[1] / "conf")
ROWS = [  # 4 two-way multiple-choice questions in the style of the tiny corpus
    {"question": "def f_1(x, y):\n    return x *", "choices": [" 3 + y", " the model"], "answer": 0},
    {"question": "The model reads data from many", "choices": [" domains", " 1,2,3"], "answer": 0},
    {"question": "12,45,", "choices": ["999,1", " the the"], "answer": 0},
    {"question": "which mixture of text helps", "choices": [" most", ","], "answer": 0},
]
TASK_YAML = """task: mixtrain_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory):
    from mixtrain.train import train

    run = tmp_path_factory.mktemp("evaluate") / "run"
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={run}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false", "trainer.max_steps=2"])
    train(cfg)
    return run


def _task_dir(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tasks / "tiny_mc.yaml").write_text(TASK_YAML.format(data=tasks / "data.jsonl"))
    return tasks


def test_lm_eval_on_a_local_task_writes_the_metric(tiny_run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("lm_eval")
    from mixtrain.evaluate import main

    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # never the network
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    tasks = _task_dir(tmp_path)
    main([str(tiny_run), "--tasks", "mixtrain_tiny_mc", "--include-path", str(tasks), "--no-default-tasks",
          "--device", "cpu"])
    results = json.loads((tiny_run / "lm_eval.json").read_text())
    acc = results["results"]["mixtrain_tiny_mc"]["acc,none"]
    assert 0.0 <= acc <= 1.0 and acc * 4 == int(acc * 4)  # 4 questions
    assert results["mixtrain"]["tasks"] == ["mixtrain_tiny_mc"]
    assert (tiny_run / "hf" / "model.safetensors").is_file()  # the export it evaluated
    assert "mixtrain_tiny_mc" in capsys.readouterr().out  # the table
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--tasks", "no_such_task", "--include-path", str(tasks), "--no-default-tasks"])
    assert "unknown lm-eval task(s) ['no_such_task']" in capsys.readouterr().err


def test_missing_lm_eval_is_a_clear_error(tiny_run, monkeypatch, capsys):
    from mixtrain.evaluate import main

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval raises ImportError
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--tasks", "hellaswag"])
    assert "pip install -e '.[eval]'" in capsys.readouterr().err
