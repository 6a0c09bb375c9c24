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


def auto_check_law(law: MixingLaw) -> tuple[str, str | None]:
    """The "auto" check law for `law` and a note: ridge for every other law; for ridge, lightgbm from
    `CHECK_TREES_MIN_RUNS` runs on (when the extra is installed), else bimix (laws/optim/sampled.py docstring, step 5)."""
    if law.name != "ridge":
        return "ridge", None
    n_runs = len(law.table.run_names)
    if n_runs < CHECK_TREES_MIN_RUNS:
        return "bimix", None
    try:
        import lightgbm  # noqa: F401  (the optional extra mixtrain[surrogate])
    except ImportError:
        return "bimix", (f"{n_runs} runs: lightgbm would check ridge, but the extra is not installed "
                         "(pip install 'mixtrain[surrogate]'); bimix checks instead")
    return "lightgbm", None


def second_opinion(law: MixingLaw, check_law: str | None, B: int, rng: np.random.Generator):
    """((check law, its B refits) or None, a note or None): a law of another family than `law` (`auto_check_law`)."""
    if check_law is None or check_law == "none" or B == 0:
        return None, "none (check_law=None)"
    name, note = auto_check_law(law) if check_law == "auto" else (check_law, None)
    try:
        check = make_law(name).fit(law.table, cv_folds=0)
        return (check, bootstrap_laws(check, B, rng)), note
    except ValueError as e:  # too few runs for the check law's parameters: this law decides alone
        return None, f"{name} could not be fitted ({e}); {law.name} decides alone"
