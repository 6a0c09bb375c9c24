"""The observation table: read, validate and slice the input of the mixing laws.

Place in the flow: training runs write `RUN/metrics.csv` -> `mixtrain.fitting.collect` writes the table
(CSV, contract in docs/formats.md) -> **laws/table.py** reads and validates it -> `mixtrain.laws`
fit on it; `mixtrain.fitting.fit` is the CLI around both.

Columns: `run`, `step` (> 0: the laws use log s), optional `tokens` (training tokens seen at that
step: the num_tokens D of the law across model sizes), optional `num_params` (the run's
non-embedding parameter count N; `mixtrain.fitting.collect` writes both), `w/<domain>` for every
training domain (each row >= 0, sums to 1 within 1e-6), `loss/<domain>` for every evaluation
domain (finite, > 0: the laws fit in log space). Any other column is an error, so that a typo
(`los/code`) is not silently ignored. Every error names the column and the row (CSV line, run,
step) and what to change. Pure: stdlib csv + numpy.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mixtrain.weights import normalize_weights

WEIGHT_PREFIX = "w/"
LOSS_PREFIX = "loss/"
SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ObservationTable:
    """n observations of k training-domain weights and m evaluation-domain losses.

    Row order is the file's. `runs[i]` names the run of row i; rows of one run share a mixture
    unless an online strategy changed it.
    """

    train_domains: tuple[str, ...]
    eval_domains: tuple[str, ...]
    runs: np.ndarray  # [n] str
    steps: np.ndarray  # [n] float64, > 0
    W: np.ndarray  # [n, k] weights, rows sum to 1
    L: np.ndarray  # [n, m] losses, > 0
    tokens: np.ndarray | None = None  # [n] float64 or None: training tokens seen at the step (num_tokens)
    source: str = "<memory>"
    num_params: np.ndarray | None = None  # [n] float64 or None: the run's non-embedding parameter count

    @property
    def n_rows(self) -> int:
        return int(self.W.shape[0])

    @property
    def run_names(self) -> list[str]:
        """Distinct runs in order of first appearance."""
        return list(dict.fromkeys(self.runs.tolist()))

    @property
    def n_runs(self) -> int:
        return len(self.run_names)

    def distinct_steps(self) -> np.ndarray:
        return np.unique(self.steps)

    def n_mixtures(self) -> int:
        """Number of distinct weight vectors (rounded to 1e-9)."""
        return int(np.unique(np.round(self.W, 9), axis=0).shape[0])

    def final_rows(self) -> np.ndarray:
        """Index of the last-step row of every run, in `run_names` order."""
        last: dict[str, int] = {}
        for i, (r, s) in enumerate(zip(self.runs.tolist(), self.steps.tolist())):
            if r not in last or s >= self.steps[last[r]]:
                last[r] = i
        return np.array([last[r] for r in self.run_names], dtype=np.int64)

    def rows_per_run(self) -> np.ndarray:
        """[n] number of rows of each row's run (for weighting every run equally)."""
        names, inverse, counts = np.unique(self.runs, return_inverse=True, return_counts=True)
        return counts[inverse].astype(np.float64)

    def subset(self, mask: np.ndarray) -> ObservationTable:
        mask = np.asarray(mask)
        return ObservationTable(
            self.train_domains,
            self.eval_domains,
            self.runs[mask],
            self.steps[mask],
            self.W[mask],
            self.L[mask],
            None if self.tokens is None else self.tokens[mask],
            self.source,
            None if self.num_params is None else self.num_params[mask],
        )

    def require(self, *, law: str, min_runs: int = 1, min_mixtures: int = 1, why: str = "") -> None:
        """Raise ValueError if the table has too few runs / distinct mixtures for `law`."""
        if self.n_runs < min_runs:
            raise ValueError(
                f"{law}: the table {self.source} has {self.n_runs} run(s); this law needs at least "
                f"{min_runs}{' (' + why + ')' if why else ''}. Add runs or choose another law."
            )
        if self.n_mixtures() < min_mixtures:
            raise ValueError(
                f"{law}: the table {self.source} has {self.n_mixtures()} distinct mixture(s); this law "
                f"needs at least {min_mixtures}{' (' + why + ')' if why else ''}. Add runs with other "
                "mixtures or choose another law."
            )


