"""Sequential proxy search: from the runs so far, the next K proxy mixtures to train (`mixtrain proxy --next`).

    mixtrain proxy --next 8 --table T.csv --out DIR [--pool POOL.csv] [--method thompson|climb|qei]
                   [--law ridge] [--explore 0.25] [--candidates 20000] [--seed 0]

Place in the flow: proxy runs -> collect.py -> table.csv -> **search.py** (a law fitted on the table,
laws/optim/acquisition.py picks K mixtures) -> DIR/next.csv + DIR/mix-XX-*.yaml (`mixing=manual
mixing.weights_file=...`, the comma list on stdout is what a Hydra sweep takes) -> more proxy runs ->
collect -> search again; `launch/proxy_sweep.sh ROUNDS=3 PER_ROUND=8` runs the loop.

Candidates: without --pool, `--candidates` Dirichlet draws inside the optimiser's support; with
--pool, the rows of POOL.csv (`w/<domain>` for exactly the table's training domains; an optional `run`
column is kept in next.csv so the chosen rows can be found; mixtures already in the table are skipped).
Multi-fidelity (ADMIRE-BayesOpt): a pool with a `num_params` column offers mixtures at several model
sizes; the cost of a row is its `cost` column, else num_params x tokens (`tokens` column), else
num_params. Then the table needs `num_params` too, the GP rule chooses size and mixture together
(cheap small runs explore, few big runs confirm), and DIR/recommendation.yaml holds the posterior-mean
best mixture at the largest size. Every error names the file and the column (mixtrain.errors).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass

import numpy as np

from mixtrain.errors import ConfigError, DataError, MixtrainError
from mixtrain.laws import make_law
from mixtrain.laws.optim.acquisition import DEFAULT_METHOD, EXPLORE_SHARE, METHODS, draw_pool, next_batch
from mixtrain.laws.table import ObservationTable, read_mixtures, read_table

__all__ = ["Pool", "main", "read_pool", "search"]


@dataclass
class Pool:
    W: np.ndarray  # [P, k]
    rows: list[dict[str, str]]  # the file's rows as read (run, num_params, cost, ... kept for next.csv)
    header: list[str]
    cost: np.ndarray | None  # [P] relative cost in (0, 1] (multi-fidelity pools only)
    source: str


def _table(path: str) -> ObservationTable:
    try:
        return read_table(path)
    except FileNotFoundError:
        raise DataError(f"--table {path}: no such file (write it with `mixtrain collect RUN_DIR... --out {path}`)") from None
    except MixtrainError:
        raise
    except ValueError as e:  # laws/table.py names the line, run and column (NaN loss, duplicated run/step, ...)
        raise DataError(f"--table: {e}") from None


def _cost_column(rows, header, path: str) -> np.ndarray | None:
    if "num_params" not in header:
        if "cost" in header:
            raise DataError(f"--pool {path}: a 'cost' column without 'num_params': a multi-fidelity pool names each "
                            "row's model size in 'num_params' (or drop 'cost' for a single-size pool)")
        return None
    cost = np.zeros(len(rows))
    for i, row in enumerate(rows):
        where = f"--pool {path} line {i + 2}"
        try:
            n = float(row["num_params"])
            c = float(row["cost"]) if "cost" in header else n * (float(row["tokens"]) if "tokens" in header else 1.0)
        except (TypeError, ValueError):
            raise DataError(f"{where}: column 'num_params'{', cost' if 'cost' in header else ''}"
                            f"{', tokens' if 'tokens' in header else ''} must be numbers, got "
                            f"{ {k: row.get(k) for k in ('num_params', 'cost', 'tokens') if k in header} }") from None
        if not (np.isfinite(c) and c > 0 and n > 0):
            raise DataError(f"{where}: column '{'cost' if 'cost' in header else 'num_params'}' must be > 0, got {c}")
        cost[i] = c
    return cost


def read_pool(path: str, table: ObservationTable) -> Pool:
    """The candidate pool CSV, checked against the table's training domains (errors name file and column)."""
    try:
        header, rows, W, _ = read_mixtures(path, table.train_domains)
    except FileNotFoundError:
        raise DataError(f"--pool {path}: no such file") from None
    except ValueError as e:
        raise DataError(f"--pool: {e} (the pool's w/<domain> columns must be the table {table.source}'s)") from None
    cost = _cost_column(rows, header, path)
    if cost is not None and table.num_params is None:
        raise DataError(f"--table {table.source}: the pool {path} is multi-fidelity (column 'num_params') but the table "
                        "has no 'num_params' column: collect the runs with `mixtrain collect` (it writes num_params) "
                        "or drop 'num_params' from the pool")
    return Pool(W, rows, header, cost, path)


