"""Which runs a report may rank against each other: the same data and the same model size.

Place in the flow: runs.py (`Run`: summary.json's `data` identity, config.yaml) -> **comparable.py**
-> cli.py (`write_report` refuses to rank across groups unless told, `--across-groups`).

Why: two runs over different tokenizers got a "best: uniform ... -0.1363" verdict, as if only the
mixture differed; a loss per token of another tokenizer, or of another model size, is another
quantity. A run's group is (data identity, parameter count): the data identity is the manifest
fingerprint and tokenizer hash train/run.py writes into summary.json (`data`), the parameter count
is report/scale.py's, with the vocabulary taken from the data, not the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mixtrain.report.runs import Run
from mixtrain.report.scale import run_parameters


def data_key(run: Run) -> str:
    """The run's data identity: manifest fingerprint + tokenizer hash (summary.json `data`), or
    "unknown data (...)" for a run written before summary.json recorded it."""
    data = run.summary.get("data") or {}
    if not data.get("manifest_fingerprint"):
        return "unknown data (a run older than data identities)"
    tok = str(data.get("tokenizer_sha256") or "?")[:12]
    return f"data {data['manifest_fingerprint']} (tokenizer {tok}, vocab {data.get('vocab_size')})"


def group_key(run: Run) -> tuple[str, Any]:
    params = run_parameters(run)
    return data_key(run), params[0] if params else None


def comparable_groups(runs: Sequence[Run]) -> dict[tuple[str, Any], list[Run]]:
    groups: dict[tuple[str, Any], list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    return groups


def groups_text(groups: dict[tuple[str, Any], list[Run]]) -> str:
    return "; ".join(f"{data}, {f'{params:,}' if params else 'unknown'} parameters: "
                     f"{', '.join(r.name for r in members)}" for (data, params), members in groups.items())


def check_comparable(runs: Sequence[Run], *, across_groups: bool = False) -> str | None:
    """None when every run has the same data and model size; otherwise a ValueError naming the
    groups, or with `across_groups` the note the report prints above its ranking."""
    groups = comparable_groups(runs)
    if len(groups) <= 1:
        return None
    if not across_groups:
        raise ValueError(
            f"these runs differ in data or model size, so their losses are not comparable as a mixture effect: "
            f"{groups_text(groups)}. Report each group on its own (pass only its run directories), or pass "
            "--across-groups to rank them together anyway")
    return (f"Warning: runs of {len(groups)} different data/model-size groups ranked together as asked "
            f"(--across-groups): {groups_text(groups)}.")
