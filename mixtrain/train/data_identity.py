"""The data a run trains on, as recorded in every checkpoint: a resume on other data is refused.

Place in the flow: mixtrain/train/run.py reads `data_identity(data_dir)` from the prepared folder
(store/datadir.py's manifest, stats and checksums: small JSON files plus the tokenizer file) ->
`DataIdentity` writes it into every checkpoint (`DATA_KEY`) -> on a resume, `plan_data` compares
the checkpoint's identity with the folder's before anything is written.

Why: after the raw text of one domain changed, prepare retrained the tokenizer (6,947 of 8,192
token ids then meant other pieces) and `resume=true` went on training without a word, because a
resume compared only domains and block counts. The identity holds:

* `manifest_fingerprint`: the manifest's fingerprint (every domain's inputs, tokenizer and settings);
* `tokenizer_sha256`: the tokenizer model file's sha256 (token ids mean the same pieces);
* `shards_sha256`: a digest of every domain's checksums.json (the exact shard bytes);
* `domains`: per domain, its stats fingerprint and shard digest, so a refusal names the domains.

`resume_data=switch` continues deliberately on the new data: the weights, optimizer and step are
kept; the sampler starts over on the new shards (its positions in the old ones mean nothing there)
and the switch is recorded in the checkpoint (`switches`) and printed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from mixtrain.errors import DataError
from mixtrain.store.datadir import CHECKSUMS, file_sha256, read_manifest, read_stats

DATA_KEY = "mixtrain_data"


def _checksums_digest(domain_dir: Path) -> str | None:
    path = domain_dir / CHECKSUMS
    if not path.is_file():
        return None  # prepared by an older mixtrain: the stats fingerprint still identifies it
    files = json.loads(path.read_text()).get("files", {})
    return hashlib.sha256(json.dumps({k: v.get("sha256") for k, v in files.items()}, sort_keys=True).encode()).hexdigest()


def data_identity(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The identity of the prepared folder `data_dir` (cheap: JSON files and the tokenizer file)."""
    root = Path(data_dir)
    manifest = read_manifest(root)
    domains = {}
    for d in sorted(manifest["domains"]):
        domains[d] = {"fingerprint": read_stats(root, d).get("fingerprint"), "shards_sha256": _checksums_digest(root / d)}
    tokenizer = root / str(manifest.get("tokenizer", ""))
    shards = hashlib.sha256(json.dumps({d: v["shards_sha256"] for d, v in domains.items()}, sort_keys=True).encode())
    return {
        "manifest_fingerprint": manifest.get("fingerprint"),
        "tokenizer": manifest.get("tokenizer"),
        "tokenizer_sha256": file_sha256(tokenizer) if manifest.get("tokenizer") and tokenizer.is_file() else None,
        "vocab_size": int(manifest["vocab_size"]),
        "shards_sha256": shards.hexdigest(),
        "domains": domains,
    }


def data_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed between a checkpoint's data identity and the folder's (empty: the same data)."""
    out = []
    if saved.get("tokenizer_sha256") and now.get("tokenizer_sha256") and saved["tokenizer_sha256"] != now["tokenizer_sha256"]:
        out.append(f"the tokenizer ({saved.get('tokenizer')} sha256 {saved['tokenizer_sha256'][:12]} in the checkpoint, "
                   f"{now.get('tokenizer')} sha256 {now['tokenizer_sha256'][:12]} now: token ids mean other pieces)")
    if saved.get("vocab_size") != now.get("vocab_size"):
        out.append(f"vocab_size ({saved.get('vocab_size')} in the checkpoint, {now.get('vocab_size')} now)")
    old, new = saved.get("domains", {}), now.get("domains", {})
    changed = [d for d in sorted(set(old) & set(new)) if old[d] != new[d]]
    if changed:
        out.append(f"the shards of domain(s) {', '.join(changed)} (re-prepared: other raw text, settings or bytes)")
    if set(old) != set(new):
        out.append(f"the domains ({sorted(old)} in the checkpoint, {sorted(new)} now)")
    if not out and (saved.get("manifest_fingerprint") != now.get("manifest_fingerprint")
                    or saved.get("shards_sha256") != now.get("shards_sha256")):
        out.append(f"the manifest fingerprint ({saved.get('manifest_fingerprint')} in the checkpoint, "
                   f"{now.get('manifest_fingerprint')} now)")
    return out


@dataclass
class DataPlan:
    """This run's data identity, the switches made so far, and whether this resume switches."""

    identity: dict[str, Any]
    switches: list[dict[str, Any]] = field(default_factory=list)
    switch_from: dict[str, Any] | None = None


def plan_data(saved: dict[str, Any] | None, now: dict[str, Any], *, resume_data: str, where: str | None,
              step: int | None, data_dir: str, rank_zero: bool = True) -> DataPlan:
    """A resume's data: the same as the checkpoint's (continue), other data (DataError naming what
    changed, unless resume_data=switch), or none recorded (a checkpoint older than data identities)."""
    if saved is None or where is None:
        return DataPlan(now, list((saved or {}).get("switches", [])))
    why = data_differences(saved, now)
    if not why:
        return DataPlan(now, list(saved.get("switches", [])))
    if resume_data != "switch":
        raise DataError(
            f"{where} was trained on other data than data_dir={data_dir}: {'; '.join(why)}. Resume with the data the "
            "run was trained on (the same prepared folder, not re-prepared), pass resume_data=switch to go on "
            f"deliberately with this data from step {step} (the sampler starts over on it), or start a new out_dir")
    if rank_zero:
        print(f"[mixtrain] resume_data=switch: continuing from step {step} on data_dir={data_dir}, which differs "
              f"from the checkpoint's data: {'; '.join(why)}; the sampler starts over on the new shards", flush=True)
    old = {k: v for k, v in saved.items() if k != "switches"}
    switches = list(saved.get("switches", [])) + [{"step": step, "changed": why, "from": old.get("manifest_fingerprint"),
                                                    "to": now.get("manifest_fingerprint")}]
    return DataPlan(now, switches, switch_from=old)


class DataIdentity(pl.Callback):
    """Writes the run's data identity (and its data switches) into every checkpoint; on a switch,
    drops the sampler's saved state so the stream starts over on the new shards."""

    def __init__(self, plan: DataPlan):
        self.plan = plan

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[DATA_KEY] = {**self.plan.identity, "switches": self.plan.switches}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        # Lightning restored the DataModule's state just before the callbacks' hook; the stream is
        # built later (train_dataloader), so forgetting the pending state here is in time
        if self.plan.switch_from is not None and hasattr(trainer.datamodule, "forget_sampler_state"):
            trainer.datamodule.forget_sampler_state()
