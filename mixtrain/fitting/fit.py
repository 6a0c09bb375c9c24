"""Fit a mixing law to an observation table; predict with it; solve for the optimal mixture.

    python -m mixtrain.fitting.fit --table T.csv --law bimix --out law.json [--plot DIR]
    python -m mixtrain.fitting.fit --law-file law.json --predict MIX.csv [--step S] --out PRED.csv
    python -m mixtrain.fitting.fit --law-file law.json --optimize --step S [--importance code=2,prose=1]
                           [--min-weight 0.01] [--max-weight d=0.5,...] [--natural d=tokens,...]
                           [--candidates 100000] [--bootstrap 20] [--support-cap 1.5] [--support-floor 0.01]
                           [--trust-radius none] [--force-proposal] [--force-optimize] [--seed 0] --out weights.yaml
    python -m mixtrain.fitting.fit --law-file law.json --optimize [--step S] [--tokens D] [--global-batch-tokens G]
                           [--params N] [--data-dir DIR | --domain-tokens d=N,...] [--r-star 15.4] [--warn-epochs 16] ...
    python -m mixtrain.fitting.fit --law-file law.json --optimize --optimizer slsqp --step S [--support-margin 0.05]
                           [--trust-radius 0.25] --out weights.yaml

Place in the flow: `mixtrain.fitting.collect` -> table.csv -> **fit.py** -> law.json (mixing=law) or
weights.yaml (mixing=manual mixing.weights_file=weights.yaml).

--law: ridge (default), bimix, exp, loglinear, transfer, lightgbm (extra mixtrain[surrogate]), scaling
(across model sizes: needs num_params and tokens columns; never chosen by auto), ensemble (the auto
candidates averaged with weights from their cross-validated scores, laws/ensemble.py) or auto (criterion in
mixtrain/laws/law_choice.py: repeated cross-validation, a tolerance band and a fixed order). The target of --optimize (--step / --tokens,
--params for scaling, repetition from --data-dir / --domain-tokens): fit_target.py. A fit with no more runs
than its fitted mixture parameters is refused. Fitting prints per-domain in-sample R^2 and MRE, the
cross-validated (group k-fold over runs) Spearman next to the own-weight baseline, and what a
mixture choice depends on: held-out top-1 / top-k regret next to the nearest-observed-run baseline.
--predict writes the mixture file's columns plus `loss/<domain>` per eval domain. --optimize
(default optimiser `sampled`, laws/optim/sampled.py) scores 100k candidate mixtures inside the support
(each weight <= 1.5 x its largest observed weight + 0.01) with 20 bootstrap refits of the law, and
writes `weights: {domain: w}` with comments and a `proposal:` block: the predicted loss of the
proposal, uniform, natural (--natural) and the best observed run with bootstrap intervals, a check
law's view of proposal - uniform, and what was written and why: the step from uniform towards the
proposal (uniform, a blend, or the proposal) whose 80th percentile of (mixture - uniform) over both
laws' refits is lowest (--risk-quantile, --check-law; --refuse-on-cv to refuse when the law's CV
regret is worse than the nearest-run baseline). `--optimizer slsqp`
is the former gradient optimum in a support box and TV trust region (laws/optim/slsqp.py), with an
`optimum:` block. --min-weight and --max-weight take a number (every domain) or domain=value pairs
(--max-weight is how a per-domain epoch cap is given).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

from mixtrain.laws import LAWS, MixingLaw, Optimum, fit_law, load_law
from mixtrain.laws.optim.bootstrap import check_law_names
from mixtrain.laws.optim.sampled import ProposalSettings, propose
from mixtrain.laws.optim.slsqp import solve
from mixtrain.laws.support import DEFAULT_SUPPORT_MARGIN, DEFAULT_TRUST_RADIUS
from mixtrain.fitting.fit_target import add_target_args, set_target_params, target_flags, target_lines, target_of
from mixtrain.laws.table import LOSS_PREFIX, ObservationTable, parse_domain_values, read_mixtures, read_table

SAMPLED = ProposalSettings()  # the sampled optimiser's defaults (laws/optim/proposal.py), the CLI's too


def _pct(x) -> str:
    return "   -  " if x is None else f"{100 * x:6.2f}"


def _num(x, fmt="{:7.4f}") -> str:
    return "   -   " if x is None or (isinstance(x, float) and x != x) else fmt.format(x)


def quality_table(law: MixingLaw) -> str:
    """Fit quality as text: per domain R^2, MRE%, CV Spearman next to the own-weight baseline, CV MRE%;
    then what choosing a mixture depends on: CV mean-loss Spearman and top-1 / top-k regret."""
    r = law.report
    cv = r.get("cv", {})
    lines = [f"law {law.name}: {law.formula}",
             f"fitted on {r['n_runs']} runs ({r['n_mixtures']} mixtures), {r['n_rows']} rows, {r['n_params']} parameters"]
    width = max([len(d) for d in law.eval_domains] + [6])
    lines.append(f"{'domain':<{width}}  {'R2':>7}  {'MRE%':>6}  {'CV-rho':>7}  {'own-rho':>7}  {'CV-MRE%':>7}")
    cvd = cv.get("domains", {})
    for d in law.eval_domains:
        v, c = r["domains"][d], cvd.get(d, {})
        lines.append(f"{d:<{width}}  {_num(v['r2'])}  {_pct(v['mre'])}  {_num(c.get('spearman'))}  "
                     f"{_num(c.get('own_weight_spearman'))}  {_pct(c.get('mre')):>7}")
    lines.append(f"{'mean':<{width}}  {_num(r['mean_r2'])}  {_pct(r['mean_mre'])}  {_num(cv.get('mean_spearman'))}  "
                 f"{_num(cv.get('mean_own_weight_spearman'))}  {_pct(cv.get('mean_mre')):>7}")
    if cv.get("error"):
        lines.append(f"cross-validation: {cv['error']}")
    elif cv:
        lines.append(f"cross-validation: {cv['scheme']}")
        lines.append("own-rho: baseline that ranks a domain's runs by -(its own weight), no fit")
        lines.append(
            f"mixture choice over {cv['n']} held-out runs (mean loss, importance "
            + " ".join(f"{d}={x:.3g}" for d, x in cv["importance"].items()) + "): "
            f"Spearman {_num(cv['mean_loss_spearman']).strip()}, top-1 regret {cv['regret_top1']:.4f} nats, "
            f"top-{cv['top_k']} regret {cv['regret_topk']:.4f}, random pick {cv['regret_random']:.4f}"
        )
        if cv.get("baseline_regret_top1") is not None:
            lines.append(f"nearest observed run (no law): top-1 regret {cv['baseline_regret_top1']:.4f}, "
                         f"top-{cv['top_k']} {cv['baseline_regret_topk']:.4f}"
                         + ("  <- the law does worse: --optimize will not trust it"
                            if cv["regret_top1"] > cv["baseline_regret_top1"] + 1e-12 else ""))
    for note in r.get("notes", []):
        lines.append(f"note: {note}")
    ens = r.get("ensemble")
    if ens:  # laws/ensemble.py: the members and their weights from the cross-validated scores
        lines.append("ensemble: " + ", ".join(f"{n} {v:.3f}" for n, v in ens["weights"].items())
                     + f" (weights ∝ exp(-CV score / {ens['temperature']:g}))")
    auto = r.get("auto")
    if auto:
        lines.append(f"auto: chose {auto['chosen']} ({auto['criterion']})")
        for name, c in auto["candidates"].items():
            if c.get("regret_top1") is None:
                lines.append(f"  {name:<10} skipped: {c.get('error')}")
            else:
                lines.append(f"  {name:<10} regret@1 {c['regret_top1']:.4f}  regret@k {c['regret_topk']:.4f}  "
                             f"mean-loss rho {_num(c['mean_loss_spearman']).strip()}  CV-rho {_num(c['mean_spearman']).strip()}  "
                             f"CV-MRE% {_pct(c['mean_mre']).strip()}  params {c['n_params']}"
                             + (f"  score {c['score']:.3f} (seeds " + " ".join(f"{x:.3f}" for x in c["scores"]) + ")"
                                if c.get("scores") else f"  not a candidate: {c.get('error')}"))
        lines.append(f"  why: {auto.get('why', '')}")
    return "\n".join(lines)


def plot_fit(law: MixingLaw, table: ObservationTable, out_dir: str) -> list[str]:
    """One PNG per eval domain: observed loss vs step per run (points) and the fitted law (lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    pred = law.predict(table.W, table.steps)
    final = table.final_rows()
    paths = []
    cmap = plt.get_cmap("viridis")
    for j, d in enumerate(law.eval_domains):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for n, run in enumerate(table.run_names):
            rows = np.flatnonzero(table.runs == run)
            rows = rows[np.argsort(table.steps[rows])]
            color = cmap(n / max(1, table.n_runs - 1))
            ax.plot(table.steps[rows], table.L[rows, j], "o", ms=3, color=color)
            ax.plot(table.steps[rows], pred[rows, j], "-", lw=1, color=color)
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"val loss ({d})")
        ax.set_title(f"{law.name}: observed (points) vs fitted (lines)")
        obs, fit = table.L[final, j], pred[final, j]
        ax2.plot(obs, fit, "o", ms=4)
        lo, hi = min(obs.min(), fit.min()), max(obs.max(), fit.max())
        ax2.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax2.set_xlabel("observed final loss")
        ax2.set_ylabel("fitted final loss")
        ax2.set_title(f"R2 {law.report['domains'][d]['r2']:.4f}, MRE {100 * law.report['domains'][d]['mre']:.2f}%")
        fig.tight_layout()
        path = os.path.join(out_dir, f"{d.replace(os.sep, '_')}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_weights_yaml(path: str, weights: dict[str, float], header_lines: list[str], optimum: Optimum | None = None,
                       meta: dict | None = None) -> None:
    """`weights:` mapping readable by the manual strategy (mixing.weights_file), with # comments and
    an `optimum:` metadata block (where the optimum lies relative to the data; the strategy ignores it)."""
    import yaml

    with open(path, "w") as f:
        for line in header_lines:
            f.write(f"# {line}\n")
        f.write("weights:\n")
        for d, w in weights.items():
            f.write(f"  {d}: {float(w)!r}\n")
        if optimum is not None:
            meta = {"predicted_mean_loss": float(optimum.objective), "tv_to_nearest_observed": optimum.tv_to_nearest,
                    "nearest_run": optimum.nearest_run, "active_constraints": list(optimum.active),
                    "support_margin": optimum.support_margin, "trust_radius": optimum.trust_radius,
                    "unconstrained_tv": optimum.unconstrained_tv}
            f.write(yaml.safe_dump({"optimum": meta}, sort_keys=False))
        if meta is not None:  # the sampled optimiser's report (laws/optim/sampled.py)
            f.write(yaml.safe_dump(_plain(meta), sort_keys=False))


