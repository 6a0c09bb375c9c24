"""Development worlds for issue 32's second round: which decision and which acquisition variant let 32 sequential
runs reach 64 random runs (continuous candidates). Appends one JSON line per world; bench/search.py reports the
chosen variants on fresh seeds.

    python bench/search_dev.py K FIRST_SEED END_SEED OUT.jsonl      # e.g. 8 0 20 dev8.jsonl; 17 0 20 dev17.jsonl

Place in the flow: laws/synthetic.World -> bench/search.py's design and rounds (`next_batch`) -> for each arm at
32 and 64 runs, several final decisions: written (the default optimiser), the unshrunk proposal, the best run
by measured loss, d2 (the best run when measured below the written mixture's prediction: laws/optim/observed.py),
d5 (d2 with the written mixture's prediction corrected by its 3 nearest runs' residuals), a trust radius
0.1 / 0.2; arms: Thompson with exploration 1/4 or 1/8, candidates from the support or around the predicted top
20 (CLIMB-like). Regret = true mean loss - the optimum's.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402
import search as B  # noqa: E402
from mixtrain.laws import make_law  # noqa: E402
from mixtrain.laws.optim import acquisition as A  # noqa: E402
from mixtrain.laws.optim.candidates import best_observed_run, dirichlet_around, support_caps  # noqa: E402
from mixtrain.laws.optim.sampled import propose  # noqa: E402
from mixtrain.laws.simplex import project_rows  # noqa: E402
from mixtrain.laws.synthetic import World  # noqa: E402

def decide_all(world, W, seed):
    tab = B.table_of(world, W, seed)
    law = make_law("ridge").fit(tab, cv_folds=0)
    opt = world.mean_loss(world.optimum())
    r = lambda v: float(world.mean_loss(np.asarray(v)) - opt)
    p = propose(law, world.s_ref, candidates=B.DECIDE_CANDIDATES, bootstrap=B.DECIDE_BOOTSTRAP, check_law="bimix", seed=seed)
    wr = np.array(list(p.weights.values())); pr = np.array(list(p.proposal.values()))
    _, bw, bl = best_observed_run(law, law.importance_vector(None))
    pred_w = float((law._predict(wr[None], np.array([world.s_ref])) @ law.importance_vector(None))[0])
    # residual-corrected prediction of the written mixture: + mean residual of its 3 nearest runs
    fin = tab.final_rows(); Wo = tab.W[fin]; Lo = tab.L[fin].mean(axis=1)
    res = Lo - law._predict(Wo, np.full(len(Wo), world.s_ref)).mean(axis=1)
    d = 0.5 * np.abs(Wo - wr).sum(axis=1); near = np.argsort(d)[:3]
    corr = pred_w + res[near].mean()
    out = {"written": r(wr), "proposal": r(pr), "t": p.shrink.get("t"), "best_run": r(bw),
           "d2": r(bw) if bl < pred_w else r(wr), "d5": r(bw) if bl < corr else r(wr)}
    for tr in (0.1, 0.2):
        q = propose(law, world.s_ref, candidates=B.DECIDE_CANDIDATES, bootstrap=B.DECIDE_BOOTSTRAP, check_law="bimix", seed=seed, trust_radius=tr)
        out[f"trust{tr}"] = r(list(q.weights.values()))
    return out

def draw_top(law, n, rng, step):
    C = A.draw_pool(law, n // 2, rng)
    f = law._predict(C, np.full(len(C), step)).mean(axis=1)
    top = C[np.argsort(f)[:20]]
    hi = support_caps(law.observed_mixtures, 1.5, 0.01)
    C2 = project_rows(dirichlet_around(rng, top, n - len(C), (30.0, 100.0, 300.0)), np.zeros(C.shape[1]), hi)
    return np.vstack([C, C2])

def seq(world, W0, budget, seed, explore=0.25, cand="support", method="thompson"):
    W, out, r = W0.copy(), [W0.copy()], 0
    while len(W) < budget:
        r += 1
        law = make_law("ridge").fit(B.table_of(world, W, seed + 100 * r), cv_folds=0)
        rng = np.random.default_rng(seed + r)
        C = A.draw_pool(law, B.SEARCH_CANDIDATES, rng) if cand == "support" else draw_top(law, B.SEARCH_CANDIDATES, rng, world.s_ref)
        b = A.next_batch(law, C, B.PER_ROUND, step=world.s_ref, method=method, seed=seed + r, explore=explore)
        W = np.vstack([W, C[b.index]]); out.append(W.copy())
    return out

VARIANTS = {"th25": {}, "th12": {"explore": 0.125}, "th25top": {"cand": "top"}, "th12top": {"explore": 0.125, "cand": "top"}}
k = int(sys.argv[1]); seeds = range(int(sys.argv[2]), int(sys.argv[3])); outf = sys.argv[4]
for s in seeds:
    t0 = time.time()
    world = World(k, s)
    rng = np.random.default_rng(1000 + s)
    Wr = B.design(world, 64, rng)
    row = {"k": k, "seed": s, "random": {n: decide_all(world, Wr[:n], s) for n in (32, 64)}}
    for name, kw in VARIANTS.items():
        st = seq(world, Wr[:16], 64, s, **kw)
        row[name] = {len(W): decide_all(world, W, s) for W in st if len(W) in (32, 64)}
    row["sec"] = time.time() - t0
    with open(outf, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(k, s, round(row["sec"], 1), flush=True)
