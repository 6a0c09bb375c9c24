"""Steps 5-7 of the sampled optimiser: what is written. The cross-validation check (refuse, or a
note), the forced or unchecked proposal, and otherwise the shrinkage: the step t of (1 - t) uniform +
t proposal whose upper `risk_quantile` of the paired difference to uniform, over this law's refits
pooled with a check law's (bootstrap.py `second_opinion`), is lowest. Opt-in step 7 (observed.py): the best
observed run instead, when its measured loss beats the written mixture's prediction.

Place in the flow: scoring.py (the scored pool) -> **decision** -> Proposal -> weights.yaml / mixing=law.
Pure: numpy (+ the check law's fits).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mixtrain.laws.optim.bootstrap import second_opinion
from mixtrain.laws.optim.candidates import Problem
from mixtrain.laws.optim.observed import best_run_instead
from mixtrain.laws.optim.proposal import Proposal, ProposalSettings
from mixtrain.laws.optim.scoring import Scores
from mixtrain.laws.simplex import project_rows
from mixtrain.weights import normalize_weights

__all__ = ["decide"]


def fallback(p: Problem, sc: Scores, base: dict[str, Any], labels, why: str) -> Proposal:
    """Uniform, or an alternative whose own interval against uniform lies below zero (never worse than uniform)."""
    col = {lab: sc.n_pool + i for i, lab in enumerate(p.comps)}

    def reliable(lab: str) -> bool:
        return lab == "uniform" or sc.S is None or sc.diff(col[lab])[2] < 0

    options = [lab for lab in labels if p.feasible(p.comps[lab]) and reliable(lab)]
    if not options:
        return Proposal(base["proposal"], "proposal", reason=why + "; but no fallback respects --min-weight/--max-weight, "
                        "so the proposal is written", **base)
    means = {lab: sc.mean(col[lab]) for lab in options}
    lab = min(options, key=means.get)
    v = normalize_weights(dict(zip(p.domains, p.comps[lab].tolist())), p.domains, what=lab)
    return Proposal(v, lab, reason=why, **base)


def shrink(p: Problem, sc: Scores, s: ProposalSettings, u: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, dict[str, Any], Any]:
    """Step 5, from the origin `u` (uniform): (index of the chosen step, the steps T, the ray's mixtures R [steps, k], the report's `shrink`
    dict, the check laws or None). Each step t of the ray (1-t) uniform + t proposal is scored by the upper
    `risk_quantile` of its paired difference to uniform over the refits of this law and of each check law (laws of
    other families: a separable law and a cross-domain surrogate are wrong in different ways; the bootstrap alone
    sees only the fit's spread). `risk_pooling` "each": the step's risk is the highest of the laws' own quantiles
    (every law must put it below uniform); "pooled": the quantile over all refits pooled. The lowest wins (t = 0:
    uniform, difference exactly 0)."""
    T = np.linspace(0.0, 1.0, s.shrink_steps + 1)
    R = (1 - T)[:, None] * u[None] + T[:, None] * sc.r[None]
    z2 = np.random.default_rng(s.seed + 2).standard_normal((max(1, len(sc.refits)), 50))

    def ray_diffs(fits, imp) -> np.ndarray:  # [B, steps] (mixture_t - uniform), with the law's CV error if asked
        D = np.array([f._predict(R, np.full(len(R), p.step)) @ imp for f in fits])
        D = D - D[:, :1]
        return (D[:, :, None] + sc.sigma * T[None, :, None] * z2[: len(D), None, :]).transpose(0, 2, 1).reshape(-1, len(T))

    diffs = {p.law.name: ray_diffs(sc.refits, p.w)}
    check, check_note = second_opinion(p.law, s.check_law, len(sc.refits), p.rng)
    for c_law, c_refits in check or []:  # equally many refits each, seen through the same repetition hook
        diffs[c_law.name] = ray_diffs([p.viewed(m) for m in c_refits], c_law.importance_vector(p.importance))
    own = {name: np.quantile(D, s.risk_quantile, axis=0) for name, D in diffs.items()}
    if s.risk_pooling == "each":
        risk = np.max(list(own.values()), axis=0)
    else:
        risk = np.quantile(np.vstack(list(diffs.values())), s.risk_quantile, axis=0)
    i = int(np.argmin(risk))
    check_diffs = {name: (float(D[:, -1].mean()), *map(float, np.quantile(D[:, -1], sc.q)))
                   for name, D in list(diffs.items())[1:]}
    report = {"t": float(T[i]), "quantile": s.risk_quantile, "risk": float(risk[i]), "risk_pooling": s.risk_pooling,
              "risk_by_law": {name: float(q[i]) for name, q in own.items()},
              "check_law": "+".join(c.name for c, _ in check) if check else None, "check_diffs": check_diffs,
              "check_note": check_note}
    return i, T, R, report, check


def shrink_origin(p: Problem) -> tuple[np.ndarray, str]:
    """Uniform, made to respect the user's floors and caps where it does not."""
    u = p.comps["uniform"]
    if p.feasible(u):
        return u, "uniform"
    return project_rows(u[None], p.ulo, p.uhi)[0], "uniform within --min-weight/--max-weight"


def decide(p: Problem, sc: Scores, s: ProposalSettings, settings: dict[str, Any]) -> Proposal:
    """Steps 5-7: the written mixture and why (`settings` is what `Proposal.settings` records)."""
    out = _written(p, sc, s, settings)
    if not s.prefer_best_run:
        return out
    alt = best_run_instead(p.law, np.array([out.weights[d] for d in p.domains]), p.step, p.w)
    if alt is None or not p.feasible(alt[1]):
        return out
    v = normalize_weights(dict(zip(p.domains, alt[1].tolist())), p.domains, what=f"run {alt[0]}")
    return replace(out, weights=v, chosen=f"run {alt[0]}", reason=(
        f"--prefer-best-run: run {alt[0]}'s measured loss carried to the target ({alt[2]:.4f}) is below the "
        f"prediction for the {out.chosen} mixture ({alt[3]:.4f})"))


def _written(p: Problem, sc: Scores, s: ProposalSettings, settings: dict[str, Any]) -> Proposal:
    """Steps 5 and 6."""
    doms, law = p.domains, p.law
    proposal = normalize_weights(dict(zip(doms, sc.r.tolist())), doms, what=f"{law.name} proposal")
    at_cap = [f"{d} {x:.4g}" for d, x, h, u in zip(doms, sc.r, p.hi, p.uhi) if x >= h - 1e-6 and h < u - 1e-9]
    diff = sc.diff(sc.best) if sc.S is not None else None
    base = dict(proposal=proposal, predicted=sc.predicted(p.comps), diff_vs_uniform=diff, settings=settings,
                at_cap=at_cap)
    cv = law.report.get("cv", {})
    reg, best_run = cv.get("regret_top1"), cv.get("baseline_regret_top1")
    cv_worse = reg is not None and best_run is not None and reg > best_run + 1e-12
    if cv_worse and s.refuse_on_cv and not s.force_optimize:
        return fallback(p, sc, base, list(p.comps), f"refused to optimise: the law's cross-validated top-1 regret "
                        f"{reg:.4f} is worse than choosing by the nearest observed run ({best_run:.4f}); "
                        "--force-optimize overrides")
    note = (f"; the law's CV top-1 regret {reg:.4f} is worse than the nearest observed run's ({best_run:.4f}): "
            "treat the proposal with care" if cv_worse else "")
    if diff is None:
        return Proposal(proposal, "proposal", reason="no bootstrap (bootstrap=0): no interval, proposal written "
                        "unchecked" + note, **base)
    if s.force_proposal:
        return Proposal(proposal, "proposal", reason="written as proposed (--force-proposal)" + note, **base)
    u, u_label = shrink_origin(p)
    i, T, R, shrunk, check = shrink(p, sc, s, u)
    t = float(T[i])
    if i == len(T) - 1:
        chosen, why = "proposal", "the full step to the proposal has the lowest risk against uniform"
    elif i == 0:
        chosen, why = u_label, ("every step towards the proposal risks being worse than uniform (its "
                                f"{100 * s.risk_quantile:g}th percentile is above zero under "
                                + (f"{law.name} or {' or '.join(c.name for c, _ in check)})" if check else f"{law.name})"))
    else:
        chosen, why = f"blend {t:g}", (f"{t:g} of the way from uniform to the proposal has the lowest risk against "
                                       "uniform; the full step is less certain")
    v = normalize_weights(dict(zip(doms, R[i].tolist())), doms, what=f"{law.name} blend")
    return Proposal(v, chosen, reason=why + note, shrink=shrunk, **base)