def _plain(x):
    """Numbers as plain floats (NaN as None) for yaml.safe_dump."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if x != x else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _off_or_float(text: str | None, flag: str) -> float | None:
    if text is None or text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{flag}: expected a number or 'none' (switch it off), got {text!r}") from None


def _predict(args) -> None:
    law = load_law(args.law_file)
    set_target_params(law, args.params)
    header, rows, W, steps = read_mixtures(args.predict, law.train_domains)
    if steps is None:
        if args.step is None:
            raise ValueError(f"{args.predict} has no 'step' column: pass --step S")
        steps = np.full(W.shape[0], float(args.step))
    elif args.step is not None:
        raise ValueError(f"{args.predict} has a 'step' column; drop --step (or the column)")
    write_predictions(args.out, header, rows, steps, law.eval_domains, law.predict(W, steps))
    print(f"fit: predicted {len(rows)} mixtures with {law.name} ({args.law_file}) -> {args.out}")


def write_predictions(out: str, header: list[str], rows: list[dict], steps, eval_domains, pred) -> None:
    """PRED.csv: the mixture file's columns (its old loss columns dropped), a step column if it had none, and
    the predicted loss/<domain> of every row. `fit --predict` and `fit-meta --predict` write it."""
    keep = [c for c in header if not c.startswith(LOSS_PREFIX)]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keep + ([] if "step" in keep else ["step"]) + [LOSS_PREFIX + d for d in eval_domains])
        for i, row in enumerate(rows):
            vals = [row[c] for c in keep] + ([] if "step" in keep else [repr(float(steps[i]))])
            w.writerow(vals + [repr(float(x)) for x in pred[i]])


def _optimize(args) -> None:
    law = load_law(args.law_file)
    args.step, rep = target_of(law, args)
    importance = parse_domain_values(args.importance, "--importance")
    if isinstance(importance, float):
        raise ValueError("--importance takes domain=value pairs, e.g. code=2,prose=1")
    min_w = parse_domain_values(args.min_weight, "--min-weight") or 0.0
    max_w = parse_domain_values(args.max_weight, "--max-weight")
    radius = _off_or_float(args.trust_radius, "--trust-radius")
    imp = law.importance_vector(importance)
    cv = law.report.get("cv", {})
    common = [
        f"law: {law.name}  ({law.formula})",
        f"fit: {law.report.get('n_runs')} runs, steps {law.step_range[0]:g}..{law.step_range[1]:g}; "
        f"CV mean MRE {_pct(cv.get('mean_mre')).strip()}%, mean Spearman {_num(cv.get('mean_spearman')).strip()}, "
        f"top-1 regret {_num(cv.get('regret_top1')).strip()} (nearest-run baseline {_num(cv.get('baseline_regret_top1')).strip()})",
        "importance: " + " ".join(f"{d}={v:.4g}" for d, v in zip(law.eval_domains, imp)),
        f"min weight: {args.min_weight or 0}; max weight: {args.max_weight or 'none'}",
    ]
    if args.optimizer == "slsqp":
        margin = _off_or_float(args.support_margin, "--support-margin")
        radius = DEFAULT_TRUST_RADIUS if args.trust_radius is None else radius
        opt = solve(law, args.step, importance=importance, min_weight=min_w, max_weight=max_w,
                    support_margin=margin, trust_radius=radius, seed=args.seed)
        weights, report, meta = opt.weights, opt.lines(), None
        written = (f"--optimizer slsqp --support-margin {args.support_margin} --trust-radius {radius} --seed {args.seed}")
    else:
        natural = parse_domain_values(args.natural, "--natural")
        if isinstance(natural, float):
            raise ValueError("--natural takes domain=tokens pairs (token counts or weights), e.g. code=3e9,web=7e9")
        prop = propose(law, args.step, importance, min_w, max_w, natural=natural, candidates=args.candidates,
                       bootstrap=args.bootstrap, support_cap=args.support_cap, support_floor=args.support_floor,
                       trust_radius=radius, force_proposal=args.force_proposal, force_optimize=args.force_optimize,
                       model_error=args.model_error, seed=args.seed, repetition=rep, risk_quantile=args.risk_quantile,
                       check_law=args.check_law, risk_pooling=args.risk_pooling, refuse_on_cv=args.refuse_on_cv,
                       prefer_best_run=args.prefer_best_run)
        weights, report, meta, opt = prop.weights, prop.lines(), {"proposal": prop.meta()}, None
        written = (f"--candidates {args.candidates} --bootstrap {args.bootstrap} --support-cap {args.support_cap:g} "
                   f"--support-floor {args.support_floor:g} --trust-radius {args.trust_radius} --seed {args.seed}"
                   + (" --force-proposal" if args.force_proposal else "") + (" --force-optimize" if args.force_optimize else "")
                   + (" --model-error" if args.model_error else "") + f" --risk-quantile {args.risk_quantile:g} "
                   f"--check-law {args.check_law} --risk-pooling {args.risk_pooling}" + (" --refuse-on-cv" if args.refuse_on_cv else "")
                   + (" --prefer-best-run" if args.prefer_best_run else ""))
    r = np.array(list(weights.values()))
    pred = law.predict(r[None] if rep is None else rep.effective(r[None]), [args.step])[0]
    if rep is not None:  # epochs per domain at the target budget, next to the weights (laws/repetition.py)
        report = [*report, *rep.lines(weights)]
        meta = {**(meta or {}), "repetition": rep.meta(weights)}
    elif args.optimizer == "sampled":
        report = [*report, "repetition: not checked (give --data-dir or --domain-tokens, and the target budget)"]
    lines = [
        f"written by: python -m mixtrain.fitting.fit --law-file {args.law_file} --optimize --step {args.step:g} {target_flags(args)} {written}",
        *common,
        "predicted val loss of these weights at that step: " + " ".join(f"{d}={v:.4f}" for d, v in zip(law.eval_domains, pred)),
        *report,
        "use: python -m mixtrain.train mixing=manual mixing.weights_file=<this file>",
    ]
    lines += target_lines(law, args)
    write_weights_yaml(args.out, weights, lines, opt, meta)
    for d, w in weights.items():
        print(f"  {d}: {w:.6f}")
    for line in report:
        print(f"fit: {line}")
    print(f"fit: {args.optimizer} optimum of {law.name} at step {args.step:g} -> {args.out}")


def unobserved_domains(table: ObservationTable) -> list[str]:
    """Training domains whose weight is 0 in every row of `table`."""
    return [d for i, d in enumerate(table.train_domains) if not np.any(table.W[:, i] > 0)]


def _fit(args) -> None:
    table = read_table(args.table)
    importance = parse_domain_values(args.importance, "--importance")
    if isinstance(importance, float):
        raise ValueError("--importance takes domain=value pairs, e.g. code=2,prose=1")
    for d in unobserved_domains(table):  # issue 30: fitted silently, then written at the support floor
        print(f"fit: warning: domain {d!r} has weight 0 in every one of the {table.n_rows} rows of {args.table}: the "
              "law has no observation of what training on it does, so any weight --optimize gives it is an "
              f"extrapolation; add proxy runs that train on {d!r}, or leave it out of the mixture", file=sys.stderr)
    law = fit_law(table, args.law, cv_folds=args.folds, seed=args.seed, importance=importance)
    print(quality_table(law))
    law.to_json(args.out)
    print(f"fit: wrote {args.out}")
    if args.plot:
        paths = plot_fit(law, table, args.plot)
        print(f"fit: {len(paths)} plot(s) in {args.plot}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="mixtrain fit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", help="observation table CSV (fit mode)")
    # default ridge (issue 19): on the synthetic optimiser bench (BENCHMARKS.md) the only law whose decisions were
    # worse than uniform in <= 2% of worlds on both world sets, with median regret close to the RegMix recipe's; not auto: on the demo comparison (RESULTS.md) auto picked transfer, whose optimum left
    # the proxies' range and lost to uniform, and auto fits every law (tens of seconds)
    ap.add_argument("--law", default="ridge", choices=sorted(LAWS) + ["auto"])
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds over runs (0: none)")
    ap.add_argument("--seed", type=int, default=0, help="fold assignment seed (fit); random starts (optimize)")
    ap.add_argument("--plot", metavar="DIR", help="fit mode: save fitted-vs-observed PNGs per domain here")
    ap.add_argument("--law-file", help="law JSON written by fit mode (predict / optimize modes)")
    ap.add_argument("--predict", metavar="MIX.csv", help="mixture file with w/<domain> columns and optional step")
    ap.add_argument("--optimize", action="store_true", help="write the optimal weights at --step")
    ap.add_argument("--step", type=float, help="target step (optimize) or step for a mixture file without one")
    ap.add_argument("--importance", help="eval-domain importance, e.g. code=2,prose=1 (unnamed: 1); in fit mode "
                    "it weights the CV mean-loss ranking and regret")
    ap.add_argument("--optimizer", default="sampled", choices=["sampled", "slsqp"],
                    help="optimize: sampled candidates + bootstrap refits (default, laws/optim/sampled.py) or the SLSQP "
                    "optimum in a trust region (laws/optim/slsqp.py)")
    ap.add_argument("--candidates", type=int, default=SAMPLED.candidates, help="sampled: candidate mixtures")
    ap.add_argument("--bootstrap", type=int, default=SAMPLED.bootstrap, help="sampled: refits on resampled runs (0: none)")
    ap.add_argument("--support-cap", type=float, default=SAMPLED.support_cap,
                    help="sampled: no weight above this x the domain's largest observed weight (+ --support-floor)")
    ap.add_argument("--support-floor", type=float, default=SAMPLED.support_floor,
                    help="sampled: absolute slack on the cap; a domain never above it in any run gets weight 0")
    ap.add_argument("--natural", help="sampled: natural mixture (domain=tokens,...) to compare with and fall back to")
    ap.add_argument("--force-proposal", action="store_true",
                    help="sampled: write the proposal even if its interval against uniform does not lie below zero")
    ap.add_argument("--model-error", action="store_true",
                    help="sampled: widen the proposal-uniform interval by the law's cross-validated error")
    ap.add_argument("--risk-quantile", type=float, default=SAMPLED.risk_quantile,
                    help="sampled: write the step from uniform towards the proposal whose this upper quantile of "
                    "(mixture - uniform) over the refits is lowest (higher: more cautious)")
    ap.add_argument("--check-law", default="auto", type=check_law_names,
                    help="sampled: laws of other families whose refits must also put the step below uniform, "
                    "'a+b' for several (auto: ridge+bimix; for bimix, ridge; for ridge, bimix below 32 runs and "
                    "lightgbm from 32 on; none: this law alone)")
    ap.add_argument("--risk-pooling", default=SAMPLED.risk_pooling, choices=["each", "pooled"],
                    help="sampled: each: every law's own --risk-quantile of (mixture - uniform) must be below zero; "
                    "pooled: the quantile over all laws' refits pooled (the rule before 2026-12-08)")
    ap.add_argument("--refuse-on-cv", action="store_true",
                    help="sampled: do not optimise when the law's CV regret is worse than the nearest-run baseline")
    ap.add_argument("--prefer-best-run", action="store_true", help="sampled: write the best observed run when its measured "
                    "loss beats the written mixture's prediction (after a sequential search; laws/optim/observed.py)")
    ap.add_argument("--force-optimize", action="store_true",
                    help="sampled, with --refuse-on-cv: optimise even if the law's CV regret is worse than the "
                    "nearest-run baseline")
    ap.add_argument("--support-margin", default=str(DEFAULT_SUPPORT_MARGIN),
                    help="slsqp: keep each weight within [min observed - M, max observed + M] ('none': off)")
    ap.add_argument("--trust-radius", default=None,
                    help=f"stay within this TV distance of some observed mixture ('none': off; default off for "
                    f"sampled, {DEFAULT_TRUST_RADIUS} for slsqp)")
    add_target_args(ap)
    ap.add_argument("--min-weight", help="floor: a number or domain=value,...")
    ap.add_argument("--max-weight", help="cap (e.g. from an epoch cap): a number or domain=value,...")
    ap.add_argument("--out", required=True, help="law.json (fit), PRED.csv (predict) or weights.yaml (optimize)")
    args = ap.parse_args(argv)
    modes = [bool(args.table), bool(args.predict), bool(args.optimize)]
    if sum(modes) != 1:
        ap.error("give exactly one of --table (fit), --predict MIX.csv, --optimize")
    if (args.predict or args.optimize) and not args.law_file:
        ap.error("--predict and --optimize need --law-file law.json")
    try:
        if args.table:
            _fit(args)
        elif args.predict:
            _predict(args)
        else:
            _optimize(args)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"fit: {e}")


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain fit")
