"""Benchmark: sequential proxy search vs one blind random batch, on synthetic worlds with a known optimum.

    python bench/search.py [--worlds 50] [--domains 8,17] [--methods thompson] [--pool-worlds 40]
                           [--mf-worlds 20] [--fig-dir docs/figures] [--out bench_search.json]
    python bench/search.py --worlds 12 --domains 8 --methods thompson,climb,qei --pool-worlds 0 --mf-worlds 0
    python bench/search.py --worlds 0 --methods thompson,climb,qei --pool-worlds 20 --pool-all-methods --mf-worlds 0

Place in the flow: laws/synthetic.World (ground truth) -> simulated proxy runs -> laws/optim/acquisition.py
(`next_batch`, what `mixtrain proxy --next` runs) -> the project's final decision -> regret against the truth.

Three experiments, each paired per world (same world, same first 16 runs, same noise level):
1. Continuous: random = RegMix-style Dirichlet draws around natural (World.proxy_table's design), N runs;
   sequential = the same first 16, then rounds of 8 from `next_batch` over 5,000 drawn candidates (CLI: 20,000).
   The final decision at N runs is the default optimiser (laws/optim/sampled.py `propose`, ridge,
   4,000 candidates, 5 bootstrap refits: fewer than the CLI's 100,000 / 20 to fit the bench's time; the
   bimix as the check law at every run count (the CLI: lightgbm from 32 runs, 14 s a decision at 17 domains);
   the same for both arms, so the comparison stays paired);
   regret = true mean loss of the written mixture - the true optimum's (World.optimum).
2. Pool: a fixed pool of 500 mixtures (the same Dirichlet design); random = N pool rows, sequential = 16
   random rows then rounds of 8 chosen from the pool; decision = the pool row with the lowest mean
   prediction over 10 bootstrap refits of ridge; regret against the best pool row.
3. Multi-fidelity (ADMIRE-style): the world at 3 sizes, costs 1/16, 1/4, 1 (a large run = 1); a smaller size
   sees the loss plus a known bias (level + a linear tilt in w: sd 0.03 medium, 0.06 small) and noise.
   Pool: 200 mixtures x 3 sizes. Single fidelity = BoTorch qLogEI on large runs only (4 random, then
   batches of 4); multi-fidelity = the GP of gp_acquisition.py (8 small + 2 large random, then batches of 4
   chosen with their size by cost-weighted max-value entropy). Regret of the posterior-mean recommendation at
   the largest size (against the best pool mixture at that size) vs the cumulative cost.
Paired statistics: per world, sequential - random at equal runs; median, share of worlds better, Wilcoxon
signed-rank p (scipy). Progress bars (tqdm) show the worlds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy.stats import wilcoxon
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mixtrain.laws import make_law  # noqa: E402
from mixtrain.laws.optim.acquisition import EXPLORE_SHARE, draw_pool, next_batch  # noqa: E402
from mixtrain.laws.optim.bootstrap import bootstrap_laws  # noqa: E402
from mixtrain.laws.optim.observed import best_run_instead  # noqa: E402
from mixtrain.laws.optim.sampled import propose  # noqa: E402
from mixtrain.laws.synthetic import World, synthetic_table  # noqa: E402
from mixtrain.laws.table import make_table  # noqa: E402

START, PER_ROUND, BUDGETS = 16, 8, (16, 32, 48, 64)
NOISE = 0.005
SEARCH_CANDIDATES = 5_000  # drawn candidates per round (the CLI's --candidates default: 20,000)
DECIDE_CANDIDATES, DECIDE_BOOTSTRAP = 4_000, 5  # the CLI's are 100,000 / 20: the bench's time on 2 shared cores
PARTIAL: str | None = None  # results so far, rewritten after every world (a killed run keeps them)


def design(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    """RegMix-style proxy mixtures: Dirichlet(c k natural), c ~ logU(0.3, 3) per run (World.proxy_table)."""
    c = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n))
    return np.array([rng.dirichlet(ci * world.k * world.natural + 1e-3) for ci in c])


def table_of(world: World, W: np.ndarray, seed: int):
    return synthetic_table(world.loss, W, [world.s_ref], world.domains, noise=NOISE, seed=seed)


def decide(world: World, W: np.ndarray, seed: int) -> tuple[float, float]:
    """Regret after runs at W of the default optimiser's written mixture, and of the same with step 7
    (`--prefer-best-run`, laws/optim/observed.py: the best run when its measured loss beats the written's prediction)."""
    law = make_law("ridge").fit(table_of(world, W, seed), cv_folds=0)
    p = propose(law, world.s_ref, candidates=DECIDE_CANDIDATES, bootstrap=DECIDE_BOOTSTRAP, check_law="bimix", seed=seed)
    written = np.array(list(p.weights.values()))
    alt = best_run_instead(law, written, world.s_ref, law.importance_vector(None))
    opt = world.mean_loss(world.optimum())
    return world.mean_loss(written) - opt, world.mean_loss(written if alt is None else alt[1]) - opt


def method_spec(spec: str) -> tuple[str, float]:
    """"thompson" (the default exploration share) or "thompson@0.25" (that share) -> (method, share)."""
    m, _, share = spec.partition("@")
    return m, (EXPLORE_SHARE if not share else float(share))


def _arms(row: dict, name: str, decided: dict[int, tuple[float, float]]) -> None:
    row[name] = {n: d[0] for n, d in decided.items()}
    row[name + "+run"] = {n: d[1] for n, d in decided.items()}


def sequential_W(world: World, W0: np.ndarray, budget: int, method: str, seed: int, pool=None) -> list[np.ndarray]:
    """Mixtures after each round: start W0, then rounds of PER_ROUND from next_batch (pool rows if a pool)."""
    W, out, r = W0.copy(), [W0.copy()], 0
    taken = np.zeros(0 if pool is None else len(pool), bool)
    while len(W) < budget:
        r += 1
        law = make_law("ridge").fit(table_of(world, W, seed + 100 * r), cv_folds=0)
        C = draw_pool(law, SEARCH_CANDIDATES, np.random.default_rng(seed + r)) if pool is None else pool
        allowed = None if pool is None else ~taken
        m, share = method_spec(method)
        b = next_batch(law, C, PER_ROUND, step=world.s_ref, method=m, seed=seed + r, allowed=allowed, explore=share)
        if pool is not None:
            taken[b.index] = True
        W = np.vstack([W, C[b.index]])
        out.append(W.copy())
    return out


def continuous(worlds: list[tuple[int, int]], methods: list[str]) -> dict:
    rows = []
    for k, s in tqdm(worlds, desc="continuous worlds", file=sys.stderr):
        world = World(k, s)
        rng = np.random.default_rng(1000 + s)
        Wr = design(world, max(BUDGETS), rng)
        row = {"k": k, "seed": s}
        _arms(row, "random", {n: decide(world, Wr[:n], s) for n in BUDGETS})
        for m in methods:
            steps = sequential_W(world, Wr[:START], max(BUDGETS), m, s)
            _arms(row, m, {len(W): decide(world, W, s) for W in steps if len(W) in BUDGETS})
        rows.append(row)
        _partial("continuous", rows)
    return {"rows": rows}


def pool_regret(world: World, pool: np.ndarray, truth: np.ndarray, W: np.ndarray, seed: int) -> float:
    law = make_law("ridge").fit(table_of(world, W, seed), cv_folds=0)
    refits = bootstrap_laws(law, 10, np.random.default_rng(seed))
    pred = np.mean([f._predict(pool, np.full(len(pool), world.s_ref)).mean(axis=1) for f in refits], axis=0)
    return float(truth[np.argmin(pred)] - truth.min())


def pooled(worlds: list[tuple[int, int]], methods: list[str]) -> dict:
    rows = []
    for k, s in tqdm(worlds, desc="pool worlds", file=sys.stderr):
        world = World(k, s)
        rng = np.random.default_rng(2000 + s)
        pool = design(world, 500, rng)
        truth = world.loss(pool, np.full(len(pool), world.s_ref)).mean(axis=1)
        order = rng.permutation(len(pool))
        row = {"k": k, "seed": s, "random": {n: pool_regret(world, pool, truth, pool[order[:n]], s) for n in BUDGETS}}
        for method in methods:
            steps = sequential_W(world, pool[order[:START]], max(BUDGETS), method, s, pool=pool)
            row[method] = {len(W): pool_regret(world, pool, truth, W, s) for W in steps if len(W) in BUDGETS}
        rows.append(row)
        _partial("pool", rows)
    return {"rows": rows}


SIZES = (1 / 16, 1 / 4, 1.0)  # relative cost = fidelity
BIAS_SD = {1 / 16: 0.06, 1 / 4: 0.03, 1.0: 0.0}


def mf_world(k: int, seed: int):
    """(World, loss(W, fidelity) -> mean loss at that size with its bias and noise)."""
    world = World(k, seed)
    rng = np.random.default_rng(3000 + seed)
    tilt = {f: rng.normal(0, BIAS_SD[f], k) for f in SIZES}
    level = {1 / 16: 0.5, 1 / 4: 0.2, 1.0: 0.0}

    def loss(W, f, noise_rng):
        base = world.loss(W, np.full(len(W), world.s_ref)).mean(axis=1)
        return base + level[f] + (W - 1.0 / k) @ tilt[f] + NOISE * base * noise_rng.standard_normal(len(W))
    return world, loss


def mf_run(k: int, s: int, multi: bool, max_cost: float, batch: int = 4) -> list[tuple[float, float]]:
    """[(cumulative cost, regret of the recommendation at the largest size)] for one world."""
    from mixtrain.laws.optim.gp_acquisition import Fidelity, mf_recommend, qei_batch

    world, loss = mf_world(k, s)
    rng = np.random.default_rng(4000 + s)
    pool_W = design(world, 200, rng)
    truth = world.loss(pool_W, np.full(len(pool_W), world.s_ref)).mean(axis=1)
    sizes = SIZES if multi else (1.0,)
    P = np.vstack([pool_W] * len(sizes))
    fid = np.repeat(sizes, len(pool_W))
    start = {1 / 16: 8, 1.0: 2} if multi else {1.0: 4}
    taken = np.zeros(len(P), bool)
    for f, n in start.items():
        taken[rng.choice(np.flatnonzero(fid == f), n, replace=False)] = True
    out, seen = [], {}  # pool row -> its observed loss (drawn once: a run is trained once)
    while True:
        idx = np.flatnonzero(taken)
        for i in idx:
            if i not in seen:
                seen[i] = float(loss(P[[i]], fid[i], rng)[0])
        y = np.array([seen[i] for i in idx])
        table = make_table(world.domains, ["mean"], [f"r{i}" for i in idx], np.full(len(idx), world.s_ref),
                           P[idx], y[:, None])
        F = Fidelity(fid[idx], fid)
        i, _, _ = mf_recommend(table, pool_W, importance=np.ones(1), fidelity=F if multi else None, seed=s)
        cost = float(fid[idx].sum())
        out.append((cost, float(truth[i] - truth.min())))
        if cost >= max_cost:
            return out
        pick, _ = qei_batch(table, P, batch, step=world.s_ref, importance=np.ones(1), free=~taken, seed=s,
                            fidelity=F if multi else None)
        taken[pick] = True


def multi_fidelity(worlds: list[tuple[int, int]], max_cost: float) -> dict:
    rows = []
    for k, s in tqdm(worlds, desc="multi-fidelity worlds", file=sys.stderr):
        rows.append({"k": k, "seed": s, "single": mf_run(k, s, False, max_cost), "multi": mf_run(k, s, True, max_cost)})
        _partial("mf", rows)
    return {"rows": rows}


def _partial(part: str, rows: list[dict]) -> None:
    if PARTIAL:
        with open(f"{PARTIAL}.{part}.partial", "w") as f:
            json.dump(rows, f, default=float)


def paired(rows: list[dict], a: str, b: str = "random") -> list[dict]:
    """Per budget: median regret of a and b, median paired difference, share of worlds a < b, Wilcoxon p."""
    out = []
    for n in BUDGETS:
        pairs = [(r[a][n], r[b][n]) for r in rows if n in r.get(a, {}) and n in r[b]]
        if not pairs:
            continue
        x, y = np.array(pairs).T
        d = x - y
        p = float(wilcoxon(x, y).pvalue) if np.any(d != 0) and len(d) > 5 else float("nan")
        out.append({"runs": n, "median_" + a: float(np.median(x)), "median_" + b: float(np.median(y)),
                    "median_diff": float(np.median(d)), "share_better": float(np.mean(d < 0)),
                    "share_worse": float(np.mean(d > 0)), "wilcoxon_p": p, "worlds": len(d)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=50, help="continuous worlds per domain count")
    ap.add_argument("--domains", default="8,17")
    ap.add_argument("--methods", default="thompson")
    ap.add_argument("--pool-worlds", type=int, default=40, help="pool worlds (8 domains)")
    ap.add_argument("--pool-all-methods", action="store_true", help="pool worlds: every --methods rule, not only the first")
    ap.add_argument("--mf-worlds", type=int, default=16, help="multi-fidelity worlds (8 domains)")
    ap.add_argument("--mf-cost", type=float, default=12.0, help="budget in large-run costs")
    ap.add_argument("--seed0", type=int, default=500, help="first world seed (0-49 tuned nothing here)")
    ap.add_argument("--fig-dir", default="docs/figures")
    ap.add_argument("--out", default="bench_search.json")
    args = ap.parse_args()
    methods = args.methods.split(",")
    global PARTIAL
    PARTIAL = args.out
    t0 = time.time()
    res: dict = {"args": vars(args)}
    worlds = [(int(k), args.seed0 + s) for k in args.domains.split(",") for s in range(args.worlds)]
    if worlds:
        res["continuous"] = continuous(worlds, methods)
        res["continuous"]["paired"] = {m + d: paired(res["continuous"]["rows"], m + d) for m in methods for d in ("", "+run")}
    if args.pool_worlds:
        pw = [(8, args.seed0 + s) for s in range(args.pool_worlds)]
        res["pool"] = pooled(pw, methods if args.pool_all_methods else methods[:1])
        res["pool"]["paired"] = {m: paired(res["pool"]["rows"], m) for m in (methods if args.pool_all_methods else methods[:1])}
    if args.mf_worlds:
        res["mf"] = multi_fidelity([(8, args.seed0 + s) for s in range(args.mf_worlds)], args.mf_cost)
    res["seconds"] = time.time() - t0
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1, default=float)
    from bench_search_report import report  # noqa: E402  (the tables and figures, next to this file)

    report(res, args.fig_dir)


if __name__ == "__main__":
    main()