def make_table(
    train_domains: Sequence[str],
    eval_domains: Sequence[str],
    runs: Sequence[str],
    steps,
    W,
    L,
    tokens=None,
    *,
    source: str = "<memory>",
    line_offset: int | None = None,
    num_params=None,
) -> ObservationTable:
    """Validate arrays and build a table. `line_offset`: CSV line of row 0, for messages."""
    train_domains, eval_domains = tuple(train_domains), tuple(eval_domains)
    _check_domains(source, train_domains, eval_domains)
    runs_arr = np.asarray([str(r) for r in runs], dtype=object)
    steps_arr = np.asarray(steps, dtype=np.float64).reshape(-1)
    W_arr = np.asarray(W, dtype=np.float64)
    L_arr = np.asarray(L, dtype=np.float64)
    n = runs_arr.shape[0]
    if n == 0:
        raise ValueError(f"{source}: the table has no rows")
    if W_arr.shape != (n, len(train_domains)) or L_arr.shape != (n, len(eval_domains)) or steps_arr.shape != (n,):
        raise ValueError(
            f"{source}: shapes disagree: {n} runs, steps {steps_arr.shape}, W {W_arr.shape} for "
            f"{len(train_domains)} training domains, L {L_arr.shape} for {len(eval_domains)} eval domains"
        )

    def where(i: int) -> str:
        line = f"line {line_offset + i}, " if line_offset is not None else f"row {i}, "
        return f"{source} {line}run {runs_arr[i]!r} step {steps_arr[i]:g}"

    _check_runs_and_steps(where, runs_arr, steps_arr)
    _check_weights(where, W_arr, train_domains)
    _check_losses(where, L_arr, eval_domains)
    _check_no_duplicates(where, runs_arr, steps_arr)
    tok = _tokens_column(where, tokens)
    npar = _num_params_column(where, source, num_params, runs_arr)
    return ObservationTable(train_domains, eval_domains, runs_arr, steps_arr, W_arr, L_arr, tok, source, npar)


def _check_domains(source: str, train_domains: tuple[str, ...], eval_domains: tuple[str, ...]) -> None:
    for what, names in (("training", train_domains), ("evaluation", eval_domains)):
        if not names:
            prefix = WEIGHT_PREFIX if what == "training" else LOSS_PREFIX
            raise ValueError(f"{source}: no {what} domains: need at least one '{prefix}<domain>' column")
        dup = sorted({d for d in names if names.count(d) > 1})
        if dup:
            raise ValueError(f"{source}: duplicate {what} domain(s) {dup}")


def _check_runs_and_steps(where: Callable[[int], str], runs_arr: np.ndarray, steps_arr: np.ndarray) -> None:
    for i in range(runs_arr.shape[0]):
        if not runs_arr[i]:
            raise ValueError(f"{where(i)}: empty 'run' cell")
        if not math.isfinite(steps_arr[i]) or steps_arr[i] <= 0:
            raise ValueError(
                f"{where(i)}: column 'step' is {steps_arr[i]} (must be finite and > 0: the laws use "
                "log(step); drop step-0 rows, mixtrain.fitting.collect does)"
            )


def _check_weights(where: Callable[[int], str], W_arr: np.ndarray, train_domains: tuple[str, ...]) -> None:
    bad = np.argwhere(~np.isfinite(W_arr))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"{where(i)}: column '{WEIGHT_PREFIX}{train_domains[j]}' is {W_arr[i, j]} (must be finite)")
    bad = np.argwhere(W_arr < 0)
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"{where(i)}: column '{WEIGHT_PREFIX}{train_domains[j]}' is negative ({W_arr[i, j]})")
    sums = W_arr.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{where(i)}: the '{WEIGHT_PREFIX}*' columns sum to {float(sums[i]):.10g}, not 1 (tolerance "
            f"{SUM_TOLERANCE}); write normalised weights (mixtrain.weights.normalize_weights)"
        )


def _check_losses(where: Callable[[int], str], L_arr: np.ndarray, eval_domains: tuple[str, ...]) -> None:
    bad = np.argwhere(~np.isfinite(L_arr))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"{where(i)}: column '{LOSS_PREFIX}{eval_domains[j]}' is {L_arr[i, j]} (must be finite)")
    bad = np.argwhere(L_arr <= 0)
    if bad.size:
        i, j = bad[0]
        raise ValueError(
            f"{where(i)}: column '{LOSS_PREFIX}{eval_domains[j]}' is {L_arr[i, j]} (must be > 0: laws fit log loss)"
        )


