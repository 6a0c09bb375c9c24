"""The default optimiser: sampled candidates, scored by bootstrap refits of the law, never worse than
uniform without saying so (`propose`, `mixtrain.fitting.fit --optimize`, mixing=law).

Place in the flow: fitted law (+ its fitting table, saved in law.json) -> **propose** -> Proposal
-> weights.yaml comments / console (`mixtrain.fitting.fit`). Pure: numpy (+ the law's own fit).

Why not a gradient optimum: on real proxy data (issue 19) every law's SLSQP optimum sat exactly on
the trust-region edge, so the constraint chose the answer, not the data; RegMix's recipe (score many
sampled mixtures, average the top) beat it. Here:

1. Candidates (`candidates`, default 100,000), all inside the support (below): every observed
   mixture, uniform and natural (projected into the support); 60% Dirichlet draws around observed mixtures (Dirichlet(c * m + 0.05), c drawn from
   {10, 30, 100}); then 40% around the 20 best of those by the full-data law (c in {30, 100, 300}).
2. Bootstrap: the law is refitted on `bootstrap` (default 20) resamples of the runs (with
   replacement; a resample the law refuses is redrawn). Each refit scores the candidate pool; the
   proposal is the candidate with the lowest mean predicted loss over the refits (best in
   expectation, not best under one fit). One more candidate joins: the mean of the `average_top`
   (100) best in expectation (RegMix's top-k average); it wins only if its expectation is lower. Refits of laws whose prediction is expensive (`lightgbm`)
   score only the `refit_pool` best candidates of the full-data fit (default 5,000; class
   attribute `refit_pool`), not all of them.
3. Support, relative: domain d's weight is at most `support_cap` (1.5) x its largest weight in any
   run + `support_floor` (0.01), and 0 if it was never above the floor in any run. User floors and
   caps (epoch caps) win a conflict. A TV radius around the observed mixtures is an option (None).
4. Report: the predicted importance-weighted loss at the target step of the proposal, uniform,
   natural (if given) and the best observed run, each under the full fit with its bootstrap
   interval (`level`, default 95%, percentiles over the refits), and the interval of proposal -
   uniform (paired over refits). The bootstrap sees only the parameters' spread, not a misspecified
   law's bias; `model_error=True` (--model-error) widens the interval by the law's held-out error
   (each refit's difference plus Gaussian noise of sd sqrt(2) x the sd of the cross-validated error
   of the mean loss); in step 5 the noise grows with t. Measured with the former accept-or-fall-back
   rule: it removed the proposals worse than uniform, and with them 96% of all proposals.
5. Never worse than uniform, by shrinking rather than all-or-nothing: the written mixture is the step t
   in {0, 0.1, ..., 1} of (1 - t) uniform + t proposal whose upper `risk_quantile` (0.6) of the paired
   difference to uniform is lowest, over this law's refits pooled with `bootstrap` refits of a check
   law of another family (`check_law`, "auto" = laws/refits.py `auto_check_law`: ridge for every other law; for
   ridge, bimix below `CHECK_TREES_MIN_RUNS` (32) runs and lightgbm from 32 on, bimix again when the
   lightgbm extra is missing, said in the report). Uniform (t = 0, difference exactly 0) is always a
   candidate, so a step is taken only where most refits of both laws put it below uniform. Why: the
   bootstrap sees the fit's spread, not the law's bias; a separable law and a cross-domain surrogate
   err in different ways. Why the check depends on the run count: with few runs ridge's risk is its
   variance, which a rigid law catches (trees from 16 runs were worse than uniform in 34% of the
   8-domain tuning worlds as the check); with many runs its risk is bias, and the separable bimix,
   itself biased, held well-supported proposals back (17 domains x 64 runs: written 0.036 median
   regret against the proposal's 0.025; with trees as the check 0.027). Chosen on 200 synthetic worlds
   (seeds 0-49 per setting), reported on 200 others (BENCHMARKS.md): the former accept-or-fall-back
   rule (interval below zero, else uniform / natural / best run) was worse than uniform in 5% of
   worlds and lost to the RegMix recipe; quantile selection over all candidates (winner's curse: the
   pool's extremes are noise), a check without shrinkage and the worse-of-the-two-laws quantile were
   measured too. With bimix as the law this rule is less safe than with ridge (BENCHMARKS.md); a
   higher `risk_quantile` is more cautious. `force_proposal` writes the proposal.
6. The law's cross-validated top-1 regret (laws/evaluate.py) worse than the nearest-observed-run
   baseline's is reported ("treat the proposal with care"); `refuse_on_cv` (--refuse-on-cv) makes it a
   refusal that writes the best of uniform / natural / best run reliably below uniform (unless
   `force_optimize`). Not the default: on the synthetic worlds that 5-fold comparison is noisy and
   refusing cost median regret (bimix 0.026 -> 0.030) for 0.5 points fewer worlds worse than uniform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mixtrain.laws.optim.bootstrap import bootstrap_laws, second_opinion
from mixtrain.laws.optim.slsqp import check_step, project_rows, user_bounds
from mixtrain.weights import normalize_weights

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw
    from mixtrain.laws.repetition import Repetition

DEFAULT_CANDIDATES = 100_000
DEFAULT_BOOTSTRAP = 20
DEFAULT_SUPPORT_CAP = 1.5
DEFAULT_SUPPORT_FLOOR = 0.01
DEFAULT_REFIT_POOL = 5_000
DEFAULT_AVERAGE_TOP = 100
STAGE1_SHARE, STAGE2_TOP = 0.6, 20
DEFAULT_RISK_QUANTILE = 0.6
DEFAULT_SHRINK_STEPS = 10


@dataclass
class Proposal:
    """What `propose` decided and why (`lines()` for humans, `meta()` for weights.yaml)."""

    weights: dict[str, float]  # what to train on (the proposal, or the fallback)
    chosen: str  # "proposal", "uniform", "natural" or "run <name>"
    proposal: dict[str, float]  # the law's proposal, written or not
    predicted: dict[str, tuple[float, float, float]]  # label -> (full fit, interval lo, hi)
    diff_vs_uniform: tuple[float, float, float] | None  # proposal - uniform: (refits' mean, lo, hi)
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    at_cap: list[str] = field(default_factory=list)
    shrink: dict[str, Any] = field(default_factory=dict)  # the step from uniform towards the proposal (step 6)

    def lines(self) -> list[str]:
        s = self.settings
        radius = "off" if s["trust_radius"] is None else f"TV <= {s['trust_radius']:g}"
        out = [f"optimiser: sampled, {s['n_candidates']} candidates, {s['bootstrap']} bootstrap refits over runs "
               f"(refits score {s['refit_pool']} of them); support: w_d <= {s['support_cap']:g} x its largest "
               f"observed weight + {s['support_floor']:g} (0 if never above {s['support_floor']:g}); trust radius {radius}",
               f"predicted mean loss at step {s['target_step']:g}: full fit [{100 * s['level']:g}% bootstrap interval]"]
        for label, (v, lo, hi) in self.predicted.items():
            out.append(f"  {label:<24} {v:.4f}  [{lo:.4f}, {hi:.4f}]")
        if "natural" not in self.predicted:
            out.append("  natural                  not given (--natural domain=tokens,...)")
        if self.diff_vs_uniform is not None:
            m, lo, hi = self.diff_vs_uniform
            out.append(f"proposal - uniform: {m:+.4f}  [{lo:+.4f}, {hi:+.4f}]"
                       + (" (refits + the law's CV error)" if s.get("model_error") else " (over refits)"))
        sh = self.shrink
        if sh.get("check_diff") is not None:
            m, lo, hi = sh["check_diff"]
            out.append(f"check law {sh['check_law']}: proposal - uniform {m:+.4f}  [{lo:+.4f}, {hi:+.4f}] (over its refits)")
        if sh.get("check_note"):
            out.append(f"check law: {sh['check_note']}")
        if "t" in sh:
            out.append(f"shrinkage: {sh['t']:g} of the way from uniform to the proposal (the step whose "
                       f"{100 * sh['quantile']:g}th percentile of (mixture - uniform) over both laws' refits is lowest: "
                       f"{sh['risk']:+.4f})")
        if self.at_cap:
            out.append("proposal at its support cap: " + ", ".join(self.at_cap))
        out.append(f"written: {self.chosen} ({self.reason})")
        return out

    def meta(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "reason": self.reason,
                "predicted_mean_loss": {k: {"full_fit": v[0], "lo": v[1], "hi": v[2]} for k, v in self.predicted.items()},
                "proposal_minus_uniform": None if self.diff_vs_uniform is None else
                dict(zip(("mean", "lo", "hi"), self.diff_vs_uniform)),
                "proposal": dict(self.proposal), "at_support_cap": list(self.at_cap),
                "shrink": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.shrink.items()}, **self.settings}


def support_caps(M: np.ndarray, cap: float, floor: float) -> np.ndarray:
    """Per-domain cap: cap x largest observed weight + floor, 0 where the largest is <= floor."""
    if not np.isfinite(cap) or cap < 1 or not np.isfinite(floor) or floor < 0:
        raise ValueError(f"support_cap must be >= 1 and support_floor >= 0, got {cap} and {floor}")
    mx = M.max(axis=0)
    return np.where(mx > floor, np.minimum(1.0, cap * mx + floor), 0.0)


def min_tv(C: np.ndarray, M: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """[n] TV distance of every row of C to its nearest row of M (chunked: n x |M| x k at once is large)."""
    return np.concatenate([0.5 * np.abs(C[i:i + chunk, None, :] - M[None]).sum(axis=2).min(axis=1)
                           for i in range(0, len(C), chunk)]) if len(C) else np.zeros(0)


def dirichlet_around(rng: np.random.Generator, centres: np.ndarray, n: int, concentrations) -> np.ndarray:
    idx = rng.integers(0, centres.shape[0], n)
    conc = np.asarray(concentrations, float)[rng.integers(0, len(concentrations), n)]
    g = rng.standard_gamma(conc[:, None] * centres[idx] + 0.05)
    return g / g.sum(axis=1, keepdims=True)


def best_observed_run(law: MixingLaw, w: np.ndarray) -> tuple[str, np.ndarray, float]:
    t = law.table
    fin = t.final_rows()
    mean = t.L[fin] @ w
    i = int(np.argmin(mean))
    return str(t.runs[fin[i]]), t.W[fin[i]], float(mean[i])


def propose(
    law: MixingLaw,
    target_step: float,
    importance: Mapping[str, float] | None = None,
    min_weight: float | Mapping[str, float] = 0.0,
    max_weight: float | Mapping[str, float] | None = None,
    *,
    natural: Mapping[str, float] | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    refit_pool: int | None = None,
    support_cap: float = DEFAULT_SUPPORT_CAP,
    support_floor: float = DEFAULT_SUPPORT_FLOOR,
    trust_radius: float | None = None,
    level: float = 0.95,
    force_proposal: bool = False,
    force_optimize: bool = False,
    average_top: int = DEFAULT_AVERAGE_TOP,
    model_error: bool = False,
    seed: int = 0,
    repetition: Repetition | None = None,
    risk_quantile: float = DEFAULT_RISK_QUANTILE,
    check_law: str | None = "auto",
    refuse_on_cv: bool = False,
    shrink_steps: int = DEFAULT_SHRINK_STEPS,
) -> Proposal:
    """The sampled, bootstrap-robust choice of a mixture (module docstring)."""
    # repetition hook (laws/repetition.py): with the target budget and the domains' unique tokens, every score
    # below (candidates, refits, comparators) is the law at the effective weights, repeated tokens discounted
    base_law, viewed = law, (lambda m: m) if repetition is None else repetition.view
    law = viewed(law)
    law._require_fitted()
    check_step(law, target_step)
    if law.table is None or law.observed_mixtures is None:
        raise ValueError(f"{law.name}: the law carries no fitting table (a law.json written by an older mixtrain); "
                         "refit it with `python -m mixtrain.fitting.fit --table T.csv --out law.json`, or use --optimizer slsqp")
    if candidates < 1 or bootstrap < 0 or shrink_steps < 1 or not 0.5 <= risk_quantile < 1:
        raise ValueError(f"candidates and shrink_steps must be >= 1, bootstrap >= 0 and risk_quantile in [0.5, 1), got "
                         f"{candidates}, {shrink_steps}, {bootstrap} and {risk_quantile}")
    step = float(target_step)
    doms = law.train_domains
    k = len(doms)
    w = law.importance_vector(importance)
    rng = np.random.default_rng(seed)
    M = law.observed_mixtures
    ulo, uhi = user_bounds(law, min_weight, max_weight)
    hi = np.maximum(np.minimum(uhi, support_caps(M, support_cap, support_floor)), ulo)  # user floors win
    lo = ulo
    if hi.sum() < 1.0 - 1e-12:
        raise ValueError(f"{law.name}: the support caps (and --max-weight) sum to {hi.sum():.3f} < 1; "
                         "raise --support-cap or --support-floor")
    # comparators: uniform, natural, best observed run (as they are: baselines, not constrained)
    comps: dict[str, np.ndarray] = {"uniform": np.full(k, 1.0 / k)}
    if natural is not None:
        nat = normalize_weights(dict(natural), doms, what="natural")
        comps["natural"] = np.array([nat[d] for d in doms])
    run, run_w, _ = best_observed_run(law, w)
    comps[f"run {run}"] = run_w
    # 1. candidates inside the support: every observed mixture, uniform and natural, Dirichlet draws
    anchors = np.vstack([M, *comps.values()])
    n1 = max(1, int(STAGE1_SHARE * candidates))
    C1 = project_rows(np.vstack([anchors, dirichlet_around(rng, M, n1, (10.0, 30.0, 100.0))]), lo, hi)
    if trust_radius is not None:
        C1 = np.vstack([C1[: len(anchors)], C1[len(anchors):][min_tv(C1[len(anchors):], M) <= trust_radius + 1e-9]])
    f1 = law._predict(C1, np.full(len(C1), step)) @ w
    top = C1[np.argsort(f1)[:STAGE2_TOP]]
    C2 = project_rows(dirichlet_around(rng, top, max(0, candidates - n1), (30.0, 100.0, 300.0)), lo, hi)
    if trust_radius is not None and len(C2):
        C2 = C2[min_tv(C2, M) <= trust_radius + 1e-9]
    C = np.vstack([C1, C2])
    f0 = np.concatenate([f1, law._predict(C2, np.full(len(C2), step)) @ w]) if len(C2) else f1
    # 2. bootstrap refits score the pool
    pool_n = refit_pool if refit_pool is not None else getattr(law, "refit_pool", None)
    pool = np.argsort(f0)[: pool_n] if pool_n is not None and pool_n < len(C) else np.arange(len(C))
    P = np.vstack([C[pool], np.array(list(comps.values()))])
    n_pool = len(pool)
    refits = [viewed(m) for m in bootstrap_laws(base_law, bootstrap, rng)] if bootstrap else []
    S = np.array([r._predict(P, np.full(len(P), step)) @ w for r in refits]) if refits else None  # [B, |P|]
    full = law._predict(P, np.full(len(P), step)) @ w
    score = S[:, :n_pool].mean(axis=0) if S is not None else full[:n_pool]
    best = int(np.argmin(score))
    r = C[pool[best]]
    if average_top > 1:
        # one more candidate: the mean of the `average_top` best in expectation (RegMix's top-k average, which
        # regularises towards the interior); it replaces the best single candidate only if its expectation is lower
        avg = C[pool[np.argsort(score)[:average_top]]].mean(axis=0)
        f_avg = law._predict(avg[None], np.array([step])) @ w
        s_avg = np.array([r_._predict(avg[None], np.array([step])) @ w for r_ in refits]) if refits else None
        if (s_avg.mean() if s_avg is not None else float(f_avg[0])) < score[best]:
            P, full = np.vstack([P, avg[None]]), np.append(full, f_avg)
            S = np.hstack([S, s_avg]) if S is not None else None
            best, r = len(P) - 1, avg
    q = (0.5 - level / 2, 0.5 + level / 2)

    def interval(col: int) -> tuple[float, float, float]:
        if S is None:
            return float(full[col]), float("nan"), float("nan")
        lo_, hi_ = np.quantile(S[:, col], q)
        return float(full[col]), float(lo_), float(hi_)

    predicted = {"proposal": interval(best)}
    for i, label in enumerate(comps):
        predicted[label] = interval(n_pool + i)
    # the law's own error, not only its parameters' spread: each refit's difference plus the held-out (CV)
    # error of a mean-loss difference, sqrt(2) x the sd of the CV error of the mean loss (0 without CV)
    sigma = float(law.report.get("cv", {}).get("mean_loss_error_sd") or 0.0) * np.sqrt(2.0) if model_error else 0.0
    z = np.random.default_rng(seed + 1).standard_normal((max(1, len(refits)), 50))

    def diff_of(col: int) -> tuple[float, float, float]:
        dd = S[:, col] - S[:, n_pool]
        aug = (dd[:, None] + sigma * z[: len(dd)]).ravel()
        return float(dd.mean()), *map(float, np.quantile(aug, q))

    diff = diff_of(best) if S is not None else None
    proposal = normalize_weights(dict(zip(doms, r.tolist())), doms, what=f"{law.name} proposal")
    at_cap = [f"{d} {x:.4g}" for d, x, h, u in zip(doms, r, hi, uhi) if x >= h - 1e-6 and h < u - 1e-9]
    settings = {"optimizer": "sampled", "target_step": step, "n_candidates": int(len(C)), "bootstrap": len(refits),
                "refit_pool": int(n_pool), "support_cap": support_cap, "support_floor": support_floor,
                "trust_radius": trust_radius, "level": level, "model_error": model_error, "seed": seed,
                "risk_quantile": risk_quantile, "check_law_setting": check_law, "refuse_on_cv": refuse_on_cv}

    def feasible(v: np.ndarray) -> bool:
        return bool(np.all(v >= ulo - 1e-9) and np.all(v <= uhi + 1e-9))

    def fallback(labels, why: str) -> Proposal:
        # uniform, or an alternative whose own interval against uniform lies below zero (never worse than uniform)
        col = {lab: n_pool + i for i, lab in enumerate(comps)}

        def reliable(lab: str) -> bool:
            return lab == "uniform" or S is None or diff_of(col[lab])[2] < 0

        options = [lab for lab in labels if feasible(comps[lab]) and reliable(lab)]
        if not options:
            return Proposal(proposal, "proposal", proposal, predicted, diff,
                            why + "; but no fallback respects --min-weight/--max-weight, so the proposal is written",
                            settings, at_cap)
        means = {lab: float(S[:, col[lab]].mean() if S is not None else full[col[lab]]) for lab in options}
        lab = min(options, key=means.get)
        v = normalize_weights(dict(zip(doms, comps[lab].tolist())), doms, what=lab)
        return Proposal(v, lab, proposal, predicted, diff, why, settings, at_cap)

    cv = law.report.get("cv", {})
    reg, base = cv.get("regret_top1"), cv.get("baseline_regret_top1")
    cv_worse = reg is not None and base is not None and reg > base + 1e-12
    if cv_worse and refuse_on_cv and not force_optimize:
        return fallback(list(comps), f"refused to optimise: the law's cross-validated top-1 regret {reg:.4f} is worse "
                        f"than choosing by the nearest observed run ({base:.4f}); --force-optimize overrides")
    note = (f"; the law's CV top-1 regret {reg:.4f} is worse than the nearest observed run's ({base:.4f}): "
            "treat the proposal with care" if cv_worse else "")
    if diff is None:
        return Proposal(proposal, "proposal", proposal, predicted, diff,
                        "no bootstrap (bootstrap=0): no interval, proposal written unchecked" + note, settings, at_cap)
    if force_proposal:
        return Proposal(proposal, "proposal", proposal, predicted, diff, "written as proposed (--force-proposal)" + note,
                        settings, at_cap)
    u, u_label = comps["uniform"], "uniform"
    if not feasible(u):  # shrink towards uniform made to respect the user's floors and caps
        u, u_label = project_rows(u[None], ulo, uhi)[0], "uniform within --min-weight/--max-weight"
    # 6. how far to move from uniform towards the proposal: each step t of the ray (1-t) uniform + t proposal is
    # scored by the upper `risk_quantile` of its paired difference to uniform over the refits, of this law and of a
    # law of another family (a separable law and a cross-domain surrogate are wrong in different ways; the
    # bootstrap alone sees only the fit's spread); the worse of the two counts, the lowest wins (t = 0: uniform,
    # difference exactly 0). Measured in BENCHMARKS.md against accept-or-fall-back and other rules.
    T = np.linspace(0.0, 1.0, shrink_steps + 1)
    R = (1 - T)[:, None] * u[None] + T[:, None] * r[None]
    z2 = np.random.default_rng(seed + 2).standard_normal((max(1, len(refits)), 50))

    def ray_diffs(fits, imp) -> np.ndarray:  # [B, steps] (mixture_t - uniform), with the law's CV error if asked
        D = np.array([f._predict(R, np.full(len(R), step)) @ imp for f in fits])
        D = D - D[:, :1]
        return (D[:, :, None] + sigma * T[None, :, None] * z2[: len(D), None, :]).transpose(0, 2, 1).reshape(-1, len(T))

    D = ray_diffs(refits, w)
    check, check_note = second_opinion(law, check_law, len(refits), rng)
    check_diff = None
    if check is not None:  # the two laws' refits pooled, equally many (seen through the same repetition hook)
        Dc = ray_diffs([viewed(m) for m in check[1]], check[0].importance_vector(importance))
        check_diff = (float(Dc[:, -1].mean()), *map(float, np.quantile(Dc[:, -1], q)))
        D = np.vstack([D, Dc])
    risk = np.quantile(D, risk_quantile, axis=0)
    i = int(np.argmin(risk))
    t = float(T[i])
    shrink = {"t": t, "quantile": risk_quantile, "risk": float(risk[i]), "check_law": check[0].name if check else None,
              "check_diff": check_diff, "check_note": check_note}
    if i == len(T) - 1:
        chosen, why = "proposal", "the full step to the proposal has the lowest risk against uniform"
    elif i == 0:
        chosen, why = u_label, ("every step towards the proposal risks being worse than uniform (its "
                                  f"{100 * risk_quantile:g}th percentile is above zero under "
                                  + (f"{law.name} or {check[0].name})" if check else f"{law.name})"))
    else:
        chosen, why = f"blend {t:g}", (f"{t:g} of the way from uniform to the proposal has the lowest risk against "
                                        "uniform; the full step is less certain")
    v = normalize_weights(dict(zip(doms, R[i].tolist())), doms, what=f"{law.name} blend")
    return Proposal(v, chosen, proposal, predicted, diff, why + note, settings, at_cap, shrink)
