"""Benchmark: prepare's tokens/s with 1 vs 2 tokenizer workers, and its peak memory on a 50 MB domain;
with --tasks, tokens/s of one prepare spread over 1, 2, 4 tasks (processes) as a ratio to one task.

    python bench/prepare.py [--work /tmp/mixtrain-bench-prepare] [--before REF] [--big-mb 50]
    python bench/prepare.py --tasks 1,2,4 [--tasks-mb 24] [--repeats 1]

Every measurement is one `prepare_corpus` in a fresh subprocess (same tokenizer file, so only
the tokenizing and writing are timed), which reports its wall time, the tokens written and
`getrusage` peak RSS of itself and of its largest child (tokenizer workers, litdata's writer).
1. the demo corpus (data=demo, 5 domains x 2 MB): num_workers=1 and 2 with this tree; ratio
   against the 1-worker run of the same invocation.
2. a generated 50 MB single-domain corpus (Zipf words, seeded): peak RSS with this tree
   (num_workers=1, then 2: tokens/s on a corpus where tokenizing dominates) and with `--before REF` (a git commit whose mixtrain/ is extracted with `git archive`; default
   e731db1, the last commit before streamed shards), plus the RSS of a process that only
   imports prepare (the floor both share).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"block_size": 1025, "blocks_per_chunk": 256}
CHILD = r"""
import json, resource, sys, time
kw = json.loads(sys.argv[1])
from mixtrain.prepare.pipeline import prepare_corpus
from mixtrain.prepare.shards import ShardSettings
if kw.pop("imports_only", False):  # the floor: prepare + what its litdata writer imports (torch)
    import litdata, torch
    out = {"seconds": 0.0, "tokens": 0}
else:
    raw, data_dir = kw.pop("raw"), kw.pop("out")
    t0 = time.perf_counter()
    manifest = prepare_corpus(raw, data_dir, settings=ShardSettings(**kw.pop("settings")), **kw)
    seconds = time.perf_counter() - t0
    tokens = sum(json.load(open(f"{data_dir}/{d}/stats.json"))["num_tokens"] for d in manifest["domains"])
    out = {"seconds": seconds, "tokens": tokens}