def _check_no_duplicates(where: Callable[[int], str], runs_arr: np.ndarray, steps_arr: np.ndarray) -> None:
    seen: dict[tuple[str, float], int] = {}
    for i, key in enumerate(zip(runs_arr.tolist(), steps_arr.tolist())):
        if key in seen:
            raise ValueError(f"{where(i)}: duplicate observation (same run and step as {where(seen[key])})")
        seen[key] = i


def _tokens_column(where: Callable[[int], str], tokens) -> np.ndarray | None:
    if tokens is None:
        return None
    tok = np.asarray(tokens, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(tok) | (tok < 0))
    if bad.size:
        raise ValueError(f"{where(bad[0])}: column 'tokens' is {tok[bad[0]]} (must be finite and >= 0)")
    return tok


def _num_params_column(where: Callable[[int], str], source: str, num_params, runs_arr: np.ndarray) -> np.ndarray | None:
    if num_params is None:
        return None
    n = runs_arr.shape[0]
    npar = np.asarray(num_params, dtype=np.float64).reshape(-1)
    if npar.shape != (n,):
        raise ValueError(f"{source}: {npar.shape[0]} num_params values for {n} rows")
    bad = np.flatnonzero(~np.isfinite(npar) | (npar <= 0))
    if bad.size:
        raise ValueError(f"{where(bad[0])}: column 'num_params' is {npar[bad[0]]} (must be finite and > 0)")
    for r in set(runs_arr.tolist()):
        if np.unique(npar[runs_arr == r]).size > 1:
            raise ValueError(f"{source}: run {r!r} has several num_params values; one run is one model")
    return npar


def _float(cell: str, column: str, where: str) -> float:
    if cell is None or cell.strip() == "":
        raise ValueError(f"{where}: empty cell in column {column!r}")
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} is not a number: {cell!r}") from None


