"""Benchmark: does `law="auto"` flip on noise? Five rules on synthetic worlds and a real table: the former rule
(one 5-fold split, lowest top-1/top-3 regret, ties to the fewest parameters), the first issue-32 rule
(ridge+margin: ridge unless a law beats it under every fold seed by 0.05), laws/law_choice.decide (new: band +
order), and two with the CV-weighted ensemble (laws/ensemble.py): "ensemble-if-tied" (the ensemble when the band
holds several laws) and "ensemble" (always).

    python bench/law_choice.py [--worlds 12] [--runs 16,64] [--domains 8] [--real results/held-out-size-2026-12-04/table.csv]
                               [--dump rows.jsonl]     # each world's per-seed CV scores, one JSON line per world
    python bench/law_choice.py --fill old.jsonl --dump new.jsonl    # add pred_H to an older dump (refits, no CV)
    python bench/law_choice.py --replay a.jsonl,b.jsonl [--regret-from uniform.jsonl] [--temperature 0.04]
                                                        # the tables again from dumps, without fitting

Place in the flow: laws/synthetic.World (truth) -> proxy table -> every law's cross-validation under 9 fold
seeds -> every rule replayed on the same CV numbers -> stability, held-out ranking, decision regret.

Per world (paired: every rule sees the same CV results):
* stability under fold reseeding: the former rule chooses once per fold seed in {0, 3, 6}; the others once per
  seed triple {0,1,2}, {3,4,5}, {6,7,8}. Stable = the 3 choices agree. The ensemble's name cannot flip, its
  weights can: the largest TV between the triples' weights, and how alike the triples' ensembles rank. For every
  issue-32 rule, "models agree": the mean over worlds of the lowest Spearman between the fresh-mixture rankings of
  the models it writes under the three triples (1.000: the same model; a flip between two laws shows as < 1).
* held-out ranking: every law fitted on all runs ranks 200 fresh mixtures (the same design) by predicted mean
  loss; Spearman against the true mean loss (the ensemble: its members' predictions weighted by the triple's
  scores). Reported: the mean over worlds, and how often the choice is the worst candidate.
* decision regret (--regret-from): the true regret of the default optimiser's mixture with the seed-0 choice,
  read from bench/law_uniform.py's rows for the same world seeds (every law and the ensemble proposed there).
The real table: one size's runs (the largest count), stability only (no truth for the other two).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mixtrain.laws import LAWS, spearman  # noqa: E402
from mixtrain.laws.cross_validation import cross_validate  # noqa: E402
from mixtrain.laws.ensemble import ENSEMBLE_TEMPERATURE, ensemble_weights  # noqa: E402
from mixtrain.laws.law_choice import band, cv_score, decide  # noqa: E402

AUTO_MARGIN, DEFAULT_LAW = 0.05, "ridge"  # the first issue-32 rule's settings, replayed as a baseline  # noqa: E402
from mixtrain.laws.synthetic import World  # noqa: E402
from mixtrain.laws.table import read_table  # noqa: E402

SEEDS = range(9)


def cv_all(table) -> tuple[dict, dict]:
    """(fitted laws, name -> [cv dict per seed]) for every auto candidate that fits (run-count rule ignored: applied later)."""
    fitted, cvs = {}, {}
    for name, cls in LAWS.items():
        if not getattr(cls, "auto_candidate", True):
            continue
        try:
            law = cls().fit(table, cv_folds=0)
        except ValueError:
            continue
        res = [cross_validate(law, table, folds=5, seed=s) for s in SEEDS]
        if all(cv_score(c) is not None for c in res):
            fitted[name], cvs[name] = law, res
    return fitted, cvs


def old_rule(cvs: dict, seed: int) -> str:
    """The former criterion (laws/__init__.py before issue 32): one split, regret with a 10% tie band, fewest params."""
    reg = {n: 0.5 * (c[seed]["regret_top1"] + c[seed]["regret_topk"]) for n, c in cvs.items()}
    scale = max(c[seed]["regret_random"] for c in cvs.values())
    best = min(reg.values())
    tied = [n for n in cvs if reg[n] <= best + 0.10 * scale]
    return min(tied, key=lambda n: (_params[n], reg[n]))


_params: dict[str, int] = {}


def ridge_margin_rule(cvs: dict, seeds: list[int], n_runs: int) -> str:
    """The first issue-32 rule (commit 453e185): ridge unless a law beats it under every seed and by the
    margin in mean score; among those, the lowest mean score (it flipped between exp and transfer)."""
    ok = {n: c for n, c in cvs.items() if n_runs >= getattr(LAWS[n], "auto_min_runs", 0)}
    scores = {n: [c[s]["score"] for s in seeds] for n, c in ok.items()}
    mean = {n: float(np.mean(v)) for n, v in scores.items()}
    if DEFAULT_LAW not in ok:
        return min(mean, key=mean.get)
    win = [n for n in ok if n != DEFAULT_LAW and mean[n] < mean[DEFAULT_LAW] - AUTO_MARGIN
           and all(a < b for a, b in zip(scores[n], scores[DEFAULT_LAW]))]
    return min(win, key=mean.get) if win else DEFAULT_LAW


def new_rule(cvs: dict, seeds: list[int], n_runs: int) -> str:
    """laws/law_choice.decide on the same per-seed scores."""
    ok = {n: [c[s]["score"] for s in seeds] for n, c in cvs.items() if n_runs >= getattr(LAWS[n], "auto_min_runs", 0)}
    return decide(ok)[0]


def choices(cvs: dict, n_runs: int) -> tuple[list[str], list[str], list[str]]:
    """(former, first issue-32 rule, current rule) choices: once per fold seed / seed triple."""
    triples = [[s, s + 1, s + 2] for s in (0, 3, 6)]
    return ([old_rule(cvs, s) for s in (0, 3, 6)], [ridge_margin_rule(cvs, t, n_runs) for t in triples],
            [new_rule(cvs, t, n_runs) for t in triples])


def _slim(cvs: dict) -> dict:
    """Per law, per fold seed: the numbers both rules read (dumped with --dump, replayed with --replay)."""
    keys = ("regret_top1", "regret_topk", "regret_random", "mean_loss_spearman")
    return {n: [{**{k: c.get(k) for k in keys}, "score": cv_score(c)} for c in res] for n, res in cvs.items()}


def world_row(k: int, n: int, seed: int) -> dict:
    return world_fits(k, n, seed)[3]


def world_fits(k: int, n: int, seed: int, cv_row: dict | None = None) -> tuple:
    """(world, proxy table, every candidate law fitted on all runs, the world's row): bench/law_uniform.py reuses it.
    With `cv_row` (a --dump row of the same world) its per-seed CV numbers are reused: the laws are only refitted
    on all runs (deterministic), for the fresh mixtures' predictions."""
    world = World(k, seed)
    table = world.proxy_table(n, seed=seed)
    if cv_row is None:
        fitted, cvs = cv_all(table)
        cvs = _slim(cvs)
    else:
        cvs = cv_row["cv"]
        fitted = {name: LAWS[name]().fit(table, cv_folds=0) for name in cvs}
    for name, law in fitted.items():
        _params[name] = law.n_params()
    rng = np.random.default_rng(10_000 + seed)
    c = np.exp(rng.uniform(np.log(0.3), np.log(3.0), 200))
    H = np.array([rng.dirichlet(ci * k * world.natural + 1e-3) for ci in c])
    truth = world.loss(H, np.full(200, world.s_ref)).mean(axis=1)
    pred = {name: law._predict(H, np.full(200, world.s_ref)).mean(axis=1) for name, law in fitted.items()}
    rho = {name: spearman(p, truth) for name, p in pred.items()}
    row = {"k": k, "n": n, "seed": seed, "rho": rho, "cv": cvs,
           "n_params": {name: law.n_params() for name, law in fitted.items()},
           # every law's predicted mean loss of the 200 fresh mixtures: the ensemble is replayed from these
           "pred_H": {name: np.round(p, 6).tolist() for name, p in pred.items()}, "truth_H": np.round(truth, 6).tolist()}
    replay(row)
    return world, table, fitted, row


RULES = ("former", "ridge+margin", "new", "ensemble-if-tied", "ensemble")
TRIPLES = ([0, 1, 2], [3, 4, 5], [6, 7, 8])
TEMPERATURE = [ENSEMBLE_TEMPERATURE]  # --temperature replays the ensemble with another one


def replay(row: dict) -> dict[str, list[str]]:
    """Each rule's 3 choices (fold seeds / seed triples) from a row's per-seed CV numbers; sets row[rule].
    The ensemble rules: "ensemble" always (laws/ensemble.py, weights from the triple's scores), "ensemble-if-tied"
    when the band of laws/law_choice.py holds several laws, else the band's single law. With the fresh mixtures'
    predictions (pred_H), row["rho_ens"] is the ensemble's held-out Spearman under each triple."""
    _params.update(row["n_params"])
    out = dict(zip(RULES, choices(row["cv"], row["n"])))
    ok = {n: c for n, c in row["cv"].items() if row["n"] >= getattr(LAWS[n], "auto_min_runs", 0)}
    weights, tied = [], []
    for t in TRIPLES:
        sc = {n: [c[s]["score"] for s in t] for n, c in ok.items()}
        weights.append(ensemble_weights(sc, TEMPERATURE[0]))
        tied.append(len(band(sc)) > 1)
    out["ensemble"] = ["ensemble" if len(ok) > 1 else ch for ch in out["new"]]
    out["ensemble-if-tied"] = ["ensemble" if tie else ch for tie, ch in zip(tied, out["new"])]
    row.update(out)
    row["ens_w"] = weights
    if "pred_H" in row:
        truth = np.array(row["truth_H"])
        preds = [sum(v * np.array(row["pred_H"][n]) for n, v in w.items()) for w in weights]
        row["rho_ens"] = [spearman(p, truth) for p in preds]
        row["ens_agree"] = min(spearman(preds[0], p) for p in preds[1:])  # the triples' ensembles rank alike?
        # every rule: do the models it writes under the 3 triples rank the fresh mixtures alike (1: the same model)?
        model = lambda ch, i: preds[i] if ch == "ensemble" else np.array(row["pred_H"][ch])  # noqa: E731
        row["agree"] = {rule: min(spearman(model(out[rule][0], 0), model(ch, i)) for i, ch in enumerate(out[rule]))
                        for rule in RULES[1:]}
    return out


def _rho(r: dict, rule: str) -> float:
    """Held-out Spearman of the rule's seed-0 choice (the ensemble's under triple 0)."""
    return r["rho_ens"][0] if r[rule][0] == "ensemble" else r["rho"][r[rule][0]]


def _tv(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(n, 0.0) - b.get(n, 0.0)) for n in set(a) | set(b))


