"""The round loop's steps for a multi-fidelity pool (launch/proxy_rounds.sh with POOL=sized_pool.csv): which
rows start the search, which model preset trains each chosen row, and the recommendation for the largest size.

    python -m mixtrain.fitting.search_loop kind POOL                       # "multi" (sizes) or "single"
    python -m mixtrain.fitting.search_loop first POOL --num-runs 10 --out DIR [--seed 0]
    python -m mixtrain.fitting.search_loop groups DIR                      # "<model> <file,file,...>" per line
    python -m mixtrain.fitting.search_loop recommend --table T --pool POOL --out OUT/round-R/weights.yaml

Place in the flow: a pool CSV with sizes (`w/<domain>`, `num_params`, `model`, optional `cost`/`tokens`/`run`)
-> **first** (round 0: random pool rows, most at the cheapest size, a fifth at the largest, as the bench's
8 small + 2 large) -> train each row at its `model` (**groups**: one Hydra sweep per model preset) ->
collect -> `mixtrain proxy --next K --pool POOL` (fitting/search.py: the multi-fidelity GP picks size and
mixture) -> ... -> **recommend** (the GP's posterior-mean best mixture at the largest size, written as a
weights.yaml that `mixing=manual mixing.weights_file=` reads and search_rounds.py plots).

Why a `model` column: a run's size in the table is its counted parameters (`mixtrain collect` writes
num_params, non-embedding); the loop needs the Hydra preset (`model=<name>`, conf/model/) that trains it, optionally followed by
`;key=value` overrides for sizes between presets (`tiny;model.n_layer=8`; no spaces).
The pool's num_params must be that count for the preset (collect a short run of it, or copy the column
from any table that has one), so the table's runs find their cost in the pool.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from types import SimpleNamespace

import numpy as np

from mixtrain.errors import ConfigError, DataError, MixtrainError
from mixtrain.fitting.search import Pool, _fidelity, _table, read_pool, write_batch
from mixtrain.laws.table import WEIGHT_PREFIX

__all__ = ["first_rows", "groups", "pool_kind", "read_sized_pool", "recommend"]

LARGE_SHARE = 0.2  # of the first batch at the largest size (the bench: 2 of 10); the rest at the cheapest


def _header(path: str) -> list[str]:
    try:
        with open(path, newline="") as f:
            return next(csv.reader(f), [])
    except FileNotFoundError:
        raise DataError(f"POOL {path}: no such file") from None


def pool_kind(path: str) -> str:
    """'multi' when the pool has a num_params column (then a model column is required), else 'single'."""
    header = _header(path)
    if "num_params" not in header:
        return "single"
    if "model" not in header:
        raise DataError(f"POOL {path}: a multi-fidelity pool (column 'num_params') needs a 'model' column naming the "
                        "conf/model/<name>.yaml preset that trains each row's size (e.g. tiny, small)")
    return "multi"


def read_sized_pool(path: str) -> Pool:
    """The pool read on its own (no table yet: round 0), its domains from its `w/<domain>` columns."""
    pool_kind(path)
    doms = [c[len(WEIGHT_PREFIX):] for c in _header(path) if c.startswith(WEIGHT_PREFIX)]
    if not doms:
        raise DataError(f"POOL {path}: no w/<domain> columns")
    return read_pool(path, SimpleNamespace(train_domains=doms, source="(none yet)", num_params=np.ones(1)))


def first_rows(pool: Pool, n: int, seed: int = 0) -> list[int]:
    """Round 0: n distinct pool rows at random, ceil(LARGE_SHARE n) (at least 1) at the largest cost, the rest
    at the cheapest (ADMIRE starts at random points; cheap runs explore, a few large ones anchor the target size)."""
    if pool.cost is None:
        raise DataError(f"POOL {pool.source}: no 'num_params' column, so no sizes to start from")
    rng = np.random.default_rng(seed)
    big = np.flatnonzero(np.isclose(pool.cost, pool.cost.max()))
    small = np.flatnonzero(np.isclose(pool.cost, pool.cost.min()))
    n_big = min(len(big), max(1, int(np.ceil(LARGE_SHARE * n)))) if n > 1 else 1
    n_small = n - n_big
    if n_small > len(small) or (n_small and np.array_equal(small, big)):
        raise ConfigError(f"--num-runs {n}: the pool {pool.source} has {len(small)} rows at the cheapest size and "
                          f"{len(big)} at the largest; ask for fewer first runs or add rows")
    return [int(i) for i in rng.choice(big, n_big, replace=False)] + \
        [int(i) for i in rng.choice(small, n_small, replace=False)]


def write_first(pool: Pool, n: int, out_dir: str, seed: int = 0) -> list[str]:
    idx = first_rows(pool, n, seed)
    why = ["first batch: random pool row at the " + ("largest" if pool.cost[i] == pool.cost.max() else "cheapest")
           + " size" for i in idx]
    batch = SimpleNamespace(index=idx, reason=why, predicted=[float("nan")] * len(idx))
    doms = [c[len(WEIGHT_PREFIX):] for c in pool.header if c.startswith(WEIGHT_PREFIX)]
    return write_batch(out_dir, SimpleNamespace(train_domains=doms), batch, pool.W, pool, None)


def groups(next_dir: str) -> list[tuple[str, list[str]]]:
    """[(model preset, its mix files)] of a written batch (DIR/next.csv's `model` column, in the files' order)."""
    path = os.path.join(next_dir, "next.csv")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: missing (write the batch with `mixtrain proxy --next` or `search_loop first`)") from None
    files = sorted((p for p in os.listdir(next_dir) if p.startswith("mix-") and p.endswith(".yaml")),
                   key=lambda p: int(p.split("-")[1]))
    if len(files) != len(rows) or any("model" not in r or not r["model"] for r in rows):
        raise DataError(f"{path}: expected one mix-XX yaml per row and a 'model' column in every row "
                        f"({len(files)} files, {len(rows)} rows)")
    out: dict[str, list[str]] = {}
    for row, name in zip(rows, files):
        out.setdefault(row["model"], []).append(os.path.join(next_dir, name))
    return list(out.items())


def recommend(table_path: str, pool_path: str, out_path: str, seed: int = 0) -> dict:
    """The multi-fidelity GP's best mixture at the largest size -> a weights.yaml with a `proposal:` block in the
    shape search_rounds.py reads (predicted mean loss at the largest size, ~95% interval from the posterior sd)."""
    import yaml

    from mixtrain.laws.optim.gp_acquisition import mf_posterior

    table = _table(table_path)
    pool = read_pool(pool_path, table)
    if pool.cost is None:
        raise DataError(f"--pool {pool_path}: no 'num_params' column: recommend is for multi-fidelity pools "
                        "(a single-size sweep uses `mixtrain fit --optimize`)")
    fid = _fidelity(table, pool)
    imp = np.full(len(table.eval_domains), 1.0 / len(table.eval_domains))
    top = np.flatnonzero(np.isclose(fid.pool, 1.0))
    u = np.full((1, len(table.train_domains)), 1.0 / len(table.train_domains))
    means, sds = mf_posterior(table, np.vstack([pool.W[top], u]), importance=imp, fidelity=fid, seed=seed)
    i = int(np.argmin(means[:-1]))  # the recommendation: as mf_recommend, uniform scored by the same fit
    mean, sd, um, usd = float(means[i]), float(sds[i]), float(means[-1]), float(sds[-1])
    tri = lambda m, s: {"full_fit": m, "lo": m - 1.96 * s, "hi": m + 1.96 * s}  # noqa: E731
    row = pool.rows[int(top[i])]
    doc = {"weights": dict(zip(table.train_domains, pool.W[top[i]].tolist())),
           "proposal": {"chosen": f"pool row {row.get('run') or int(top[i])} (model {row.get('model')})",
                        "n_runs": len(table.final_rows()), "model": row.get("model"),
                        "num_params": float(row["num_params"]),
                        "how": "multi-fidelity GP (ADMIRE): posterior-mean best of the pool's largest-size rows",
                        "predicted_mean_loss": {"proposal": tri(mean, sd), "uniform": tri(um, usd)}}}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("# recommendation for the largest size of the pool (mixtrain.fitting.search_loop recommend)\n")
        yaml.safe_dump(doc, f, sort_keys=False)
    return doc


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("kind").add_argument("pool")
    f = sub.add_parser("first")
    f.add_argument("pool")
    f.add_argument("--num-runs", type=int, required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--seed", type=int, default=0)
    sub.add_parser("groups").add_argument("next_dir")
    r = sub.add_parser("recommend")
    r.add_argument("--table", required=True)
    r.add_argument("--pool", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "kind":
            print(pool_kind(args.pool))
        elif args.cmd == "first":
            print(",".join(write_first(read_sized_pool(args.pool), args.num_runs, args.out, args.seed)))
        elif args.cmd == "groups":
            for model, files in groups(args.next_dir):
                print(model, ",".join(files))
        else:
            doc = recommend(args.table, args.pool, args.out, args.seed)
            print(f"[search_loop] {args.out}: {doc['proposal']['chosen']}, predicted mean loss "
                  f"{doc['proposal']['predicted_mean_loss']['proposal']['full_fit']:.4f}", file=sys.stderr)
    except (MixtrainError, ValueError) as e:
        sys.exit(f"search_loop {args.cmd}: {e}")


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain search_loop")
