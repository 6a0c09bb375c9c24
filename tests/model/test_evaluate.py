"""Tests for mixtrain.model.harness_eval: lm-eval over a real tiny run's export, on a local offline task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parents[2] / "conf")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "eval_task"
HUB_TASK_YAML = """task: needs_the_hub
dataset_path: mixtrain-tests/never-downloaded
output_type: multiple_choice
test_split: test
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
"""


def _offline(monkeypatch, tmp_path):
    """No request leaves the process (the Hub client refuses), whatever the machine's network."""
    import datasets.config
    import huggingface_hub.constants

    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory):
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("evaluate") / "run"
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={run}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "table_at_end=false", "trainer.max_steps=2"])
    train(cfg)
    return run


def test_lm_eval_on_the_shipped_example_task_writes_the_metric(tiny_run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("lm_eval")
    from mixtrain.model.harness_eval import EXAMPLE_TASK, main

    _offline(monkeypatch, tmp_path)
    monkeypatch.chdir(REPO)  # the example's data_files path is relative to the repository root
    args = EXAMPLE_TASK.split()[4:]  # the README's command, after "python -m mixtrain.model.harness_eval RUN"
    main([str(tiny_run), *args, "--device", "cpu"])
    num_questions = len((EXAMPLE / "mixtrain_example.jsonl").read_text().splitlines())
    results = json.loads((tiny_run / "lm_eval.json").read_text())
    acc = results["results"]["mixtrain_example"]["acc,none"]
    assert num_questions >= 10 and 0.0 <= acc <= 1.0 and round(acc * num_questions, 6).is_integer()
    assert results["mixtrain"]["tasks"] == ["mixtrain_example"]
    assert (tiny_run / "hf" / "model.safetensors").is_file()  # the export it evaluated
    assert "mixtrain_example" in capsys.readouterr().out  # the table
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--tasks", "no_such_task", "--include-path", str(EXAMPLE), "--no-default-tasks"])
    assert "unknown lm-eval task(s) ['no_such_task']" in capsys.readouterr().err


def test_a_task_whose_dataset_cannot_download_names_it_and_the_local_way(tiny_run, tmp_path, monkeypatch, capsys):
    """What a built-in task (hellaswag, ...) does offline: its dataset lives on the Hub."""
    pytest.importorskip("lm_eval")
    from mixtrain.model.harness_eval import EXAMPLE_TASK, main

    _offline(monkeypatch, tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "hub.yaml").write_text(HUB_TASK_YAML)
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--tasks", "needs_the_hub", "--include-path", str(tmp_path / "tasks"),
              "--no-default-tasks", "--device", "cpu"])
    err = capsys.readouterr().err
    assert "lm-eval task 'needs_the_hub' needs its dataset mixtrain-tests/never-downloaded" in err
    assert EXAMPLE_TASK in err and "Traceback" not in err


def test_missing_lm_eval_is_a_clear_error(tiny_run, monkeypatch, capsys):
    from mixtrain.model.harness_eval import main

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval raises ImportError
    with pytest.raises(SystemExit):
        main([str(tiny_run), "--tasks", "hellaswag"])
    assert "pip install -e '.[eval]'" in capsys.readouterr().err
