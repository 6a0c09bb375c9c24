"""Run-directory bookkeeping: claiming out_dir, redacted config (.hydra/ too), summary.json and the
end-of-run table.

Place in the flow: run.py calls these around `Trainer.fit` (the writers on global rank 0 only,
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

from mixtrain.store.runfiles import METRICS, REFITS, SUMMARY, atomic_write, write_json_atomic

# secret-looking key names: a whole word of the (dotted, snake or kebab) name, so `token`, `hf_token`,
# `api_key`, `storage_options.key`, `aws_secret_access_key` are secrets, while `tokenizer` and
# `global_batch_tokens` are not (they used to be redacted, hiding the tokenizer from config.yaml)
SECRET_WORD = r"(?:api[_-]?key|token|secret|password|passwd|credentials?|key)"
SECRET_KEY = re.compile(rf"(?:^|[._/+~-]){SECRET_WORD}(?:$|[._-])", re.IGNORECASE)
URL_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^/\s:@'\",]*):([^/\s@'\",]*)@")  # scheme://user:password@host
SECRET_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
OVERRIDE = re.compile(r"^([+~]{0,2}[\w./@-]+)=(.*)$", re.DOTALL)  # a Hydra override "key=value"


def secret_values(obj: Any) -> set[str]:
    """Every secret a (nested) config holds: values of secret-looking keys (also inside a Hydra
    override string like `storage_options={key: ..., secret: ...}`), URL passwords, secret env values."""
    found = {os.environ[k] for k in SECRET_ENV if os.environ.get(k)}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if SECRET_KEY.search(str(k)) and isinstance(v, (str, int)) and not isinstance(v, bool):
                found.add(str(v))
            else:
                found |= secret_values(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            found |= secret_values(v)
    elif isinstance(obj, str):
        found.update(m.group(2) for m in URL_USERINFO.finditer(obj))
        if (m := OVERRIDE.match(obj)) and SECRET_KEY.search(m.group(1)):
            found.add(m.group(2))
        # a dict-valued override: `{key: AKIA..., secret: ...}` (flow-style yaml)
        found.update(m.group(2) for m in re.finditer(r"([\w-]+)\s*:\s*['\"]?([^,}'\"\s]+)", obj)
                     if SECRET_KEY.search(m.group(1)))
    return {v.strip() for v in found if len(v.strip()) >= 4}  # shorter ones would garble ordinary text


def redact(obj: Any, secrets: set[str] | None = None) -> Any:
    """Copy of a (nested) config with secret-looking keys, URL passwords and every secret value
    found in it (`secret_values`) replaced by <redacted>."""
    secrets = secret_values(obj) if secrets is None else secrets
    if isinstance(obj, Mapping):
        return {k: ("<redacted>" if SECRET_KEY.search(str(k)) else redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, secrets) for v in obj]
    if not isinstance(obj, str):
        return obj
    if (m := OVERRIDE.match(obj)) and SECRET_KEY.search(m.group(1)):
        return f"{m.group(1)}=<redacted>"  # `+data.token=...` in .hydra/overrides.yaml, hydra.yaml, argv
    for secret in sorted(secrets, key=len, reverse=True):
        obj = obj.replace(secret, "<redacted>")
    return URL_USERINFO.sub(r"\1:<redacted>@", obj)  # data.root=s3://user:password@host/...


# a `key=value` override inside a longer string (hydra.yaml's job.override_dirname joins them all by commas)
_OVERRIDE_IN_TEXT = re.compile(rf"((?:^|[\s,'\"])[+~]{{0,2}}(?:[\w./@-]*[._-])?{SECRET_WORD}(?:[._-][\w./@-]*)?=)[^,\s'\"]+",
                               re.IGNORECASE)


def redacted_yaml(data: Any, secrets: set[str] | None = None) -> str:
    """YAML text of `data` with secrets redacted (`redact`), also `key=value` pairs inside strings
    and every value of `secrets` (default: those `data` itself holds) wherever it appears."""
    import yaml

    secrets = secret_values(data) if secrets is None else secrets
    text = _OVERRIDE_IN_TEXT.sub(r"\1<redacted>", yaml.safe_dump(redact(data, secrets), sort_keys=False))
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return text


def redact_hydra_dir(hydra_dir: str) -> None:
    """Rewrite Hydra's own copies of the config (a sweep's multirun.yaml, .hydra/*.yaml) with secrets
    redacted (temp names unique per process: runfiles.atomic_write)."""
    import yaml

    loaded = {}
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml", "multirun.yaml"):
        path = os.path.join(hydra_dir, name)
        if os.path.isfile(path):
            with open(path) as f:
                loaded[path] = yaml.safe_load(f)
    _write_redacted(loaded)


def write_hydra_dir(hydra_dir: str, config: Any, hydra: Any, overrides: list[str]) -> None:
    """Write .hydra/{config,hydra,overrides}.yaml (what Hydra itself writes), redacted, atomically.

    train/run.py calls it (through mixtrain/hydra_app.py) on global rank 0 once the run is validated: the entry point turns Hydra's own
    writing off (launch.entry_argv), so a refused run and the other ranks of a launch write none.
    """
    os.makedirs(hydra_dir, exist_ok=True)
    _write_redacted({os.path.join(hydra_dir, "config.yaml"): config, os.path.join(hydra_dir, "hydra.yaml"): {"hydra": hydra},
                     os.path.join(hydra_dir, "overrides.yaml"): overrides})


def _write_redacted(files: Mapping[str, Any]) -> None:
    """Each path's data as redacted YAML, atomically. A secret found in one file (an override) is
    redacted in all of them: hydra.yaml repeats the overrides."""
    secrets = set().union(*(secret_values(data) for data in files.values()))
    for path, data in files.items():
        atomic_write(path, redacted_yaml(data, secrets))


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

    Eval-only domains (never sampled) get their val loss and no weight; the target row (`val/target`,
    target.importance) is always there, "-" when the run has no validation yet.
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
    # always the same rows, so runs' tables line up (with the default target.importance it repeats the mean)
    footer.append(("target (importance-weighted)", fmt(final.get("val/target")), "", ""))
    rows += footer
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - len(footer), "-" * len(lines[0]))
    return "\n".join(lines)