def _fidelity(table: ObservationTable, pool: Pool):
    """Relative cost of every table run (final rows) and pool row; a run's cost is the pool's cost at its size."""
    from mixtrain.laws.optim.gp_acquisition import Fidelity

    n_pool = np.array([float(r["num_params"]) for r in pool.rows])
    fin = table.final_rows()
    run_cost = np.zeros(len(fin))
    for i, r in enumerate(fin):
        same = np.flatnonzero(np.isclose(n_pool, table.num_params[r], rtol=1e-6))
        if same.size:
            run_cost[i] = np.median(pool.cost[same])
        elif "cost" in pool.header:
            raise DataError(f"--table {table.source}: run {table.runs[r]!r} has num_params {table.num_params[r]:g}, a size "
                            f"the pool {pool.source} gives no 'cost' for: add pool rows at that size")
        else:
            run_cost[i] = table.num_params[r] * (table.tokens[r] if table.tokens is not None and "tokens" in pool.header else 1.0)
    top = max(run_cost.max(), pool.cost.max())
    return Fidelity(run_cost / top, pool.cost / top)


def search(table: ObservationTable, k: int, *, pool: Pool | None = None, method: str = DEFAULT_METHOD,
           law_name: str = "ridge", explore: float = EXPLORE_SHARE, candidates: int = 20_000, seed: int = 0):
    """(Batch, the candidate matrix, the law, a recommendation dict or None) for the next k runs."""
    if k < 1:
        raise ConfigError(f"--next must be >= 1, got {k}")
    law = make_law(law_name).fit(table, cv_folds=0)
    step = float(table.steps.max())
    C = draw_pool(law, candidates, np.random.default_rng(seed)) if pool is None else pool.W
    fid, rec = None, None
    if pool is not None and pool.cost is not None:
        fid = _fidelity(table, pool)
        method = "qei"  # only the GP models the size; the laws here do not
    allowed = None
    if pool is not None:
        allowed = _untrained(table, pool, fid)
        fresh = int(allowed.sum())
        if k > fresh:
            raise ConfigError(f"--next {k}: the pool {pool.source} has {len(pool.W)} rows, {fresh} of them not yet in the "
                              f"table {table.source}: ask for at most {fresh} (--next), or add rows to the pool")
    batch = next_batch(law, C, k, step=step, method=method, explore=explore, seed=seed, fidelity=fid,
                       allowed=allowed)
    if fid is not None:
        from mixtrain.laws.optim.gp_acquisition import mf_recommend

        top = np.flatnonzero(np.isclose(fid.pool, 1.0))
        cand = C[top] if top.size else C
        i, mean, sd = mf_recommend(table, cand, importance=law.importance_vector(None), fidelity=fid, seed=seed)
        rec = {"weights": dict(zip(table.train_domains, cand[i].tolist())), "predicted_mean_loss": mean,
               "predicted_sd": sd, "row": int(top[i]) if top.size else int(i)}
    return batch, C, law, rec


