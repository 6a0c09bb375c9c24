"""Refits for the sampled optimiser: the law refitted on bootstrap resamples of its runs, and the check
law of another family whose refits judge the step away from uniform too (laws/optim/sampled.py steps 2 and 5).

Place in the flow: fitted law (+ its table) -> **bootstrap refits** -> laws/optim/scoring.py (step 2) and
laws/optim/decision.py (step 5) of `propose`. Builds the check law by name from laws/law_registry.py.
Pure: numpy (+ the laws' own fits).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mixtrain.laws.law_registry import make_law

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw

CHECK_TREES_MIN_RUNS = 32  # from this many runs on, lightgbm (not bimix) checks ridge (BENCHMARKS.md)


def bootstrap_laws(law: MixingLaw, B: int, rng: np.random.Generator) -> list[MixingLaw]:
    """B refits of `law` on resamples of its table's runs (copies renamed apart); refused resamples redrawn."""
    table = law.table
    names = np.array(table.run_names, dtype=object)
    rows = {r: np.flatnonzero(table.runs == r) for r in names}
    out, tries = [], 0
    while len(out) < B and tries < 3 * B:
        tries += 1
        pick = rng.integers(0, len(names), len(names))
        idx = np.concatenate([rows[names[i]] for i in pick])
        runs = np.concatenate([[f"{names[i]}#{c}"] * len(rows[names[i]]) for c, i in enumerate(pick)]).astype(object)
        # subset() keeps the optional columns (tokens, num_params: the scaling law refits on them)
        t = replace(table.subset(idx), runs=runs, source=f"{table.source} (bootstrap)")
        try:
            out.append(type(law)(**law.config).fit(t, cv_folds=0))
        except ValueError:
            continue
    if len(out) < max(2, B // 2):
        raise ValueError(f"{law.name}: only {len(out)} of {tries} bootstrap resamples of the runs could be fitted; "
                         "add runs, or pass bootstrap=0 (--bootstrap 0) for no interval")
    return out


def check_law_names(text: str) -> str:
    """`--check-law`'s value: "auto", "none", or law names joined by "+" (argparse `type`: a bad name is a usage
    error that lists the laws)."""
    from argparse import ArgumentTypeError

    from mixtrain.laws.law_registry import LAWS

    if text in ("auto", "none"):
        return text
    bad = [one for one in text.split("+") if one not in LAWS or one == "ensemble"]
    if bad:
        raise ArgumentTypeError(f"{bad[0]!r} is not a law; give auto, none, or one or more of "
                                f"{', '.join(n for n in sorted(LAWS) if n != 'ensemble')} joined by '+' (ridge+bimix)")
    return text


def auto_check_law(law: MixingLaw) -> tuple[str, str | None]:
    """The "auto" check laws for `law` ("a+b") and a note: two laws of other families (laws/optim/sampled.py
    docstring, step 5). ridge+bimix (a cross-domain surrogate and a separable law) for every other law; bimix is
    checked by ridge+exp; ridge by bimix+exp, and from `CHECK_TREES_MIN_RUNS` runs on by lightgbm+exp (when the
    extra is installed)."""
    if law.name == "bimix":
        return "ridge+exp", None
    if law.name != "ridge":
        return "ridge+bimix", None
    n_runs = len(law.table.run_names)
    if n_runs < CHECK_TREES_MIN_RUNS:
        return "bimix+exp", None
    try:
        import lightgbm  # noqa: F401  (the optional extra mixtrain[surrogate])
    except ImportError:
        return "bimix+exp", (f"{n_runs} runs: lightgbm would check ridge, but the extra is not installed "
                             "(pip install 'mixtrain[surrogate]'); bimix checks instead")
    return "lightgbm+exp", None


def former_check_law(law: MixingLaw) -> str:
    """The one check law of step 5 before 2026-12-08 (with `risk_pooling="pooled"`): ridge for every other law; for
    ridge, bimix below `CHECK_TREES_MIN_RUNS` runs and lightgbm from there on. The benches' paired baseline
    (bench/law_uniform.py --former-rule, bench/optimiser.py */sampled-former)."""
    if law.name != "ridge":
        return "ridge"
    return "lightgbm" if len(law.table.run_names) >= CHECK_TREES_MIN_RUNS else "bimix"


def second_opinion(law: MixingLaw, check_law: str | None, B: int, rng: np.random.Generator):
    """([(check law, its B refits), ...] or None, a note or None): laws of other families than `law`
    (`auto_check_law`; "a+b" names several, each refitted B times). A check law that cannot be fitted on these
    runs is left out with a note; with none left, `law` decides alone."""
    if check_law is None or check_law == "none" or B == 0:
        return None, "none (check_law=None)"
    name, note = auto_check_law(law) if check_law == "auto" else (check_law, None)
    names = [one for one in dict.fromkeys(name.split("+")) if one and one != law.name]  # a law never checks itself
    checks, notes = [], [note] if note else []
    for one in names:
        try:
            check = make_law(one).fit(law.table, cv_folds=0)
            checks.append((check, bootstrap_laws(check, B, rng)))
        except ValueError as e:  # too few runs for the check law's parameters: left out, said in the report
            notes.append(f"{one} could not be fitted ({e})")
    if not checks:
        notes.append(f"{law.name} decides alone")
    return checks or None, "; ".join(notes)