def _read_csv(path: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file with a header line."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def read_table(path: str) -> ObservationTable:
    """Read and validate an observation table CSV (see module docstring for the errors)."""
    header, rows = _read_csv(path)
    if not header:
        raise ValueError(f"{path}: empty file, expected a header with run, step, w/<domain>, loss/<domain>")
    for col in ("run", "step"):
        if col not in header:
            raise ValueError(f"{path}: missing column {col!r} (header: {header})")
    train = [c[len(WEIGHT_PREFIX):] for c in header if c.startswith(WEIGHT_PREFIX)]
    evals = [c[len(LOSS_PREFIX):] for c in header if c.startswith(LOSS_PREFIX)]
    if not train:
        raise ValueError(f"{path}: missing columns: no '{WEIGHT_PREFIX}<domain>' weight column (header: {header})")
    if not evals:
        raise ValueError(f"{path}: missing columns: no '{LOSS_PREFIX}<domain>' loss column (header: {header})")
    known = {"run", "step", "tokens", "num_params"} | {WEIGHT_PREFIX + d for d in train} | {LOSS_PREFIX + d for d in evals}
    unknown = [c for c in header if c not in known]
    if unknown:
        raise ValueError(
            f"{path}: unknown column(s) {unknown}; allowed: run, step, tokens, num_params, {WEIGHT_PREFIX}<domain>, "
            f"{LOSS_PREFIX}<domain>"
        )
    has_tokens, has_params = "tokens" in header, "num_params" in header
    runs, steps, W, L, tokens, params = [], [], [], [], [], []
    for i, row in enumerate(rows):
        where = f"{path} line {i + 2}, run {row.get('run')!r} step {row.get('step')!r}"
        if None in row:
            raise ValueError(f"{where}: more cells than header columns")
        runs.append((row["run"] or "").strip())
        steps.append(_float(row["step"], "step", where))
        W.append([_float(row[WEIGHT_PREFIX + d], WEIGHT_PREFIX + d, where) for d in train])
        L.append([_float(row[LOSS_PREFIX + d], LOSS_PREFIX + d, where) for d in evals])
        if has_tokens:
            tokens.append(_float(row["tokens"], "tokens", where))
        if has_params:
            params.append(_float(row["num_params"], "num_params", where))
    return make_table(
        train, evals, runs, steps, np.array(W).reshape(len(rows), len(train)),
        np.array(L).reshape(len(rows), len(evals)), tokens if has_tokens else None,
        source=path, line_offset=2, num_params=params if has_params else None,
    )


def write_table(table: ObservationTable, path: str) -> None:
    """Write `table` as CSV in the column order run, step, [tokens], [num_params], w/*, loss/*."""
    header = ["run", "step"] + (["tokens"] if table.tokens is not None else [])
    header += ["num_params"] if table.num_params is not None else []
    header += [WEIGHT_PREFIX + d for d in table.train_domains] + [LOSS_PREFIX + d for d in table.eval_domains]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(table.n_rows):
            step = table.steps[i]
            row = [table.runs[i], int(step) if float(step).is_integer() else repr(float(step))]
            if table.tokens is not None:
                t = table.tokens[i]
                row.append(int(t) if float(t).is_integer() else repr(float(t)))
            if table.num_params is not None:
                row.append(int(table.num_params[i]))
            row += [repr(float(x)) for x in table.W[i]] + [repr(float(x)) for x in table.L[i]]
            w.writerow(row)


def read_mixtures(path: str, train_domains: Sequence[str]) -> tuple[list[str], list[dict[str, str]], np.ndarray, np.ndarray | None]:
    """Read a mixture file for prediction: `w/<domain>` for every domain in `train_domains`, optional `step`.

    Each row is validated and normalised with `normalize_weights` (so 50,30,20 is read as
    0.5,0.3,0.2). Returns (header, raw rows, W [n, k], steps [n] or None).
    """
    header, rows = _read_csv(path)
    if not rows:
        raise ValueError(f"{path}: no rows (expected w/<domain> columns and an optional step column)")
    given = [c[len(WEIGHT_PREFIX):] for c in header if c.startswith(WEIGHT_PREFIX)]
    missing = [d for d in train_domains if d not in given]
    extra = [d for d in given if d not in train_domains]
    if missing or extra:
        raise ValueError(
            f"{path}: the w/ columns must be exactly the law's training domains {list(train_domains)}; "
            f"missing {[WEIGHT_PREFIX + d for d in missing]}, unknown {[WEIGHT_PREFIX + d for d in extra]}"
        )
    W = np.zeros((len(rows), len(train_domains)))
    steps = np.zeros(len(rows)) if "step" in header else None
    for i, row in enumerate(rows):
        where = f"{path} line {i + 2}"
        raw = {d: _float(row[WEIGHT_PREFIX + d], WEIGHT_PREFIX + d, where) for d in train_domains}
        W[i] = list(normalize_weights(raw, train_domains, what=where).values())
        if steps is not None:
            steps[i] = _float(row["step"], "step", where)
            if steps[i] <= 0:
                raise ValueError(f"{where}: column 'step' is {steps[i]} (must be > 0)")
    return header, rows, W, steps


def parse_domain_values(text: str | None, what: str) -> dict[str, float] | float | None:
    """Parse CLI values 'code=2,prose=1' -> dict, or a bare number '0.5' -> float, or None."""
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if "=" not in text:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{what}: expected a number or domain=value,... got {text!r}") from None
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"{what}: {part!r} is not domain=value (in {text!r})")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"{what}: value of {k.strip()!r} is not a number: {v!r}") from None
    return out


def as_domain_map(value: float | Mapping[str, float] | None, domains: Sequence[str], default: float, what: str) -> dict[str, float]:
    """Expand None / a scalar / a partial mapping to a full {domain: value} (unnamed -> default)."""
    if value is None:
        return {d: default for d in domains}
    if isinstance(value, Mapping):
        unknown = [d for d in value if d not in domains]
        if unknown:
            raise ValueError(f"{what}: unknown domain(s) {unknown}; domains are {list(domains)}")
        out = {d: float(value.get(d, default)) for d in domains}
    else:
        out = {d: float(value) for d in domains}
    for d, v in out.items():
        if not math.isfinite(v):
            raise ValueError(f"{what}: value of domain {d!r} is {v} (must be finite)")
    return out
