"""Run-directory bookkeeping: claiming out_dir, redacted config (.hydra/ too), summary.json and the
end-of-run table.

Place in the flow: train.py calls these around `Trainer.fit` (the writers on global rank 0 only,
temp names unique per process); report/ and collect.py read
what they write (file names and the atomic writer: runfiles.py; formats in docs/formats.md).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

from mixtrain.runfiles import METRICS, REFITS, SUMMARY, atomic_write_text, write_json_atomic

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)", re.IGNORECASE)
SECRET_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
OVERRIDE = re.compile(r"^([+~]{0,2}[\w./@-]+)=(.*)$", re.DOTALL)  # a Hydra override "key=value"


def redact(obj: Any) -> Any:
    """Copy of a (nested) config with secret-looking keys and any secret env value replaced."""
    secrets = {os.environ[k] for k in SECRET_ENV if os.environ.get(k)}
    if isinstance(obj, Mapping):
        return {k: ("<redacted>" if SECRET_KEY.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and any(s and s in obj for s in secrets):
        return "<redacted>"
    if isinstance(obj, str) and (m := OVERRIDE.match(obj)) and SECRET_KEY.search(m.group(1)):
        return f"{m.group(1)}=<redacted>"  # `+data.token=...` in .hydra/overrides.yaml, hydra.yaml, argv
    return obj


_OVERRIDE_IN_TEXT = re.compile(r"((?:^|[\s,'\"])[+~]{0,2}[\w./@-]*(?:api[_-]?key|token|secret|password|passwd|credential)"
                               r"[\w./@-]*=)[^,\s'\"]+", re.IGNORECASE)


def redacted_yaml(data: Any) -> str:
    """YAML text of `data` with secrets redacted; hydra.yaml's job.override_dirname is one string of
    all overrides joined by commas, so `key=value` pairs inside strings are redacted too."""
    import yaml

    return _OVERRIDE_IN_TEXT.sub(r"\1<redacted>", yaml.safe_dump(redact(data), sort_keys=False))


def redact_hydra_dir(hydra_dir: str) -> None:
    """Rewrite Hydra's own copies of the config (a sweep's multirun.yaml, .hydra/*.yaml) with secrets
    redacted (temp names unique per process: runfiles.atomic_write_text)."""
    import yaml

    for name in ("config.yaml", "overrides.yaml", "hydra.yaml", "multirun.yaml"):
        path = os.path.join(hydra_dir, name)
        if os.path.isfile(path):
            with open(path) as f:
                text = redacted_yaml(yaml.safe_load(f))
            atomic_write_text(path, text)


def write_hydra_dir(hydra_dir: str, config: Any, hydra: Any, overrides: list[str]) -> None:
    """Write .hydra/{config,hydra,overrides}.yaml (what Hydra itself writes), redacted, atomically.

    train.py calls it on global rank 0 once the run is validated: the entry point turns Hydra's own
    writing off (launch.entry_argv), so a refused run and the other ranks of a launch write none.
    """
    os.makedirs(hydra_dir, exist_ok=True)
    for name, data in (("config.yaml", config), ("hydra.yaml", {"hydra": hydra}), ("overrides.yaml", overrides)):
        atomic_write_text(os.path.join(hydra_dir, name), redacted_yaml(data))


# a run's files (claim_run_dir removes them; trained_run_files says which prove a run reached step 1)
RUN_FILES = ("config.yaml", METRICS, SUMMARY, REFITS, "checkpoints", "wandb")
RUN_LOG = "train.log"


def trained_run_files(out_dir: str) -> list[str]:
    """The files that show a run in `out_dir` reached step 1: a checkpoint, a metrics row, a refit, a
    summary. A start that failed before step 1 leaves only config.yaml, train.log, an empty
    metrics.csv or wandb/: that is not a run, and a resubmission must not need overwrite=true."""
    found = []
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    if os.path.isdir(ckpt_dir) and any(not n.startswith(".") for n in os.listdir(ckpt_dir)):
        found.append("checkpoints")
    if any(n.startswith("hpc_ckpt_") for n in (os.listdir(out_dir) if os.path.isdir(out_dir) else [])):
        found.append("hpc_ckpt_*.ckpt")
    metrics = os.path.join(out_dir, METRICS)
    if os.path.isfile(metrics):
        with open(metrics) as f:
            if sum(1 for line in f if line.strip()) > 1:  # a header and at least one row
                found.append(METRICS)
    for name in (SUMMARY, REFITS):
        if os.path.exists(os.path.join(out_dir, name)):
            found.append(name)
    return found


def claim_run_dir(out_dir: str, *, overwrite: bool, delete: bool = True) -> list[str]:
    """Refuse to start a new run in a directory holding another run, or clear it (`overwrite=true`).

    Without this, a re-run wiped metrics.csv, replaced config.yaml and summary.json, and a later
    resume spliced the two runs. With overwrite the old run's files go first, so nothing mixes; the
    leftovers of a start that never reached step 1 go without overwrite. Every rank of a launch asks
    (the same answer from the same files: a refusal stops them all); only rank 0 passes `delete`.
    Returns what was (or is to be) removed.
    """
    trained = trained_run_files(out_dir)
    if trained and not overwrite:
        raise FileExistsError(
            f"out_dir={out_dir} already holds a run ({', '.join(trained)}); continue it with resume=true "
            f"(or resume=auto), pick a new out_dir, or pass overwrite=true to delete it and start over"
        )
    names = list(RUN_FILES) + [RUN_LOG, ".hydra"]
    if os.path.isdir(out_dir):
        names += [n for n in os.listdir(out_dir) if n.startswith("hpc_ckpt_")]
    names = [n for n in names if os.path.lexists(os.path.join(out_dir, n))]
    for name in names if delete else []:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
    return names


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json(path: str, data: Mapping[str, Any]) -> None:
    """Atomic JSON (runfiles.write_json_atomic); a non-finite float is written as null (never the invalid `NaN`)."""
    write_json_atomic(path, _finite_or_none(json.loads(json.dumps(data, default=float))), indent=2)


def final_metrics(callback_metrics: Mapping[str, Any], domains: list[str], weights: Mapping[str, float],
                  tokens: Mapping[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in callback_metrics.items():
        if key.startswith(("val/", "train/")):
            value = float(value)
            out[key] = value if math.isfinite(value) else None  # JSON has no NaN: null = not finite
    for d in domains:
        out[f"mix/{d}"] = float(weights[d])
        out[f"mix/tokens/{d}"] = float(tokens[d])
    return out


def domain_table(final: Mapping[str, float], domains: list[str], eval_only_domains: list[str] = ()) -> str:
    """Plain-text per-domain table: validation loss, current weight, tokens consumed.

    Eval-only domains (never sampled) get their val loss and no weight; the target row appears
    when `val/target` (target.importance) is not simply the unweighted mean.
    """
    rows = [("domain", "val loss", "weight", "tokens")]

    def fmt(loss):
        return "-" if loss is None else f"{loss:.4f}"

    for d in domains:
        rows.append((d, fmt(final.get(f"val/{d}/loss")), f"{final[f'mix/{d}']:.4f}",
                     f"{int(final[f'mix/tokens/{d}']):,}"))
    for d in eval_only_domains:
        rows.append((f"{d} (eval only)", fmt(final.get(f"val/{d}/loss")), "-", "0"))
    footer = [("mean (unweighted)", fmt(final.get("val/loss")), "",
               f"{int(sum(final[f'mix/tokens/{d}'] for d in domains)):,}")]
    target, mean = final.get("val/target"), final.get("val/loss")
    # the default target is the unweighted mean itself: a second row would only repeat it
    if target is not None and (eval_only_domains or mean is None or abs(target - mean) > 1e-9):
        footer.append(("target (importance-weighted)", fmt(final["val/target"]), "", ""))
    rows += footer
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - len(footer), "-" * len(lines[0]))
    return "\n".join(lines)
