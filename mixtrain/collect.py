"""Build the observation table from training runs' metrics.csv files.

    python -m mixtrain.collect RUN_DIR... --out table.csv [--every N] [--final-only]

Place in the flow: `mixtrain.train` writes RUN/metrics.csv -> runfiles.py (finding and reading
runs) -> **collect.py** -> table.csv -> `python -m mixtrain.fit --table table.csv ...`.

Each RUN_DIR is a run directory (holds metrics.csv) or any folder above run directories, e.g. a
Hydra multirun folder: it is searched recursively. A run is named by its directory's name; if
two runs share a name, by its path relative to the folder given on the command line.
Rows kept: those with a value in every `val/<domain>/loss` column and step > 0 (a step-0
validation says nothing about the mixture, and the laws use log step). Weights of a row: the
`mix/<domain>` columns of that row, or of the latest earlier row that has them; normalised
with `normalize_weights`. A step logged twice (a resumed run) keeps its last row.
`--every N` keeps steps divisible by N; `--final-only` keeps each run's last kept row.
Eval-only domains (`eval_only_domains`: validated, never trained on) have `val/` but no `mix/`
columns: they become `loss/<domain>` columns with no `w/<domain>` (fit them with a law that
relates every eval domain to all weights, e.g. loglinear); `--training-domains-only` drops them
(for bimix, which fits each domain from its own weight).
`--scale-out SCALE.csv` also writes, row for row with the table, `run, step, num_params,
num_tokens`: the model's non-embedding parameter count (rebuilt from RUN/config.yaml's `model:`
on PyTorch's meta device, no memory) and the training tokens seen at that step. It is the input
of the law across model sizes (mixtrain/laws/scaling.py). It is a separate file until the
observation table carries these columns.
"""

from __future__ import annotations

import argparse
import math
import sys

from mixtrain.runfiles import find_run_dirs, num, read_metrics_rows, run_names
from mixtrain.table import make_table, write_table
from mixtrain.weights import normalize_weights