def _untrained(table: ObservationTable, pool: Pool, fid) -> np.ndarray:
    """Pool rows whose run name (if any) and mixture (at the same size, multi-fidelity) are not in the table."""
    names = set(table.run_names)
    fin = table.final_rows()
    out = np.ones(len(pool.W), bool)
    for i, row in enumerate(pool.rows):
        if row.get("run") and row["run"] in names:
            out[i] = False
            continue
        same = 0.5 * np.abs(table.W[fin] - pool.W[i]).sum(axis=1) < 1e-6
        if fid is not None:
            same &= np.isclose(table.num_params[fin], float(row["num_params"]), rtol=1e-6)
        out[i] = not same.any()
    return out


def write_batch(out_dir: str, table: ObservationTable, batch, C: np.ndarray, pool: Pool | None, rec) -> list[str]:
    """DIR/next.csv (the pool's columns, or w/<domain>, + predicted loss and reason) and one mix-XX yaml per row."""
    import yaml

    os.makedirs(out_dir, exist_ok=True)
    doms = table.train_domains
    cols = (pool.header if pool is not None else ["w/" + d for d in doms]) + ["predicted_mean_loss", "reason"]
    paths = []
    with open(os.path.join(out_dir, "next.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for j, (i, why, pred) in enumerate(zip(batch.index, batch.reason, batch.predicted)):
            row = dict(pool.rows[i]) if pool is not None else {"w/" + d: repr(float(x)) for d, x in zip(doms, C[i])}
            w.writerow({**row, "predicted_mean_loss": repr(pred), "reason": why})
            label = (pool.rows[i].get("run") if pool is not None else None) or f"row{i}"
            path = os.path.join(out_dir, f"mix-{j:02d}-next-{label}.yaml")
            with open(path, "w") as g:
                g.write(f"# next proxy mixture {j}: {why}\n")
                body = {"weights": {d: float(x) for d, x in zip(doms, C[i])}}
                if pool is not None and pool.cost is not None:
                    body["num_params"] = float(pool.rows[i]["num_params"])
                yaml.safe_dump(body, g, sort_keys=False)
            paths.append(path)
    if rec is not None:
        with open(os.path.join(out_dir, "recommendation.yaml"), "w") as g:
            g.write("# posterior-mean best mixture at the largest size (multi-fidelity GP, ADMIRE)\n")
            yaml.safe_dump({"weights": rec["weights"], "recommendation": {k: v for k, v in rec.items() if k != "weights"}},
                           g, sort_keys=False)
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="mixtrain proxy --next", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--next", type=int, required=True, metavar="K", help="how many proxy mixtures to propose")
    ap.add_argument("--table", required=True, help="observation table of the runs so far (mixtrain collect)")
    ap.add_argument("--pool", help="CSV of candidate mixtures (w/<domain>, optional run, num_params, cost, tokens)")
    ap.add_argument("--out", required=True, help="folder for next.csv and mix-XX-next-*.yaml")
    ap.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS)
    ap.add_argument("--law", default="ridge", help="law fitted on the table (thompson, climb)")
    ap.add_argument("--explore", type=float, default=EXPLORE_SHARE, help="share of the batch spent on coverage")
    ap.add_argument("--candidates", type=int, default=20_000, help="drawn candidates without --pool")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        if not 0 <= args.explore <= 1:
            raise ConfigError(f"--explore must lie in [0, 1], got {args.explore}")
        table = _table(args.table)
        pool = read_pool(args.pool, table) if args.pool else None
        batch, C, _, rec = search(table, args.next, pool=pool, method=args.method, law_name=args.law,
                                  explore=args.explore, candidates=args.candidates, seed=args.seed)
        paths = write_batch(args.out, table, batch, C, pool, rec)
    except (MixtrainError, ValueError) as e:
        sys.exit(f"proxy --next: {e}")
    for note in batch.notes:
        print(f"[proxy --next] note: {note}", file=sys.stderr)
    for p, why in zip(paths, batch.reason):
        print(f"{p}  {why}", file=sys.stderr)
    if rec is not None:
        print(f"[proxy --next] recommendation at the largest size: {args.out}/recommendation.yaml", file=sys.stderr)
    print(",".join(paths))


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain proxy --next")
