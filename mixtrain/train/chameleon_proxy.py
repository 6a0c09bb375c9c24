"""Chameleon's own proxy: a short uniform run, then every training domain embedded with it.

Place in the flow: train/run.py's `train()` calls `with_domain_embeddings(config, data_dir)` after
the data is verified and before the strategy is built -> (rank 0 only) the proxy run (a nested
`train()` with mixing=uniform, or a child process under a multi-process launcher) -> per domain,
`windows` random `window_tokens`-token windows of its training shards embedded by the proxy
(embed/run_embedder.py: the token-mean of `hidden_states[len // 2]`, Chameleon's step 2) -> one
embeddings folder E per domain -> `mixing.embeddings` set to those folders -> mixing/chameleon.py
(pure: it only reads E). Nothing here runs for another strategy or when `mixing.embeddings` is given.

Reuse (never train twice silently; every decision is printed):
* `PROXY_ROOT/<settings key>-<domains key>/` holds `proxy.json` (settings, the trained domains'
  identities), `run/` (the proxy's run directory) and `embeddings/<domain>-<identity>-<windows>/`.
  PROXY_ROOT is `mixing.proxy_dir`, default `<parent of out_dir>/.chameleon-proxy`, so the runs of a
  sweep share one proxy.
* A proxy is reused when its settings (model, proxy_model, proxy_steps, proxy_seed, seq_len, batch,
  optimiser, tokenizer) equal this run's and every domain it was trained on is in this data with the
  same identity (train/data_identity.py). A domain added since is embedded by the same proxy and the
  weights are recomputed without retraining (the paper's new-domain rule). A proxy killed mid-way
  continues (resume=auto) instead of starting over.
* `mixing.embed_run=RUN` (a run dir, checkpoint or HF export) skips the proxy; its embeddings are
  cached under PROXY_ROOT/embed-run-<key of RUN's path and checkpoint file>/.

Ranks: only global rank 0 trains and embeds; the others wait (launch.wait_for, MIXTRAIN_RANK0_WAIT_S)
for `resolved-<key>.json`, which rank 0 writes atomically once every E exists, and read the same E
paths. Under torchrun/srun (launcher world size > 1) rank 0 trains the proxy in a child process with
the launcher's variables removed: a single-device run cannot start inside another job's process group.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mixtrain.store.runfiles import write_json_atomic as _write_json_atomic
from mixtrain.train import launch
from mixtrain.train.config import TrainConfig

PROXY_KEYS = ("embed_run", "proxy_steps", "proxy_model", "proxy_dir", "proxy_seed", "windows", "window_tokens")
# launcher variables a single-process child must not see (Lightning would join the parent's job)
LAUNCH_ENV_PREFIXES = ("SLURM_", "TORCHELASTIC_", "PMI_", "OMPI_")
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "NODE_RANK",
              "MASTER_ADDR", "MASTER_PORT", "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE")


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(path, data, sort_keys=True)


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _say(text: str) -> None:
    print(f"[mixtrain] chameleon: {text}", file=sys.stderr, flush=True)


def needs_proxy(config: TrainConfig) -> bool:
    mixing = dict(config.mixing or {})
    return mixing.get("strategy") == "chameleon" and not mixing.get("embeddings")


def proxy_settings(config: TrainConfig, identity: dict[str, Any]) -> dict[str, Any]:
    """What makes two proxies the same model (the domains it was trained on are kept apart)."""
    mixing = dict(config.mixing)
    model = {**asdict(config.model), **dict(mixing.get("proxy_model") or {})}
    return {"model": model, "steps": int(mixing.get("proxy_steps", 1000)), "seed": int(mixing.get("proxy_seed", 0)),
            "seq_len": config.seq_len, "batch_size": config.batch_size,
            "global_batch_tokens": config.global_batch_tokens,
            "optim": asdict(config.optim), "tokenizer_sha256": identity.get("tokenizer_sha256"),
            "vocab_size": identity.get("vocab_size")}


def proxy_root(config: TrainConfig) -> Path:
    given = dict(config.mixing).get("proxy_dir")
    return Path(given) if given else Path(os.path.abspath(config.out_dir)).parent / ".chameleon-proxy"


def find_proxy(root: Path, settings: dict[str, Any], domains: dict[str, Any]) -> Path | None:
    """A proxy of the same settings whose every trained domain is in `domains` with the same identity."""
    for record in sorted(root.glob("*/proxy.json")):
        saved = json.loads(record.read_text())
        if saved.get("settings") == json.loads(json.dumps(settings, default=str)) and all(
                domains.get(d) == ident for d, ident in saved.get("domains", {}).items()):
            return record.parent
    return None


def proxy_config(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The proxy's own run: uniform weights over this run's training domains, one device, `proxy_steps`."""
    mixing = dict(config.mixing)
    steps = int(mixing.get("proxy_steps", 1000))
    trainer = {**dict(config.trainer), "max_steps": steps, "devices": 1, "num_nodes": 1, "strategy": "auto",
               "val_check_interval": steps}
    model = replace(config.model, **dict(mixing.get("proxy_model") or {}))
    return replace(config, mixing={"strategy": "uniform", "name": "chameleon-proxy"}, out_dir=str(run_dir),
                   run_name="chameleon-proxy", seed=int(mixing.get("proxy_seed", 0)), model=model, trainer=trainer,
                   resume="auto", ckpt_path=None, init_from=None, overwrite=False, checkpoint_every_n_steps=steps,
                   table_at_end=False)