def summary(rows: list[dict], label: str) -> list[str]:
    out = []
    has_h = bool(rows) and all("rho_ens" in r for r in rows)
    for rule in RULES:
        if rule.startswith("ensemble") and not has_h:
            continue
        stable = np.mean([len(set(r[rule])) == 1 for r in rows])
        worst = np.mean([_rho(r, rule) < min(r["rho"].values()) + 1e-12 for r in rows])
        rho = np.mean([_rho(r, rule) for r in rows])
        chosen = {n: sum(r[rule][0] == n for r in rows) for n in sorted({r[rule][0] for r in rows})}
        reg = ""
        if all(r.get("regret") and r[rule][0] in r["regret"] for r in rows):
            v = [r["regret"][r[rule][0]] for r in rows]
            reg = f"{np.median(v):.4f} / {np.mean(v):.4f}"
        agree = f" (models agree {np.mean([r['agree'][rule] for r in rows]):.4f})" if has_h and rule in rows[0]["agree"] else ""
        out.append(f"| {label} | {rule} | {100 * stable:.0f}%{agree} | {rho:.3f} | {100 * worst:.0f}% | {reg} | {chosen} |")
    if has_h:
        tv = [max(_tv(r["ens_w"][0], w) for w in r["ens_w"][1:]) for r in rows]
        out.append(f"| {label} | ensemble weights across triples | largest TV median {np.median(tv):.3f}, max "
                   f"{np.max(tv):.3f}; the triples' ensembles rank the fresh mixtures alike: Spearman min "
                   f"{min(r['ens_agree'] for r in rows):.4f} | | | | |")
    return out


