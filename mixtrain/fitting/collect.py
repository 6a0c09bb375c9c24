"""Build the observation table from training runs' metrics.csv files.

    python -m mixtrain.fitting.collect RUN_DIR... --out table.csv [--every N] [--final-only]

Place in the flow: `mixtrain.train` writes RUN/metrics.csv -> runfiles.py (finding and reading
runs) -> **collect.py** -> table.csv -> `python -m mixtrain.fitting.fit --table table.csv ...`.

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
Model size and tokens: the `tokens` column is the training tokens seen at that step (the
law's num_tokens D), and `num_params` is the run's non-embedding parameter count N (rebuilt from
RUN/config.yaml's `model:` on PyTorch's meta device, no memory), written when every run has a
config.yaml with a `model:` block (`--num-params` requires it, `--no-num-params` skips it). They
are the input of the law across model sizes (`mixtrain.fitting.fit --law scaling`, laws/scaling.py).
(`--scale-out`, a separate run/step/num_params/num_tokens file, is retired: the table has both.)
"""

from __future__ import annotations

import argparse
import math
import sys

from mixtrain.store.runfiles import find_run_dirs, num, read_metrics_rows, run_names
from mixtrain.laws.table import make_table, write_table
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

    from mixtrain.model.gpt import GPT, GPTConfig

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


def _has_model_config(run_dir: str) -> bool:
    import os

    import yaml

    try:
        with open(os.path.join(run_dir, "config.yaml")) as f:
            return bool((yaml.safe_load(f) or {}).get("model"))
    except (OSError, yaml.YAMLError, AttributeError):
        return False


def collect(paths: list[str], *, every: int | None = None, final_only: bool = False,
            training_domains_only: bool = False, num_params: bool | None = None):
    """Observation table from the runs at or under `paths`. `num_params`: True requires every run's
    model config (the column), False skips it, None writes it when every run has one."""
    found = find_run_dirs(paths)
    names = run_names(found)
    required = num_params is True
    if num_params is None:
        num_params = all(_has_model_config(str(d)) for d, _ in found)
        if not num_params and found:
            print("collect: no num_params column (a run has no config.yaml with a model: block)", file=sys.stderr)
    params: list[int] = []
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
        n_params = None
        if num_params:
            try:
                n_params = run_num_params(run_dir)
            except ValueError as e:
                if required:
                    raise
                # by default the column is a bonus: a run moved away from its data_dir still collects
                print(f"collect: no num_params column: {e}", file=sys.stderr)
                num_params, params = False, []
        for o in obs:
            if num_params:
                params.append(n_params)
            runs.append(name)
            steps.append(o["step"])
            tokens.append(o["tokens"])
            W.append([o["w"][d] for d in train])
            L.append([o["loss"][d] for d in evals])
    if not runs:
        raise ValueError(f"no validation rows found in {paths}")
    tok = tokens if all(t is not None for t in tokens) else None
    return make_table(train, evals, runs, steps, W, L, tok, source="collect", num_params=params if num_params else None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="mixtrain collect", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or folders of runs (Hydra multirun)")
    ap.add_argument("--out", required=True, help="observation table CSV to write")
    ap.add_argument("--every", type=int, default=None, metavar="N", help="keep steps divisible by N")
    ap.add_argument("--final-only", action="store_true", help="keep only each run's last validation row")
    ap.add_argument("--training-domains-only", action="store_true",
                    help="no loss/ columns for eval-only domains (domains without a mix/ column)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--num-params", dest="num_params", action="store_true", default=None,
                       help="require the num_params column (every run's config.yaml model:); default: when all have one")
    group.add_argument("--no-num-params", dest="num_params", action="store_false", help="no num_params column")
    args = ap.parse_args(argv)
    try:
        table = collect(args.runs, every=args.every, final_only=args.final_only,
                        training_domains_only=args.training_domains_only, num_params=args.num_params)
    except ValueError as e:
        sys.exit(f"collect: {e}")
    write_table(table, args.out)
    if table.num_params is not None:
        print(f"collect: num_params {sorted({int(n) for n in table.num_params})}")
    print(f"collect: {table.n_runs} runs, {table.n_rows} rows, training domains {list(table.train_domains)}, "
          f"eval domains {list(table.eval_domains)} -> {args.out}")


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain collect")