import mixtrain
out["mixtrain"] = mixtrain.__file__
out["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def _run(pythonpath: Path, **kw) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"prepare failed ({pythonpath}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _big_domain(root: Path, megabytes: int, seed: int = 0) -> Path:
    """RAW/big/big.jsonl: ~`megabytes` MB of documents of Zipf-distributed pseudo-words."""
    path = root / "big" / "big.jsonl"
    if path.is_file():
        return root
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(20_000)]
    total, target = 0, megabytes * 1_000_000
    with open(path, "w") as f:
        while total < target:
            ids = np.minimum(rng.zipf(1.2, size=int(rng.integers(100, 1500))) - 1, len(words) - 1)
            line = json.dumps({"text": " ".join(words[i] for i in ids)}) + "\n"
            f.write(line)
            total += len(line)
    return root


def _many_files_corpus(root: Path, domains: int, files: int, megabytes: float) -> Path:
    """RAW/d<k>/part<j>.jsonl: `domains` x `files` files of Zipf pseudo-words, `megabytes` MB in all (seeded)."""
    if root.is_dir():
        return root
    for k in range(domains):
        one = _big_domain(root / f"src{k}", max(1, round(megabytes / domains)), seed=k) / "big" / "big.jsonl"
        lines = one.read_text().splitlines(True)
        (root / f"d{k}").mkdir(parents=True)
        for j in range(files):
            (root / f"d{k}" / f"part{j:02d}.jsonl").write_text("".join(lines[j::files]))
        subprocess.run(["rm", "-rf", str(root / f"src{k}")], check=True)
    return root


def tasks_scaling(work: Path, counts: list[int], megabytes: float, repeats: int) -> None:
    """`python -m mixtrain.prepare` as n processes (prepare.node_rank/num_nodes) on this machine, tokenizer
    given (so tokenizing + join are timed, not training); wall time from the first start to the last exit."""
    import time

    raw = _many_files_corpus(work / f"tasks-raw-{megabytes:g}mb", domains=4, files=8, megabytes=megabytes)
    model = work / "tokenizer.model"
    size_mb = sum(p.stat().st_size for p in raw.rglob("*.jsonl")) / 1e6
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_") and k not in ("RANK", "WORLD_SIZE")}
    print(f"## prepare across tasks: {size_mb:.0f} MB, 4 domains x 8 .jsonl files, tasks as processes on this machine "
          f"({os.cpu_count()} CPUs)")
    rates: dict[int, float] = {}
    reference = None
    for n in counts:
        for _ in range(repeats):
            out = work / f"tasks-{n}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            cmd = [sys.executable, "-m", "mixtrain.prepare", "data=dir", f"data.root={raw}", f"data_dir={out}",
                   f"tokenizer.model_path={model}", f"prepare.num_nodes={n}"]
            t0 = time.perf_counter()
            procs = [subprocess.Popen(cmd + [f"prepare.node_rank={r}"], env=env, cwd=work, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True) for r in range(n)]
            exits: dict[int, float] = {}  # a task that does not join exits when its share is done
            while len(exits) < n:
                exits.update({r: time.perf_counter() - t0 for r, p in enumerate(procs) if r not in exits and p.poll() is not None})
                time.sleep(0.05)
            logs = [p.communicate()[0] for p in procs]
            seconds = time.perf_counter() - t0
            joiner = [r for r, log in enumerate(logs) if "joined " in log or n == 1]
            others = [t for r, t in exits.items() if r not in joiner]
            phases = f"; other tasks done at {max(others):.1f} s, joining task at {exits[joiner[0]]:.1f} s" if others else ""
            if any(p.returncode for p in procs):
                raise RuntimeError("\n".join(log[-2000:] for log in logs))
            tokens = sum(json.loads((out / d / "stats.json").read_text())["num_tokens"]
                         for d in json.loads((out / "manifest.json").read_text())["domains"])
            rates[n] = max(rates.get(n, 0.0), tokens / seconds)
        chunks = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("chunk-*.bin"))}
        reference = reference or chunks
        same = "same chunk bytes as 1 task" if chunks == reference else "CHUNKS DIFFER from 1 task"
        print(f"tasks={n}: {tokens:,} tokens, best of {repeats}: {tokens / rates[n]:.1f} s = {rates[n]:,.0f} tokens/s "
              f"(x{rates[n] / rates[counts[0]]:.2f} vs {counts[0]} task); {same}{phases}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mixtrain-bench-prepare"))
    ap.add_argument("--before", default="e731db1", help="git commit of the 'before' code (RSS comparison)")
    ap.add_argument("--big-mb", type=int, default=50)
    ap.add_argument("--tasks", default=None, help="e.g. 1,2,4: only the across-tasks scaling (prepare.num_nodes)")
    ap.add_argument("--tasks-mb", type=float, default=24.0, help="corpus size for --tasks")
    ap.add_argument("--repeats", type=int, default=1, help="--tasks: runs per task count (best is reported)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    from mixtrain.prepare.corpus import iter_documents, list_domains
    from mixtrain.prepare.demo_corpus import build_demo_corpus
    from mixtrain.prepare.tokenizer import balanced_sample, train_tokenizer

    demo_raw = work / "demo-raw"
    build_demo_corpus(demo_raw, progress=False)
    model = work / "tokenizer.model"
    if not model.is_file():
        sample = balanced_sample({d: iter_documents(demo_raw, d) for d in list_domains(demo_raw)}, 1_000_000)
        train_tokenizer(sample, model, vocab_size=8192)
    if args.tasks:
        tasks_scaling(work, [int(n) for n in args.tasks.split(",")], args.tasks_mb, args.repeats)
        return
    before = work / f"before-{args.before}"
    if not before.is_dir():
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "mixtrain"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)

    def fresh(name: str) -> str:
        out = work / name
        subprocess.run(["rm", "-rf", str(out)], check=True)
        return str(out)

    common = {"tokenizer_model": str(model), "settings": SETTINGS}
    print("## demo corpus: tokens/s by num_workers")
    rates = {}
    for n in (1, 2):
        r = _run(REPO, raw=str(demo_raw), out=fresh(f"demo-w{n}"), num_workers=n, **common)
        rates[n] = r["tokens"] / r["seconds"]
        print(f"num_workers={n}: {r['tokens']:,} tokens in {r['seconds']:.1f} s = {rates[n]:,.0f} tokens/s "
              f"(x{rates[n] / rates[1]:.2f} vs 1 worker); peak RSS {r['self_maxrss_mb']:.0f} MB, "
              f"largest child {r['children_maxrss_mb']:.0f} MB")

    big_raw = _big_domain(work / "big-raw", args.big_mb)
    size_mb = (big_raw / "big" / "big.jsonl").stat().st_size / 1e6
    print(f"## {size_mb:.0f} MB domain: peak RSS (MB) of prepare, num_workers=1")
    floor = _run(REPO, imports_only=True)
    print(f"imports only (prepare + torch + litdata): {floor['self_maxrss_mb']:.0f}")
    big = {}
    for label, path, extra in ((f"before ({args.before})", before, {}), ("after (this tree)", REPO, {}),
                               ("after, num_workers=2", REPO, {"num_workers": 2})):
        r = big[label] = _run(path, raw=str(big_raw), out=fresh("big-out"), **common, **extra)
        print(f"{label}: main {r['self_maxrss_mb']:.0f}, largest child {r['children_maxrss_mb']:.0f} "
              f"({r['tokens']:,} tokens in {r['seconds']:.1f} s = {r['tokens'] / r['seconds']:,.0f} tokens/s; "
              f"{r['mixtrain']})")


if __name__ == "__main__":
    main()
