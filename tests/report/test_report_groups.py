"""report ranks only comparable runs (issue 30): the same data identity and model size, the
vocabulary taken from the data; other groups are refused unless --across-groups."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mixtrain.report.comparable import check_comparable, comparable_groups
from mixtrain.report.runs import Run
from mixtrain.report.scale import model_parameters, run_parameters

MODEL = {"n_layer": 1, "n_head": 2, "d_model": 32, "seq_len": 32, "vocab_size": None, "tie_embeddings": False}


def _run(name: str, fingerprint: str | None, vocab: int | None, config_vocab: int = 8192) -> Run:
    summary = {"strategy": "uniform", "final": {}}
    if fingerprint:
        summary["data"] = {"manifest_fingerprint": fingerprint, "tokenizer_sha256": fingerprint * 4, "vocab_size": vocab}
    config = {"model": dict(MODEL), "seq_len": 32, "tokenizer": {"vocab_size": config_vocab}}
    return Run(name=name, path=Path(name), metrics=pd.DataFrame({"step": [1]}), summary=summary, config=config)


def test_parameters_use_the_data_vocabulary_not_the_config():
    run = _run("a", "f1", vocab=320)  # the config asked for 8,192; the tokenizer of the data has 320
    total, non_embedding = run_parameters(run)
    assert total - non_embedding == 320 * 32  # the output matrix of the data's vocabulary
    assert model_parameters(run.config)[0] - total == (8192 - 320) * 32 * 2  # what scale.py reported before


def test_runs_of_other_data_or_size_are_refused_unless_across_groups():
    same = [_run("u", "f1", 320), _run("n", "f1", 320)]
    assert len(comparable_groups(same)) == 1 and check_comparable(same) is None
    mixed = same + [_run("other-tokenizer", "f2", 320)]
    with pytest.raises(ValueError, match=r"differ in data or model size.*data f2 .*other-tokenizer.*--across-groups"):
        check_comparable(mixed)
    note = check_comparable(mixed, across_groups=True)
    assert note.startswith("Warning: runs of 2 different") and "other-tokenizer" in note
    bigger = same + [_run("bigger-vocab", "f1", 640)]  # same fingerprint text, other vocabulary: other size
    assert len(comparable_groups(bigger)) == 2
