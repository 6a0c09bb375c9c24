"""The default optimiser: sampled candidates, scored by bootstrap refits of the law, never worse than
uniform without saying so (`propose`, `mixtrain.fitting.fit --optimize`, mixing=law).

Place in the flow: fitted law (+ its fitting table, saved in law.json) -> **propose** -> Proposal
-> weights.yaml comments / console (`mixtrain.fitting.fit`) / mixing=law (`mixtrain.mixing.fitted_law`).
Pure: numpy (+ the law's own fit). `propose` runs the steps below, each in its own module of laws/optim/:
proposal.py (`ProposalSettings`: every setting and its default; `Proposal`: the answer), candidates.py
(steps 1 and 3), scoring.py (steps 2 and 4; bootstrap.py refits the law), decision.py (steps 5 and 6).

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
   in {0, 0.1, ..., 1} of (1 - t) uniform + t proposal whose risk against uniform is lowest. The risk of a
   step is the highest, over this law and two check laws of other families, of each law's own upper
   `risk_quantile` (0.6) of the paired difference (mixture_t - uniform) over its `bootstrap` refits
   (`risk_pooling="each"`; `check_law`, "auto" = laws/optim/bootstrap.py `auto_check_law`: ridge+bimix for
   every other law; bimix is checked by ridge+exp; ridge by bimix+exp, from `CHECK_TREES_MIN_RUNS` (32) runs by
   lightgbm+exp). Uniform (t = 0, difference exactly 0) is always a candidate, so a step is taken only where
   most refits of every one of the three laws put it below uniform. Why: the bootstrap sees the fit's spread,
   not the law's bias; a separable law, a cross-domain surrogate and an exponential-transfer law err in
   different ways, and a flexible law's own refits agree with each other most confidently where it overfits.
   History: until 2026-12-08 one check law (ridge; for ridge bimix, trees from 32 runs) and both laws' refits
   pooled (`risk_pooling="pooled"`, `check_law="ridge"`): chosen on 200 synthetic worlds against an
   accept-or-fall-back rule, quantile selection over all candidates (winner's curse) and the worse-of-the-two
   quantile. Measured against it on 40 untouched worlds at 8 domains x 16 runs (seeds 1200-1239, paired;
   BENCHMARKS.md, bench/law_uniform.py --former-rule): worse than uniform bimix 15% -> 7.5%, loglinear
   27.5% -> 5%, transfer 7.5% -> 0, ridge 2.5% -> 0, lightgbm 40% -> 12.5%, exp 0 -> 0; median regret lower for
   bimix, loglinear and lightgbm, +0.0009 for exp (at 17 domains x 16 runs: transfer +0.0047, ridge +0.0012;
   at 64 runs every law 0% worse, exp and transfer +0.002-0.003). On bench/optimiser.py's worlds (48, 8 and 17 domains, 16 and
   64 runs) ridge: 2.1% -> 0% worse than uniform at a median cost of +0.0006. With few runs ridge's risk is its
   variance, which the rigid bimix catches; with many its risk is bias, and bimix (itself biased) held
   well-supported proposals back, so trees
   check from 32 runs. A higher `risk_quantile` is more cautious. `force_proposal` writes the proposal.
6. The law's cross-validated top-1 regret (laws/cross_validation.py) worse than the nearest-observed-run
   baseline's is reported ("treat the proposal with care"); `refuse_on_cv` (--refuse-on-cv) makes it a
   refusal that writes the best of uniform / natural / best run reliably below uniform (unless
   `force_optimize`). Not the default: on the synthetic worlds that 5-fold comparison is noisy and
   refusing cost median regret (bimix 0.026 -> 0.030) for 0.5 points fewer worlds worse than uniform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mixtrain.laws.optim.candidates import (
    best_observed_run, dirichlet_around, min_tv, problem, sample_candidates, support_caps,
)
from mixtrain.laws.optim.decision import decide
from mixtrain.laws.optim.proposal import Proposal, ProposalSettings
from mixtrain.laws.optim.scoring import score_pool

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw
    from mixtrain.laws.repetition import Repetition

__all__ = ["Proposal", "ProposalSettings", "best_observed_run", "dirichlet_around", "min_tv", "propose", "support_caps"]


def propose(
    law: MixingLaw,
    target_step: float,
    importance: Mapping[str, float] | None = None,
    min_weight: float | Mapping[str, float] = 0.0,
    max_weight: float | Mapping[str, float] | None = None,
    *,
    natural: Mapping[str, float] | None = None,
    repetition: Repetition | None = None,
    settings: ProposalSettings | None = None,
    **options: Any,
) -> Proposal:
    """The sampled, bootstrap-robust choice of a mixture (module docstring).

    `settings` (a `ProposalSettings`, default: its defaults) with any of its fields given by keyword as
    well (`candidates=3000, bootstrap=10, seed=1, ...`); `natural` (domain -> tokens or weight) is a
    comparator and candidate, `repetition` scores every mixture at the effective weights."""
    s = ProposalSettings.of(settings, **options)
    p = problem(law, target_step, importance, min_weight, max_weight, natural, repetition, s)
    C, f0 = sample_candidates(p, s)
    sc = score_pool(p, C, f0, s)
    return decide(p, sc, s, s.report(p.step, len(C), len(sc.refits), sc.n_pool))