def read_run(path: str) -> tuple[list[str], list[str], list[dict]]:
    """(train domains, eval domains, observations) of one run's metrics.csv.

    An observation is {"step", "tokens" (or None), "w": {d: weight}, "loss": {d: loss}}.
    """
    file, header, rows = read_metrics_rows(path)
    train = sorted(c[4:] for c in header if c.startswith("mix/") and not c.startswith("mix/tokens/"))
    evals = sorted(c[4:-5] for c in header if c.startswith("val/") and c.endswith("/loss") and c != "val/loss")
    if not train:
        raise ValueError(f"{file}: no mix/<domain> columns, cannot tell the run's weights")
    if not evals:
        raise ValueError(f"{file}: no val/<domain>/loss columns (was validation run?)")
    by_step: dict[float, dict] = {}
    current: dict[str, float] | None = None
    for line, row in enumerate(rows, start=2):
        mix = {d: num(row.get(f"mix/{d}")) for d in train}
        if all(v is not None for v in mix.values()):
            current = mix
        losses = {d: num(row.get(f"val/{d}/loss")) for d in evals}
        if any(v is None for v in losses.values()):
            continue
        step = num(row.get("step"))
        if step is None or step <= 0:
            continue
        bad = [d for d, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{file} line {line} step {step:g}: val/{bad[0]}/loss is {losses[bad[0]]}")
        if current is None:
            raise ValueError(f"{file} line {line} step {step:g}: validation row before any complete mix/<domain> row")
        w = normalize_weights(current, train, what=f"{file} line {line} mix/ columns")
        by_step[step] = {"step": step, "tokens": num(row.get("tokens")), "w": w, "loss": losses}
    return train, evals, [by_step[s] for s in sorted(by_step)]


def run_num_params(run_dir: str) -> int:
    """Non-embedding parameter count of the run's model (RUN/config.yaml `model:`), counted on the
    meta device (no weights allocated). The vocabulary comes from the config or, when it is null
    there (filled at run time), from the run's data_dir manifest: an untied head counts it."""
    import os

    import torch
    import yaml

    from mixtrain.model import GPT, GPTConfig

    path = os.path.join(run_dir, "config.yaml")
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; num_params needs the run's model config") from None
    model = dict(cfg.get("model") or {})
    if not model:
        raise ValueError(f"{path}: no 'model:' block; num_params needs the run's model config")
    model.pop("_target_", None)
    if not model.get("vocab_size"):
        import json

        try:  # only its vocabulary: the run may have been moved away from a full prepared data_dir
            with open(os.path.join(str(cfg.get("data_dir")), "manifest.json")) as f:
                model["vocab_size"] = int(json.load(f)["vocab_size"])
        except (OSError, TypeError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: model.vocab_size is null and data_dir {cfg.get('data_dir')!r} has no "
                             f"readable manifest ({e}); num_params needs the vocabulary size") from None
    model["seq_len"] = int(model.get("seq_len") or cfg.get("seq_len") or 1)
    with torch.device("meta"):
        return int(GPT(GPTConfig(**model)).num_params(non_embedding=True))


def collect(paths: list[str], *, every: int | None = None, final_only: bool = False,
            training_domains_only: bool = False, scale: list[dict] | None = None):
    """Observation table from the runs at or under `paths`. If `scale` is a list, one
    {"run", "step", "num_params", "num_tokens"} per table row is appended to it."""
    found = find_run_dirs(paths)
    names = run_names(found)
    train = evals = None
    runs, steps, tokens, W, L = [], [], [], [], []
    for (run_dir, _), name in zip(found, names):
        run_dir = str(run_dir)
        tr, ev, obs = read_run(run_dir)
        if training_domains_only:
            ev = [d for d in ev if d in tr]
        if train is None:
            train, evals, first = tr, ev, run_dir
        elif tr != train or ev != evals:
            raise ValueError(
                f"{run_dir}: domains differ from {first}: mix/ {tr} vs {train}, val/ {ev} vs {evals}; "
                "collect runs over the same domains"
            )
        if every:
            obs = [o for o in obs if o["step"] % every == 0]
        if final_only and obs:
            obs = obs[-1:]
        if not obs:
            print(f"collect: {run_dir}: no validation rows kept, skipped", file=sys.stderr)
            continue
        num_params = run_num_params(run_dir) if scale is not None else None
        for o in obs:
            if scale is not None:
                if o["tokens"] is None:
                    raise ValueError(f"{run_dir}: step {o['step']:g} has no 'tokens' value; num_tokens needs it")
                scale.append({"run": name, "step": o["step"], "num_params": num_params, "num_tokens": o["tokens"]})
            runs.append(name)
            steps.append(o["step"])
            tokens.append(o["tokens"])
            W.append([o["w"][d] for d in train])
            L.append([o["loss"][d] for d in evals])
    if not runs:
        raise ValueError(f"no validation rows found in {paths}")
    tok = tokens if all(t is not None for t in tokens) else None
    return make_table(train, evals, runs, steps, W, L, tok, source="collect")


def write_scale(rows: list[dict], path: str) -> None:
    """The `--scale-out` CSV: run, step, num_params, num_tokens (one line per table row)."""
    import csv
    import io

    from mixtrain.runfiles import atomic_write

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["run", "step", "num_params", "num_tokens"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "step": f"{r['step']:g}", "num_tokens": f"{r['num_tokens']:.0f}"})
    atomic_write(path, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or folders of runs (Hydra multirun)")
    ap.add_argument("--out", required=True, help="observation table CSV to write")
    ap.add_argument("--every", type=int, default=None, metavar="N", help="keep steps divisible by N")
    ap.add_argument("--final-only", action="store_true", help="keep only each run's last validation row")
    ap.add_argument("--training-domains-only", action="store_true",
                    help="no loss/ columns for eval-only domains (domains without a mix/ column)")
    ap.add_argument("--scale-out", default=None, metavar="SCALE.csv",
                    help="also write run, step, num_params, num_tokens per table row (laws across model sizes)")
    args = ap.parse_args(argv)
    scale: list[dict] | None = [] if args.scale_out else None
    try:
        table = collect(args.runs, every=args.every, final_only=args.final_only,
                        training_domains_only=args.training_domains_only, scale=scale)
    except ValueError as e:
        sys.exit(f"collect: {e}")
    write_table(table, args.out)
    if scale is not None:
        write_scale(scale, args.scale_out)
        print(f"collect: num_params {sorted({r['num_params'] for r in scale})} -> {args.scale_out}")
    print(f"collect: {table.n_runs} runs, {table.n_rows} rows, training domains {list(table.train_domains)}, "
          f"eval domains {list(table.eval_domains)} -> {args.out}")


if __name__ == "__main__":
    main()
