"""The scale a report's claims hold at: model parameters and training tokens per run.

Place in the flow: runs.py (`Run`: config.yaml, summary.json) -> **scale.py** -> the header of
report.md (cli.py). A loss difference measured on a 0.6M-parameter model after 77k tokens says
little about a 1B model after 20B tokens, so the report states the scale next to its claims.

Parameters are counted by building the run's `mixtrain.model.gpt.GPT` on torch's meta device (no
memory, no weights): the count is the model's own, not a formula that could drift from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixtrain.report.runs import Run


def run_vocab_size(run: Run) -> int | None:
    """The vocabulary the run trained with: the data's (summary.json `data.vocab_size`, written
    from the manifest), else the manifest of config.yaml's data_dir if it is still there; None
    when neither is known (model_parameters then falls back to the config)."""
    data = run.summary.get("data") or {}
    if data.get("vocab_size"):
        return int(data["vocab_size"])
    data_dir = (run.config or {}).get("data_dir")
    if data_dir:
        from mixtrain.store.datadir import read_manifest

        try:
            return int(read_manifest(data_dir)["vocab_size"])
        except (OSError, ValueError, KeyError):
            return None
    return None


def run_parameters(run: Run) -> tuple[int, int] | None:
    """(total, non-embedding) parameters of `run`, its vocabulary taken from its data."""
    return model_parameters(run.config, vocab_size=run_vocab_size(run))


def model_parameters(config: Mapping[str, Any] | None, vocab_size: int | None = None) -> tuple[int, int] | None:
    """(total, non-embedding) parameters of the run's model from its config.yaml and, when given, the
    data's `vocab_size` (the model's is set from the data at run time: the config's tokenizer.vocab_size
    is only what prepare was asked for); None when the model or the vocabulary size is unknown."""
    if not config or not isinstance(config.get("model"), Mapping):
        return None
    model = {k: v for k, v in config["model"].items() if not str(k).startswith("_")}
    if vocab_size:
        model["vocab_size"] = int(vocab_size)
    if model.get("vocab_size") is None:  # an old run whose data is gone: what the config asked prepare for
        model["vocab_size"] = (config.get("tokenizer") or {}).get("vocab_size") or config.get("vocab_size")
    if model.get("vocab_size") is None:
        return None
    if config.get("seq_len") is not None:
        model["seq_len"] = config["seq_len"]
    import torch

    from mixtrain.model.gpt import GPT, GPTConfig

    try:
        cfg = GPTConfig(**model)
    except (TypeError, ValueError):
        return None
    with torch.device("meta"):
        net = GPT(cfg)
    return net.num_params(non_embedding=False), net.num_params(non_embedding=True)


def _counts(values: Sequence[Any]) -> str:
    distinct = sorted({v for v in values if v is not None})
    return " / ".join(f"{v:,}" for v in distinct) if distinct else "unknown"


def scale_line(runs: Sequence[Run]) -> str:
    """'Scale: 632,448 parameters (108,160 non-embedding), 76,800 training tokens per run, ...'; several
    values (runs at different scales) are listed, separated by ' / '."""
    params = [run_parameters(r) for r in runs]
    tokens = [r.summary.get("tokens") for r in runs]
    steps = [r.summary.get("step") for r in runs]
    shapes = {(c.get("seq_len"), c.get("batch_size")) for c in (r.config or {} for r in runs) if c}
    shape = " / ".join(f"seq_len {s}, batch {b}" for s, b in sorted(shapes, key=str)) if shapes else "seq_len, batch unknown"
    return (f"Scale: {_counts([p[0] if p else None for p in params])} parameters "
            f"({_counts([p[1] if p else None for p in params])} non-embedding), "
            f"{_counts(tokens)} training tokens per run ({_counts(steps)} steps; {shape}).")
