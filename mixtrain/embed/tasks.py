"""`mixtrain embed RAW --out E` as task i of n: one fitted embedder, a share of the documents each, one join.

    sbatch --array=0-7 --wrap "mixtrain embed RAW --out E"       # 8 tasks; the last to finish joins
    mixtrain embed RAW --out E --node-rank 1 --num-nodes 4       # explicit, on any launcher
    mixtrain embed RAW --out E --num-nodes 4 --join-only         # join complete shares (embed nothing)

Place in the flow: embed/cli.py -> **tasks.py** (n > 1) -> embed/pipeline.py (sampling, fitting,
transforming: the very code a one-task embed runs) -> embed/store.py (E). Which task a process is
and which files it takes come from prepare/shares.py (`resolve_task`: --node-rank/--num-nodes, then
SLURM_ARRAY_TASK_ID/COUNT, RANK/WORLD_SIZE, SLURM_PROCID/NTASKS; `split_shares`: contiguous runs of
RAW's sorted files, about equal bytes each), as `mixtrain prepare` does. Steps:
1. setup - task 0, under the work folder's lock, fits the embedder on the seeded reservoir sample of
   the *whole* corpus (pipeline.reservoir_sample: the sample a one-task embed fits on) and writes
   W/embedder.joblib, then W/setup.json (settings key, RAW's fingerprint, the embedder's sha256).
   Others wait for setup.json (`--setup-timeout-s`); a failure of task 0 is written there, so they
   stop at once. A re-run with an unchanged setup.json keeps the fitted embedder (no refit).
2. share - each task embeds its files, in order, into W/.shares/<n>-tasks/<i>/ (vectors.npy,
   docs.parquet, skipped.json, share.json last, renamed into place): a complete, current share is
   skipped on a re-run. One process per rank (prepare/shares.claim_share's flock).
3. join - the task that finds every share complete (under the lock), or --join-only, concatenates
   the shares in rank order and writes E exactly as a one-task embed does (store.write_embeddings),
   so E's vectors and document order are those of a one-task embed (bit for bit: the same fit, and
   the transform is row by row); then W is removed, and a later task finds E joined and stops.
W is the hidden sibling `.<E>.embed-work/` (E itself is replaced whole when written), on a
filesystem every task sees.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.embed.documents import Skipped, corpus_files, iter_corpus
from mixtrain.embed.pipeline import _embed_all, _no_text, doc_table, fitted_embedder
from mixtrain.embed.store import read_manifest, sha256_file, write_embeddings
from mixtrain.errors import ConfigError, DataError
from mixtrain.prepare.corpus import files_fingerprint
from mixtrain.prepare.shares import Task, claim_share, resolve_task, shares_root, split_shares
from mixtrain.store.datadir import fingerprint, write_json_atomic
from mixtrain.store.locks import prepare_lock

EMBED_KEYS = ("--node-rank", "--num-nodes")  # how `mixtrain embed` sets the task explicitly, named in messages

SETUP, EMBEDDER = "setup.json", "embedder.joblib"


def work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.embed-work"


def _key(root: Path, s: dict[str, Any]) -> str:
    """The settings a task's output depends on (the batch size and workers change no vector)."""
    return fingerprint("embed-tasks-1", str(root.resolve()), s["embedder"], s.get("options"), s.get("fitted"),
                       s["fit_docs"], s["seed"], s["text_field"], s["txt_mode"], list(s["fields"]))


def embed_tasks(root, out, *, node_rank: int | None = None, num_nodes: int | None = None, join_only: bool = False,
                setup_timeout_s: float = 3600.0, **settings: Any) -> dict[str, Any] | None:
    """Embed RAW into E as this process's task; returns E's manifest, or None for a task that did not join.
    `settings` are embed_corpus' keyword arguments (embedder, options, fitted, fit_docs, seed, ...)."""
    from mixtrain.embed.pipeline import embed_corpus

    settings = {"embedder": "hashing", "options": None, "fitted": None, "fit_docs": 50_000, "seed": 0,
                "batch_size": 4096, "num_workers": 1, "text_field": "text", "txt_mode": "file", "fields": (), **settings}
    root, out = Path(root), Path(out)
    task = Task(source="--join-only") if join_only else resolve_task(node_rank, num_nodes, keys=EMBED_KEYS)
    if task.count == 1 and not join_only:
        return embed_corpus(root, out, **settings)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ConfigError(f"--out {out} exists and is not an embeddings folder (no manifest.json); it would be "
                          "replaced: give a new folder or remove it yourself")
    files = corpus_files(root)
    state = {"root": root, "out": out, "work": work_dir(out), "files": files, "raw": files_fingerprint(files),
             "key": _key(root, settings), "settings": settings}
    if _already_joined(state):
        print(f"[embed] {out}: already joined from these files and settings; nothing to do", flush=True)
        return read_manifest(out)
    if join_only:
        return _join_only(state, num_nodes)
    print(f"[embed] {task}: embedding a share of {root}", flush=True)
    state["work"].mkdir(parents=True, exist_ok=True)
    started = time.time()
    with claim_share(state["work"], task, EMBED_KEYS):
        model = _setup(state, task, setup_timeout_s, started)
        _embed_share(state, task, model)
    with prepare_lock(state["work"], label="embed"):
        if _already_joined(state):
            return read_manifest(out)
        if _incomplete(state, task.count):
            print(f"[embed] {task}: share done; another task joins", flush=True)
            return None
        return _join(state, task.count, model)