def train_proxy(config: TrainConfig, run_dir: Path, train_fn, child_process: bool | None = None) -> None:
    """Train (or finish) the proxy run in run_dir with `train_fn` (train/run.py's train); in a child
    process (train/proxy_child.py) under a multi-process launcher."""
    proxy = proxy_config(config, run_dir)
    if child_process is None:
        child_process = (launch.launch_world_size() or 1) > 1
    if not child_process:
        train_fn(proxy)
        return
    spec = run_dir.parent / "proxy_config.json"
    write_json_atomic(spec, asdict(proxy))
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV and not k.startswith(LAUNCH_ENV_PREFIXES)}
    done = subprocess.run([sys.executable, "-m", "mixtrain.train.proxy_child", str(spec)], env=env)
    if done.returncode != 0:
        raise RuntimeError(f"chameleon: the proxy run in {run_dir} failed (exit {done.returncode}); its log is "
                           f"{run_dir / 'train.log'}; fix the cause and start again (the proxy resumes)")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """TrainConfig from asdict() output (the child process's spec): nested sections rebuilt as dataclasses."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(TrainConfig)
    values = {}
    for f in dataclasses.fields(TrainConfig):
        kind, value = hints[f.name], data[f.name]
        values[f.name] = kind(**value) if dataclasses.is_dataclass(kind) and isinstance(value, dict) else value
    return TrainConfig(**values)


def window_vectors(embedder, data_dir: str, domain: str, windows: int, seed: int) -> tuple[np.ndarray, int]:
    """Chameleon's step 2 for one domain: `windows` random windows of its training tokens (all there are
    if fewer), each the token-mean of the proxy's middle hidden state (embedder: a RunEmbedder); and the
    window length used (window_tokens, at most the proxy's seq_len)."""
    from litdata import StreamingDataset, TokensLoader

    length = min(embedder.max_tokens, embedder._load().cfg.seq_len)
    ds = StreamingDataset(os.path.join(data_dir, domain, "train"), item_loader=TokensLoader(block_size=length))
    count = len(ds)
    # a seed per domain name: adding a domain leaves the others' windows (and vectors) unchanged
    rng = np.random.default_rng([seed, int(hashlib.sha256(domain.encode()).hexdigest()[:8], 16)])
    picks = np.sort(rng.choice(count, size=min(int(windows), count), replace=False))
    tokens = np.stack([np.asarray(ds[int(i)], dtype=np.int64) for i in picks])
    return embedder.window_means(tokens), length


def embed_domain(embedder, data_dir: str, domain: str, out: Path, windows: int, seed: int) -> Path:
    """E for one domain (cached: an existing complete E is reused)."""
    from mixtrain.embed.store import write_embeddings

    if (out / "manifest.json").is_file():
        return out
    vectors, length = window_vectors(embedder, data_dir, domain, windows, seed)
    docs = {"source": [f"{domain}/windows"] * len(vectors), "doc": np.arange(len(vectors), dtype=np.int64),
            "domain": [domain] * len(vectors)}
    manifest = {"embedder": embedder.describe(), "root": os.path.abspath(data_dir), "windows": int(windows),
                "window_tokens": embedder.max_tokens, "window_tokens_used": length, "seed": int(seed),
                "unit": "random training windows (Chameleon)"}
    return write_embeddings(out, vectors, docs, [], embedder, manifest)


def _embed_run_key(run: str) -> str:
    path = Path(run).resolve()
    files = [path] + ([path / "checkpoints" / "last.ckpt"] if path.is_dir() else [])
    return _key([str(path)] + [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()])


def _resolve_on_rank_zero(config: TrainConfig, data_dir: str, domains: list[str], identity: dict[str, Any],
                          train_fn, child_process: bool | None) -> list[str]:
    mixing = dict(config.mixing)
    root = proxy_root(config)
    windows, window_tokens = int(mixing.get("windows", 2048)), int(mixing.get("window_tokens", 512))
    ids = {d: identity["domains"][d] for d in domains}
    if mixing.get("embed_run"):
        run = str(mixing["embed_run"])
        home = root / f"embed-run-{_embed_run_key(run)}"
        _say(f"embedding the domains with mixing.embed_run={run} (no proxy training)")
    else:
        settings = proxy_settings(config, identity)
        home = find_proxy(root, settings, ids)
        if home is not None and (home / "run" / "summary.json").is_file():
            trained = sorted(json.loads((home / "proxy.json").read_text())["domains"])
            new = sorted(set(domains) - set(trained))
            _say(f"reusing the proxy run {home / 'run'} (trained on {trained}, same settings)"
                 + (f"; embedding the added domain(s) {new} with it, no retraining" if new else ""))
        else:
            home = home or root / f"{_key(settings)}-{_key(ids)}"
            write_json_atomic(home / "proxy.json", {"settings": settings, "domains": ids})
            verb = "finishing" if (home / "run").exists() else "training"
            _say(f"{verb} its uniform proxy run ({settings['steps']} steps over {domains}) in {home / 'run'}")
            train_proxy(config, home / "run", train_fn, child_process)
        run = str(home / "run")
    from mixtrain.embed.run_embedder import RunEmbedder

    seed, embedder = int(mixing.get("proxy_seed", 0)), RunEmbedder(run, max_tokens=window_tokens)
    paths = []
    for d in tqdm(domains, desc="chameleon: embedding domains", unit=" domain", disable=len(domains) < 2):
        out = home / "embeddings" / f"{d}-{_key(ids[d])}-w{windows}x{window_tokens}-s{seed}"
        paths.append(str(embed_domain(embedder, data_dir, d, out, windows, seed)))
    return paths


def with_domain_embeddings(config: TrainConfig, data_dir: str, train_fn,
                           child_process: bool | None = None) -> TrainConfig:
    """`config` with mixing.embeddings naming one E per training domain, embedded by the proxy (or
    mixing.embed_run); unchanged for another strategy or when mixing.embeddings is set. `train_fn`:
    train/run.py's `train` (passed in: this module is imported by run.py)."""
    if not needs_proxy(config):
        return config
    from mixtrain.train.data_identity import data_identity
    from mixtrain.train.datamodule import read_layout

    domains = read_layout(data_dir, list(config.eval_only_domains)).domains
    identity = data_identity(data_dir)
    mixing = dict(config.mixing)
    what = [mixing.get(k) for k in PROXY_KEYS] + [identity, domains, proxy_settings(config, identity)]
    marker = proxy_root(config) / f"resolved-{_key(what)}.json"
    if launch.is_rank_zero():
        paths = _resolve_on_rank_zero(config, data_dir, domains, identity, train_fn, child_process)
        write_json_atomic(marker, {"embeddings": paths})
    else:
        launch.wait_for(str(marker), "chameleon's domain embeddings (rank 0 trains/embeds the proxy)")
        paths = json.loads(marker.read_text())["embeddings"]
    return replace(config, mixing={**mixing, "embeddings": paths})