def read_rows(paths: str) -> list[dict]:
    """Every row of the JSON-lines files `paths` (a comma list), in order; blank lines skipped. The dumps of this
    bench and of bench/law_uniform.py are read this way; a .gz file (as kept under results/) is read decompressed."""
    import gzip

    rows = []
    for path in paths.split(","):
        with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
            rows += [json.loads(x) for x in f if x.strip()]
    return rows


def world_key(row: dict) -> tuple:
    """(domains, runs, world seed): what identifies one world's row in every dump."""
    return row["k"], row["n"], row["seed"]


def join_regret(rows: list[dict], path: str) -> None:
    """Each world's true decision regret per law (bench/law_uniform.py rows of the same world seeds) -> row["regret"]."""
    got = {world_key(d): d for d in read_rows(path)}
    for r in rows:
        d = got.get(world_key(r))
        if d is not None:
            r["regret"] = {m: v["regret"] for m, v in d["laws"].items() if v.get("regret") is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--runs", default="16,64")
    ap.add_argument("--domains", default="8")
    ap.add_argument("--seed0", type=int, default=700)
    ap.add_argument("--real", default=None, help="real observation tables, comma list: collect CSVs or law.json "
                    "files (their fitting table); one size is used")
    ap.add_argument("--dump", default=None, help="append each world's per-seed CV scores here (JSON lines)")
    ap.add_argument("--replay", default=None, help="no fitting: replay the rules on a --dump file (comma list)")
    ap.add_argument("--regret-from", default=None, help="bench/law_uniform.py --out file of the same worlds: "
                    "adds each rule's decision regret (median / mean, seed-0 choice)")
    ap.add_argument("--fill", default=None, help="a dump without pred_H (older bench): refit each world's laws (no "
                    "CV), add the fresh mixtures' predictions, append to --dump")
    ap.add_argument("--temperature", type=float, default=ENSEMBLE_TEMPERATURE, help="the ensemble's (replay)")
    args = ap.parse_args()
    t0 = time.time()
    TEMPERATURE[0] = args.temperature
    lines = ["| setting | rule | stable under fold reseeding | held-out mean-loss Spearman of the choice | worst of the "
             "candidates | decision regret median / mean | chosen (seed 0) |", "|---|---|---|---|---|---|---|"]
    if args.fill:  # older dumps without the fresh mixtures' predictions: refit (no CV) and add them
        for old in read_rows(args.fill):
            row = world_fits(old["k"], old["n"], old["seed"], cv_row=old)[3]
            with open(args.dump, "a") as g:
                g.write(json.dumps(row) + "\n")
            print(f"filled world {old['seed']} k={old['k']} n={old['n']}", file=sys.stderr)
        return
    if args.replay:
        rows = read_rows(args.replay)
        if args.regret_from:
            join_regret(rows, args.regret_from)
        groups: dict = {}
        for r in rows:
            groups.setdefault((r["k"], r["n"]), []).append(r)
        for (k, n), rs in sorted(groups.items()):
            for r in rs:
                replay(r)
                _print_world(r)
            lines += summary(rs, f"{k} domains, {n} runs, {len(rs)} worlds")
        print("\n".join(lines))
        return
    runs = [int(x) for x in args.runs.split(",")]
    for k in (int(x) for x in args.domains.split(",")):
        for n in runs:
            rows = []
            for s in tqdm(range(args.worlds), desc=f"{k} domains, {n} runs", file=sys.stderr):
                rows.append(world_row(k, n, args.seed0 + s))
                _print_world(rows[-1])
                if args.dump:
                    with open(args.dump, "a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
            lines += summary(rows, f"{k} domains, {n} runs, {args.worlds} worlds") if rows else []
    for path in (args.real.split(",") if args.real else []):
        lines += real_table(path, args.dump)
    print("\n".join(lines))
    print(f"\n{time.time() - t0:.0f} s")


def real_table(path: str, dump: str | None) -> list[str]:
    """Every rule's 3 choices on a real table (a collect CSV, or a law.json's fitting table); one size's runs."""
    if path.endswith(".json"):
        from mixtrain.laws import load_law

        t = load_law(path).table
    else:
        t = read_table(path)
    if t.num_params is not None:
        sizes, counts = np.unique(t.num_params, return_counts=True)
        t = t.subset(t.num_params == sizes[np.argmax(counts)])
    fitted, cvs = cv_all(t)
    row = {"k": len(t.train_domains), "n": t.n_runs, "seed": path, "cv": _slim(cvs), "rho": {},
           "n_params": {name: law.n_params() for name, law in fitted.items()}}
    replay(row)
    if dump:
        with open(dump + ".real", "a") as f:
            f.write(json.dumps(row) + "\n")
    lines = [f"| real table {path} ({t.n_runs} runs) | {rule} | choices {row[rule]} | | | | |" for rule in RULES]
    w = "; ".join(", ".join(f"{n} {v:.2f}" for n, v in ws.items()) for ws in row["ens_w"])
    return lines + [f"| same real table | ensemble weights per seed triple | {w} | | | | |"]


def _print_world(r: dict) -> None:
    print(f"world {r['seed']} k={r['k']} n={r['n']}: " + " ".join(f"{rule} {r[rule]}" for rule in RULES) + " rho " +
          " ".join(f"{a}={b:.3f}" for a, b in sorted(r["rho"].items())), file=sys.stderr)


if __name__ == "__main__":
    main()