def _already_joined(state: dict[str, Any]) -> bool:
    try:
        return read_manifest(state["out"]).get("tasks", {}).get("key") == state["key"] + state["raw"]
    except (DataError, ValueError):
        return False


def _read_setup(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _setup(state: dict[str, Any], task: Task, timeout_s: float, started: float):
    """Task 0 fits (or reuses a current fit); the others wait for it. Returns the fitted embedder."""
    work, s = state["work"], state["settings"]
    path = work / SETUP
    if task.rank != 0:
        return _wait_for_setup(state, task, path, timeout_s, started)
    with prepare_lock(work, label="embed"):
        current = _read_setup(path)
        if current and current.get("key") == state["key"] and current.get("raw") == state["raw"] \
                and (work / EMBEDDER).is_file() and sha256_file(work / EMBEDDER) == current.get("embedder_sha256"):
            print(f"[embed] {task}: the embedder in {work / EMBEDDER} is current; not refitted", flush=True)
            return _load(work, current)
        try:
            model, fitted_from = fitted_embedder(state["root"], state["files"], embedder=s["embedder"],
                                                 options=s["options"], fitted=s["fitted"], fit_docs=s["fit_docs"],
                                                 seed=s["seed"], text_field=s["text_field"], txt_mode=s["txt_mode"])
            import joblib

            joblib.dump(model, work / EMBEDDER)
        except Exception as e:
            write_json_atomic(path, {"key": state["key"], "raw": state["raw"], "failed": f"{type(e).__name__}: {e}"})
            raise
        write_json_atomic(path, {"key": state["key"], "raw": state["raw"], "fitted_from": fitted_from,
                                 "embedder_sha256": sha256_file(work / EMBEDDER)})
    return model


def _load(work: Path, setup: dict[str, Any]):
    import joblib

    if sha256_file(work / EMBEDDER) != setup.get("embedder_sha256"):
        raise DataError(f"{work / EMBEDDER} is not the embedder {work / SETUP} records (it changed after task 0 "
                        "fitted it); re-run every task")
    return joblib.load(work / EMBEDDER)


def _wait_for_setup(state: dict[str, Any], task: Task, path: Path, timeout_s: float, started: float):
    """Task 0's setup.json for these settings and files; an older one (a previous embed's) is waited on."""
    deadline, announced = time.monotonic() + float(timeout_s), False
    while True:
        setup = _read_setup(path)
        ours = bool(setup) and setup.get("key") == state["key"]
        try:
            fresh = ours and path.stat().st_mtime >= started
        except OSError:  # replaced between the read and the stat: read it again
            continue
        if ours and "failed" not in setup and setup.get("raw") == state["raw"] and (path.parent / EMBEDDER).is_file():
            return _load(path.parent, setup)
        if ours and fresh and "failed" in setup:
            raise DataError(f"{task}: task 0 failed while fitting the embedder ({path}: {setup['failed']}); fix that "
                            "(task 0's log says more) and re-run every task")
        if ours and fresh and setup.get("raw") != state["raw"]:
            raise DataError(f"{task}: the raw files under {state['root']} are not the ones task 0 read ({path} records "
                            "their paths, sizes and times): leave RAW alone during an embed and re-run every task")
        if time.monotonic() >= deadline:
            raise DataError(f"{task}: task 0 did not write {path} for this embed within --setup-timeout-s={timeout_s:g} "
                            "s (it fits the embedder first): check that task 0 runs with the same RAW, --out and "
                            "settings, and its log; then re-run this task")
        if not announced:
            print(f"[embed] {task}: waiting for task 0's fitted embedder ({path}, up to {timeout_s:g} s)", flush=True)
            announced = True
        time.sleep(0.5)


def _share_files(state: dict[str, Any], rank: int, count: int) -> list[Path]:
    return split_shares({"": state["files"]}, count)[rank][""]


def _share_key(state: dict[str, Any], rank: int, count: int) -> str:
    setup = _read_setup(state["work"] / SETUP) or {}
    return fingerprint(state["key"], state["raw"], setup.get("embedder_sha256"),
                       [str(p) for p in _share_files(state, rank, count)], rank, count)


def share_folder(state: dict[str, Any], rank: int, count: int) -> Path:
    return shares_root(state["work"], count) / str(rank)


def _share_complete(state: dict[str, Any], rank: int, count: int) -> bool:
    folder = share_folder(state, rank, count)
    record = _read_setup(folder / "share.json")
    return bool(record) and record.get("key") == _share_key(state, rank, count) and all(
        (folder / n).is_file() and (folder / n).stat().st_size == record["bytes"][n] for n in record["bytes"])


def _incomplete(state: dict[str, Any], count: int) -> list[int]:
    return [r for r in range(count) if not _share_complete(state, r, count)]


def _embed_share(state: dict[str, Any], task: Task, model) -> None:
    """This task's files -> its share folder (temporary folder renamed into place; share.json written last)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if _share_complete(state, task.rank, task.count):
        print(f"[embed] {task}: share {task.rank} of {task.count} complete, skipped", flush=True)
        return
    s, folder = state["settings"], share_folder(state, task.rank, task.count)
    files = _share_files(state, task.rank, task.count)
    skipped = Skipped()
    docs = iter_corpus(state["root"], skipped, text_field=s["text_field"], txt_mode=s["txt_mode"],
                       fields=tuple(s["fields"]), files=files)
    metas, chunks = _embed_all(model, docs, batch_size=s["batch_size"], num_workers=s["num_workers"])
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "vectors.npy", np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32))
    table = doc_table(metas, tuple(s["fields"]))
    pq.write_table(pa.table({k: list(v) if not isinstance(v, np.ndarray) else v for k, v in table.items()}),
                   tmp / "docs.parquet")
    (tmp / "skipped.json").write_text(json.dumps(skipped.rows))
    names = ("vectors.npy", "docs.parquet", "skipped.json")
    write_json_atomic(tmp / "share.json", {"key": _share_key(state, task.rank, task.count), "num_files": len(files),
                                           "num_docs": len(metas), "bytes": {n: (tmp / n).stat().st_size for n in names}})
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    print(f"[embed] {task}: share {task.rank} of {task.count}: {len(files)} file(s), {len(metas):,} documents", flush=True)


def _join(state: dict[str, Any], count: int, model) -> dict[str, Any]:
    """Every share in rank order -> E (store.write_embeddings, as a one-task embed writes it); W removed."""
    import pyarrow.parquet as pq

    s = state["settings"]
    folders = [share_folder(state, r, count) for r in range(count)]
    vectors = [v for v in (np.load(f / "vectors.npy") for f in folders) if len(v)]
    tables = [pq.read_table(f / "docs.parquet") for f in folders]
    skipped_rows = [tuple(row) for f in folders for row in json.loads((f / "skipped.json").read_text())]
    if not vectors:
        skipped = Skipped(skipped_rows)
        raise _no_text(state["root"], skipped)
    table = {name: np.concatenate([t.column(name).to_numpy(zero_copy_only=False) for t in tables])
             for name in tables[0].column_names}
    for name in ("source", "domain"):
        table[name] = [str(x) for x in table[name]]
    setup = _read_setup(state["work"] / SETUP) or {}
    manifest = {"embedder": model.describe(), **setup.get("fitted_from", {}), "root": str(state["root"].resolve()),
                "text_field": s["text_field"], "txt_mode": s["txt_mode"], "fields": list(s["fields"]),
                "fit_docs": s["fit_docs"], "seed": s["seed"], "num_files": len(state["files"]),
                "num_skipped": len(skipped_rows), "skipped": Skipped(skipped_rows).counts(),
                "tasks": {"count": count, "key": state["key"] + state["raw"]}}
    write_embeddings(state["out"], np.concatenate(vectors), table, skipped_rows, model, manifest)
    # E records the join (manifest "tasks"): a task that still waits on W's lock finds E joined and stops
    shutil.rmtree(state["work"], ignore_errors=True)
    print(f"[embed] joined {count} shares -> {state['out']}", flush=True)
    return read_manifest(state["out"])


def _join_only(state: dict[str, Any], num_nodes: int | None) -> dict[str, Any]:
    """--join-only: every share must be complete; nothing is embedded."""
    work = state["work"]
    setup = _read_setup(work / SETUP)
    if setup is None or "failed" in setup or setup.get("key") != state["key"] or setup.get("raw") != state["raw"]:
        why = "missing" if setup is None else setup.get("failed") or "for other settings or raw files"
        raise DataError(f"--join-only: {work / SETUP} is {why}: run the tasks (task 0 fits the embedder) with the same "
                        "RAW, --out and settings first")
    counts = sorted(int(p.name.split("-")[0]) for p in (work / ".shares").glob("*-tasks") if p.name.split("-")[0].isdigit())
    if num_nodes is None and len(counts) != 1:
        raise DataError(f"--join-only: {work / '.shares'} holds shares of {counts or 'no'} task counts; "
                        "give --num-nodes N (the N the tasks ran with)")
    count = int(num_nodes) if num_nodes is not None else counts[0]
    with prepare_lock(work, label="embed"):
        missing = _incomplete(state, count)
        if missing:
            raise DataError(f"--join-only: share(s) {missing} of {count} are not complete "
                            f"({share_folder(state, missing[0], count)}); re-run those tasks "
                            f"(--node-rank {missing[0]} --num-nodes {count}): nothing was joined")
        return _join(state, count, _load(work, setup))
