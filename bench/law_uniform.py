"""Benchmark: is any law's optimum worse than uniform? Every law `mixtrain fit --law` accepts (and auto under
today's rule and the ensemble rules) on synthetic worlds with a known optimum, through the default optimiser.

    python bench/law_uniform.py --domains 8 --runs 16,64 --worlds 25 --seed0 700 --out uni8.jsonl   # appends per world
    python bench/law_uniform.py --replay uni8.jsonl,uni17.jsonl                                    # the table again
    python bench/law_uniform.py --cv-from rep64.jsonl --laws transfer,ensemble --out reg64.jsonl   # auto's rules only
    python bench/law_uniform.py --no-cv --worlds 60 --seed0 1200 --domains 8 --runs 16 --out new.jsonl  # single laws, fast
    python bench/law_uniform.py --no-cv --former-rule ... --out former.jsonl; --paired former.jsonl new.jsonl
A stopped run is resumed by the same command (worlds already in --out are skipped).

Place in the flow: laws/synthetic.World (truth) -> proxy table -> every auto candidate fitted and cross-validated
under fold seeds 0-8 (bench/law_choice.py; seeds 0-2 are what `--law auto` computes with the CLI's seed 0) -> auto's choice
(today's band + order rule, and the ensemble rules) and the CV-weighted ensemble (laws/ensemble.py) -> for every law:
laws/optim/sampled.py `propose` (the default optimiser: shrink towards uniform, check law by run count) -> the
TRUE mean loss of the written mixture against uniform's and the optimum's.

Per world, one JSON line: the true regret of uniform, and per law the written mixture's regret, whether it is worse
than uniform, what the optimiser wrote (proposal / blend / uniform) and the proposal's own regret. A law that
refuses the table (too few runs for its parameters; `scaling` without num_params) is "refused": the CLI stops
with an error and writes no mixture. auto's rows are the rows of the law it chose (the same fit, the same
proposal). Worlds: World(k, seed), proxy_table(n, seed=seed): the same worlds as bench/law_choice.py for the same
seeds, so its --regret-from reads these rows.
Settings: `--bootstrap` 20 refits as the CLI (and 20 of the check law: lightgbm checks ridge from 32 runs, bimix
below, ridge checks every other law); `--candidates` 4,000 (the CLI: 100,000), for time on a shared 2-core machine.
Each row also carries bench/law_choice.py's per-world numbers (every law's CV under 9 fold seeds, its held-out
ranking of 200 fresh mixtures): `python bench/law_choice.py --replay uni.jsonl --regret-from uni.jsonl` gives the
law choice's stability, ranking and decision regret from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")

from mixtrain.laws import LAWS, make_law  # noqa: E402
from mixtrain.laws.ensemble import EnsembleLaw  # noqa: E402
from mixtrain.laws.law_choice import band, decide  # noqa: E402
from mixtrain.laws.optim.bootstrap import former_check_law  # noqa: E402
from mixtrain.laws.optim.sampled import propose  # noqa: E402
from mixtrain.laws.synthetic import World  # noqa: E402

from law_choice import read_rows, world_fits, world_key  # noqa: E402  (bench/law_choice.py, next to this file)

RISK_QUANTILE = [None]  # --risk-quantile: the optimiser's shrink quantile (None: its default)
OPTIONS: dict = {}  # --model-error / --check-law: further ProposalSettings for every law (the CLI's defaults if unset)
ANCHORS = [False]  # --anchors (with --no-cv): the sweep starts with uniform and natural, as `mixtrain proxy` writes it
FORMER = [False]  # --former-rule: the optimiser's step 5 as before 2026-12-08 (one check law, refits pooled)
NO_CV = [False]  # --no-cv: fresh worlds without bench/law_choice.py's CV (single laws only; fast)
CV_FOLDS = [0]  # --cv-folds: refit each proposed law with this CV (the CLI's `fit` runs 5; model_error needs it)
AUTO_RULES = ("auto (today: band + order)", "auto (ensemble if tied)", "auto (ensemble always)")


def world_row(k: int, n: int, seed: int, candidates: int, bootstrap: int, only=None, cv_row=None) -> dict:
    """One world: every law (or those in `only`, plus auto's choices) through `propose`; `cv_row` reuses a
    bench/law_choice.py dump's CV numbers for this world instead of cross-validating again."""
    if NO_CV[0] and cv_row is None:  # --no-cv: the single laws only (no auto, no ensemble: they need the CV)
        return single_laws_row(k, n, seed, candidates, bootstrap, only)
    world, table, fitted, row = world_fits(k, n, seed, cv_row)  # bench/law_choice.py: 9 fold seeds, fresh mixtures
    opt = world.mean_loss(world.optimum())
    uni = world.mean_loss(np.full(k, 1.0 / k))
    # what `--law auto` / `--law ensemble` see with the CLI's seed 0: fold seeds 0-2, the run-count rule
    ok = {m: {"scores": [c[s]["score"] for s in (0, 1, 2)]} for m, c in row["cv"].items()
          if n >= getattr(LAWS[m], "auto_min_runs", 0)}
    scores = {m: c["scores"] for m, c in ok.items()}
    laws = dict(fitted)
    for name in LAWS:  # not cross-validated by the bench (scaling: not an auto candidate) -> fitted by name
        if name not in laws and name != "ensemble":
            try:
                laws[name] = make_law(name).fit(table, cv_folds=0)
            except ValueError as e:
                laws[name] = str(e)
    # cv_folds=0: the ensemble's own CV only adds a note to the proposal, never changes what is written
    laws["ensemble"] = EnsembleLaw.from_candidates(table, {m: fitted[m] for m in ok}, ok, seeds=[0, 1, 2], cv_folds=0)
    row.update(uniform=uni - opt, laws={})
    today = decide(scores)[0]
    if only:
        laws = {m: v for m, v in laws.items() if m in only or m == today}
    for name, law in laws.items():
        row["laws"][name] = one_law(world, name, law, candidates, bootstrap, seed)
    row["auto"] = {AUTO_RULES[0]: today, AUTO_RULES[1]: "ensemble" if len(band(scores)) > 1 else today,
                   AUTO_RULES[2]: "ensemble"}
    row["ensemble_weights"] = laws["ensemble"].report["ensemble"]["weights"] if "ensemble" in laws else None
    return row


def one_law(world, name: str, law, candidates: int, bootstrap: int, seed: int) -> dict:
    """`law` (fitted, or the error that refused the table) through `propose`: the written mixture's true regret."""
    t0 = time.time()
    if isinstance(law, str):
        return {"refused": law[:200], "regret": None}
    opt = world.mean_loss(world.optimum())
    uni = world.mean_loss(np.full(len(world.domains), 1.0 / len(world.domains)))
    try:
        if CV_FOLDS[0] and not isinstance(law, EnsembleLaw):  # as the CLI: the law's report carries its CV
            law = make_law(name).fit(law.table, cv_folds=CV_FOLDS[0])
        # the rule before 2026-12-08: one check law, refits pooled
        former = {"risk_pooling": "pooled", "check_law": former_check_law(law)} if FORMER[0] else {}
        p = propose(law, world.s_ref, natural=dict(zip(world.domains, world.natural)), candidates=candidates,
                    bootstrap=bootstrap, seed=seed,
                    **({"risk_quantile": RISK_QUANTILE[0]} if RISK_QUANTILE[0] is not None else {}), **{**OPTIONS, **former})
    except ValueError as e:
        return {"refused": str(e)[:200], "regret": None}
    true = world.mean_loss(np.array(list(p.weights.values())))
    return {"regret": true - opt, "worse": bool(true > uni + 1e-12), "wrote": p.chosen,
            "proposal_regret": world.mean_loss(np.array(list(p.proposal.values()))) - opt,
            "seconds": time.time() - t0}


def single_laws_row(k: int, n: int, seed: int, candidates: int, bootstrap: int, only=None) -> dict:
    """--no-cv: one world, every single law (or those in `only`) fitted without CV and through `propose`."""
    world = World(k, seed)
    table = world.proxy_table(n, seed=seed, anchors=ANCHORS[0])
    row = {"k": k, "n": n, "seed": seed, "anchors": ANCHORS[0], "laws": {}, "auto": {}}
    row["uniform"] = world.mean_loss(np.full(k, 1.0 / k)) - world.mean_loss(world.optimum())
    for name in LAWS:
        if name == "ensemble" or (only and name not in only):
            continue
        try:
            law = make_law(name).fit(table, cv_folds=0)
        except ValueError as e:
            law = str(e)
        row["laws"][name] = one_law(world, name, law, candidates, bootstrap, seed)
    return row


def paired(before: list[dict], after: list[dict]) -> list[str]:
    """--paired A B: the worlds both dumps hold, per law: share worse than uniform and median regret under each,
    the median paired difference (B - A) and its Wilcoxon signed-rank p."""
    from scipy.stats import wilcoxon

    a, b = {world_key(r): r for r in before}, {world_key(r): r for r in after}
    keys = sorted(set(a) & set(b))
    out = [f"{len(keys)} paired worlds; uniform's median regret {np.median([a[k]['uniform'] for k in keys]):.4f}",
           "| law | worse than uniform, A | worse, B | median regret, A | median regret, B | median paired "
           "difference (B - A) | Wilcoxon p |", "|---|---|---|---|---|---|---|"]
    names = [m for m in a[keys[0]]["laws"] if all(m in b[k]["laws"] for k in keys)] if keys else []
    for m in names:
        ga, gb = [a[k]["laws"][m] for k in keys], [b[k]["laws"][m] for k in keys]
        if any(g.get("regret") is None for g in ga + gb):
            continue
        ra, rb = np.array([g["regret"] for g in ga]), np.array([g["regret"] for g in gb])
        wa, wb, d = sum(g["worse"] for g in ga), sum(g["worse"] for g in gb), rb - ra
        p = wilcoxon(d).pvalue if np.any(d != 0) else 1.0
        out.append(f"| {m} | {100 * wa / len(keys):.1f}% ({wa}/{len(keys)}) | {100 * wb / len(keys):.1f}% "
                   f"({wb}/{len(keys)}) | {np.median(ra):.4f} | {np.median(rb):.4f} | {np.median(d):+.4f} | {p:.2g} |")
    return out


def summary(rows: list[dict]) -> list[str]:
    out = ["| domains | runs | worlds | law | worse than uniform | refused (no mixture written) | median regret | "
           "mean regret | wrote uniform / blend / proposal |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["k"], r["n"]), []).append(r)
    groups[("all", "all")] = rows
    for (k, n), rs in sorted(groups.items(), key=lambda x: str(x[0])):
        names = list(dict.fromkeys(m for r in rs for m in r["laws"])) + list(AUTO_RULES)
        for m in names:
            got = [r["laws"].get(r["auto"].get(m)) if m in AUTO_RULES else r["laws"].get(m) for r in rs]
            got = [g for g in got if g is not None]
            ok = [g for g in got if g.get("regret") is not None]
            if not got:
                continue
            worse = 100 * np.mean([g["worse"] for g in ok]) if ok else float("nan")
            reg = np.array([g["regret"] for g in ok]) if ok else np.array([np.nan])
            wrote = [sum(g["wrote"] == w or (w == "blend" and g["wrote"].startswith("blend")) for g in ok)
                     for w in ("uniform", "blend", "proposal")]
            out.append(f"| {k} | {n} | {len(rs)} | {m} | {worse:.1f}% ({sum(g['worse'] for g in ok)}/{len(ok)}) | "
                       f"{len(got) - len(ok)} | {np.median(reg):.4f} | {np.mean(reg):.4f} | {' / '.join(map(str, wrote))} |")
    med_u = np.median([r["uniform"] for r in rows]) if rows else float("nan")
    out.append(f"\nuniform's own median regret over these worlds: {med_u:.4f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=25)
    ap.add_argument("--seed0", type=int, default=700)
    ap.add_argument("--domains", default="8,17")
    ap.add_argument("--runs", default="16,64")
    ap.add_argument("--candidates", type=int, default=4000)
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--out", default=None, help="append each world's row here (JSON lines), as it finishes")
    ap.add_argument("--laws", default=None, help="propose only these laws (comma list, 'ensemble' included; auto's "
                    "choice always): the decision-regret comparison of bench/law_choice.py --regret-from")
    ap.add_argument("--risk-quantile", type=float, default=None, help="the optimiser's shrink quantile (default 0.6)")
    ap.add_argument("--model-error", action="store_true", help="the optimiser's model_error (implies --cv-folds 5)")
    ap.add_argument("--check-law", default=None, help="the optimiser's check law (default: its own, 'auto')")
    ap.add_argument("--no-cv", action="store_true", help="single laws only, without the 9-seed CV (auto and the "
                    "ensemble need it): many fresh worlds fast")
    ap.add_argument("--anchors", action="store_true", help="with --no-cv: runs 1-2 of each table are uniform and "
                    "natural, as `mixtrain proxy` writes every sweep (default: Dirichlet draws only, RegMix-style)")
    ap.add_argument("--former-rule", action="store_true", help="step 5 as before 2026-12-08: one check law (ridge; "
                    "for ridge bimix, lightgbm from 32 runs), refits pooled (the paired baseline of the new default)")
    ap.add_argument("--cv-folds", type=int, default=0, help="refit each proposed law with this CV first (the CLI: 5)")
    ap.add_argument("--cv-from", default=None, help="bench/law_choice.py --dump files: only their worlds, with their "
                    "per-seed CV numbers (no cross-validation here)")
    ap.add_argument("--replay", default=None, help="no fitting: the table from --out files (comma list)")
    ap.add_argument("--paired", nargs=2, metavar=("A", "B"), default=None, help="no fitting: A's and B's rows of the "
                    "worlds both hold, law by law (e.g. --former-rule vs the default on the same seeds)")
    args = ap.parse_args()
    RISK_QUANTILE[0] = args.risk_quantile
    NO_CV[0] = args.no_cv
    FORMER[0] = args.former_rule
    ANCHORS[0] = args.anchors
    if args.anchors and not args.no_cv:
        ap.error("--anchors needs --no-cv (bench/law_choice.py's CV worlds are Dirichlet-only)")
    CV_FOLDS[0] = 5 if args.model_error and not args.cv_folds else args.cv_folds
    OPTIONS.update({"model_error": True} if args.model_error else {})
    OPTIONS.update({"check_law": args.check_law} if args.check_law else {})
    if args.paired:
        print("\n".join(paired(read_rows(args.paired[0]), read_rows(args.paired[1]))))
        return
    if args.replay:
        rows = read_rows(args.replay)
        print("\n".join(summary(rows)))
        return
    # worlds outermost: a run stopped early still covers every setting
    jobs = [(int(k), int(n), args.seed0 + s) for s in range(args.worlds)
            for k in args.domains.split(",") for n in args.runs.split(",")]
    cv_rows = {}
    if args.cv_from:
        cv_rows = {world_key(d): d for d in read_rows(args.cv_from)}
        jobs = [j for j in jobs if j in cv_rows]
    done = set()
    if args.out and os.path.exists(args.out):  # resume: worlds already written are skipped
        done = {world_key(d) for d in read_rows(args.out)}
    jobs = [j for j in jobs if j not in done]
    only = set(args.laws.split(",")) if args.laws else None
    rows, t0 = [], time.time()
    for k, n, seed in tqdm(jobs, desc="worlds", file=sys.stderr):
        rows.append(world_row(k, n, seed, args.candidates, args.bootstrap, only, cv_rows.get((k, n, seed))))
        r = rows[-1]
        print(f"world {seed} k={k} n={n}: auto {r['auto'].get(AUTO_RULES[0], '-')} " + " ".join(
            f"{m}={v['regret']:.4f}{'!' if v['worse'] else ''}" for m, v in r["laws"].items() if v.get("regret") is not None),
            file=sys.stderr)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(r, default=float) + "\n")
    print("\n".join(summary(rows)))
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
