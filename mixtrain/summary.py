"""Run-directory bookkeeping: redacted config, summary.json and the end-of-run table.

Place in the flow: train.py calls these around `Trainer.fit`; report.py and collect.py read
what they write (formats in docs/formats.md).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)", re.IGNORECASE)
SECRET_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def redact(obj: Any) -> Any:
    """Copy of a (nested) config with secret-looking keys and any secret env value replaced."""
    secrets = {os.environ[k] for k in SECRET_ENV if os.environ.get(k)}
    if isinstance(obj, Mapping):
        return {k: ("<redacted>" if SECRET_KEY.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and any(s and s in obj for s in secrets):
        return "<redacted>"
    return obj


def write_json(path: str, data: Mapping[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=float)
    os.replace(tmp, path)


def final_metrics(callback_metrics: Mapping[str, Any], domains: list[str], weights: Mapping[str, float],
                  tokens: Mapping[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in callback_metrics.items():
        if key.startswith(("val/", "train/")):
            out[key] = float(value)
    for d in domains:
        out[f"mix/{d}"] = float(weights[d])
        out[f"mix/tokens/{d}"] = float(tokens[d])
    return out


def domain_table(final: Mapping[str, float], domains: list[str]) -> str:
    """Plain-text per-domain table: validation loss, current weight, tokens consumed."""
    rows = [("domain", "val loss", "weight", "tokens")]
    for d in domains:
        loss = final.get(f"val/{d}/loss")
        rows.append((d, "-" if loss is None else f"{loss:.4f}", f"{final[f'mix/{d}']:.4f}",
                     f"{int(final[f'mix/tokens/{d}']):,}"))
    mean = final.get("val/loss")
    rows.append(("mean (unweighted)", "-" if mean is None else f"{mean:.4f}", "",
                 f"{int(sum(final[f'mix/tokens/{d}'] for d in domains)):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)
