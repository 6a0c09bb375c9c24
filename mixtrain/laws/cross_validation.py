"""How good is a law for choosing a mixture: held-out ranking of the mean loss, regret, baselines.

Place in the flow: `MixingLaw.fit` -> **cross_validate** (group k-fold over runs) -> `law.report["cv"]`
-> `mixtrain.fitting.fit`'s quality report and `fit_law(..., "auto")`. Pure: numpy + scipy.

What is measured on the pooled out-of-fold predictions of every run's final-step losses:
* per eval domain: Spearman of predicted vs observed loss, and MRE; next to it the parameter-free
  own-weight baseline (rank domain d's runs by -r_d: more of a domain, lower its loss), which
  per-domain Spearman alone cannot tell apart from a law (it often matches one);
* what the optimiser targets, the importance-weighted mean loss over eval domains (equal
  importance unless given): its Spearman across held-out runs, and the regret of choosing
  by it: top-1 regret = true mean loss of the run the law predicts best minus the true best;
  top-k regret = the best true mean loss among the law's k predicted best minus the true best
  (nats, >= 0). The random-pick baseline (mean minus best) is reported next to them. The
  own-weight baseline has no mean-loss ranking (sum of -r_d is constant). The decision baseline is
  the nearest observed run: each held-out run is predicted by the final losses of the training run
  closest to it in TV, i.e. choosing near the best run seen, with no law; its top-1 / top-k regret
  is reported next to the law's, and laws/optim/sampled.py refuses to optimise with a law that does worse.
* Laws that tune themselves (ridge's penalty) do so inside each fold's fit, on the fold's training
  runs only: the held-out regret is of the whole fitting procedure (nested cross-validation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TOP_K = 3


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either side is constant or n < 3."""
    from scipy.stats import rankdata

    if a.shape[0] < 3:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return float("nan")
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def nanmean(values) -> float | None:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def selection_metrics(pred: np.ndarray, obs: np.ndarray, importance: np.ndarray, top_k: int = TOP_K) -> dict[str, Any]:
    """Mean-loss Spearman and top-1 / top-k regret of choosing among the rows of obs [n, m] by pred [n, m]."""
    mp, mo = pred @ importance, obs @ importance
    order = np.argsort(mp, kind="stable")
    k = max(1, min(top_k, mo.shape[0]))
    best = float(mo.min())
    return {
        "mean_loss_spearman": spearman(mp, mo),
        "regret_top1": float(mo[order[0]] - best),
        "regret_topk": float(mo[order[:k]].min() - best),
        "top_k": k,
        "regret_random": float(mo.mean() - best),
        "n": int(mo.shape[0]),
    }


def own_weight_spearman(W: np.ndarray, obs: np.ndarray, train_domains, eval_domains) -> dict[str, float]:
    """Per eval domain: Spearman of -r_d (the domain's own weight) vs its loss; NaN if d is not trained on."""
    out = {}
    for j, d in enumerate(eval_domains):
        out[d] = spearman(-W[:, list(train_domains).index(d)], obs[:, j]) if d in train_domains else float("nan")
    return out


def cross_validate(law, table, *, folds: int = 5, seed: int = 0, importance: np.ndarray | None = None) -> dict[str, Any]:
    """Group k-fold over runs; pooled out-of-fold final-step predictions -> the metrics of the module docstring."""
    runs = table.run_names
    n = len(runs)
    if n < 3:
        return {"error": f"cross-validation needs >= 3 runs, the table has {n}"}
    m = len(table.eval_domains)
    w = np.full(m, 1.0 / m) if importance is None else np.asarray(importance, float)
    K = max(2, min(folds, n))
    perm = np.random.default_rng(seed).permutation(n)
    fold_of = {runs[p]: i % K for i, p in enumerate(perm)}
    row_fold = np.array([fold_of[r] for r in table.runs.tolist()])
    final = table.final_rows()
    final_fold = row_fold[final]
    oof = np.full((n, m), np.nan)
    near = np.full((n, m), np.nan)  # baseline: each held-out run predicted by its nearest training run (TV)
    for f in range(K):
        clone = type(law)(**law.config)
        try:
            clone.fit(table.subset(row_fold != f), cv_folds=0)
        except ValueError as e:
            return {"error": f"fold {f + 1}/{K}: {e}", "folds": K}
        idx = np.flatnonzero(final_fold == f)
        oof[idx] = clone._predict(table.W[final[idx]], table.steps[final[idx]])
        train = final[final_fold != f]
        tv = 0.5 * np.abs(table.W[final[idx]][:, None, :] - table.W[train][None]).sum(axis=2)
        near[idx] = table.L[train[np.argmin(tv, axis=1)]]
    obs = table.L[final]
    if not np.all(np.isfinite(oof)):
        return {"error": "non-finite held-out predictions", "folds": K}
    own = own_weight_spearman(table.W[final], obs, table.train_domains, table.eval_domains)
    domains = {
        d: {"spearman": spearman(oof[:, j], obs[:, j]), "mre": float(np.mean(np.abs(oof[:, j] - obs[:, j]) / obs[:, j])),
            "own_weight_spearman": own[d]}
        for j, d in enumerate(table.eval_domains)
    }
    sel = selection_metrics(oof, obs, w)
    baseline = selection_metrics(near, obs, w)
    return {
        "scheme": f"group {K}-fold over runs (seed {seed}); held-out runs' final-step losses, pooled",
        "folds": K,
        "domains": domains,
        "mean_spearman": nanmean(v["spearman"] for v in domains.values()),
        "mean_own_weight_spearman": nanmean(own.values()),
        "mean_mre": nanmean(v["mre"] for v in domains.values()),
        "importance": {d: float(x) for d, x in zip(table.eval_domains, w)},
        **sel,
        "baseline": "nearest observed run: a held-out run is predicted by the training run closest in TV",
        # spread of the held-out error of the mean loss around its mean: what a difference between two
        # mixtures inherits (a common offset cancels in a difference)
        "mean_loss_error_sd": float(np.std(oof @ w - obs @ w)),
        "baseline_regret_top1": baseline["regret_top1"],
        "baseline_regret_topk": baseline["regret_topk"],
    }


def is_better(a: float | None, b: float | None) -> bool:
    """a < b with None/NaN treated as worst."""
    fa = math.inf if a is None or not math.isfinite(a) else a
    fb = math.inf if b is None or not math.isfinite(b) else b
    return fa < fb
