"""What every mixing law shares: the interface, the fit (with the refusal of a fit that has no more
runs than fitted mixture parameters), the fit report and JSON save/load (with the fitting table, which
the bootstrap of laws/optim/sampled.py refits on).

Place in the flow: observation table (laws/table.py) -> **a law** (this interface, one subclass per law
module, registered by name in laws/law_registry.py) -> fit / predict / report / law.json -> the optimisers
above it (laws/optim/: sampled.py the default, slsqp.py inside laws/support.py's box and trust region).
This module imports nothing from laws/optim/: the optimisers call the law, never the other way round.

A law subclass implements `_fit(table, notes)` (sets `self.params`, a dict of numpy arrays),
`_predict(W, steps)`, `n_params()`, `_check(table)` (too few runs etc. -> ValueError), and
optionally `_predict_grad(r, step)` (analytic gradient for the optimiser) or `_optimize(...)`
(a closed-form box optimum over floors/caps, given a seeded `rng`; the default None means "no closed
form" and laws/optim/slsqp.py runs its generic multi-start SLSQP). Everything else lives here. Pure:
numpy + scipy.

Report (`law.report`, also in the JSON): per evaluation domain in-sample R^2 and mean relative
error (MRE) over all rows, and cross-validation (laws/cross_validation.py): group k-fold over runs (default
5 folds, runs assigned to folds by a seeded permutation); each fold refits the law on the other
runs and predicts the held-out runs' final-step losses; pooled out-of-fold predictions give per
domain Spearman and MRE (next to the own-weight baseline) and the mean-loss Spearman and regret.
The JSON also keeps the fitting table's distinct mixtures (`observed_mixtures`): both optimisers
keep the optimum inside their support by default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import least_squares

from mixtrain.laws.cross_validation import cross_validate, spearman
from mixtrain.laws.cross_validation import nanmean as _nanmean
from mixtrain.laws.support import distinct_mixtures
from mixtrain.laws.table import ObservationTable, as_domain_map, make_table
from mixtrain.weights import normalize_weights

__all__ = ["MixingLaw", "cross_validate", "spearman"]

FORMAT = 1


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


class MixingLaw:
    """Base class: fit(table) -> self; predict(W, steps) -> losses; to_json / from_json.
    Optimise with laws/optim/ (`propose(law, ...)`, `solve(law, ...)`)."""

    name: ClassVar[str] = "base"
    formula: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        unknown = [k for k in config if k not in self.defaults]
        if unknown:
            raise ValueError(f"{self.name}: unknown option(s) {unknown}; options are {sorted(self.defaults)}")
        self.config: dict[str, Any] = {**self.defaults, **config}
        self.params: dict[str, np.ndarray] | None = None
        self.train_domains: tuple[str, ...] = ()
        self.eval_domains: tuple[str, ...] = ()
        self.step_range: tuple[float, float] = (float("nan"), float("nan"))
        self.report: dict[str, Any] = {}
        self.observed_mixtures: np.ndarray | None = None  # [n_mix, k] distinct mixtures of the fitting table
        self.observed_runs: list[str] = []  # a run of each
        self.table: ObservationTable | None = None  # the fitting table (saved in the JSON: bootstrap refits need it)

    # ---- to implement ------------------------------------------------------------------
    def _check(self, table: ObservationTable) -> None:
        """Raise ValueError if `table` cannot identify this law (too few runs, ...)."""

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        raise NotImplementedError

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def n_params(self) -> int:
        raise NotImplementedError

    def mixture_params(self) -> int:
        """Parameters per eval domain that only differences between runs identify (the mixture part;
        step parameters are identified within runs). A fit needs more runs than this (`fit` refuses
        otherwise); regularised laws return their effective degrees of freedom after the fit."""
        return max(1, self.n_params() // max(1, len(self.eval_domains)))

    def _predict_grad(self, r: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        """(L [m], dL/dr [m, k]) at one mixture; default: forward differences."""
        L0 = self._predict(r[None], np.array([step]))[0]
        h = 1e-7
        R = r[None] + h * np.eye(r.shape[0])
        J = (self._predict(R, np.full(r.shape[0], step)) - L0[None]).T / h
        return L0, J

    # ---- fit ---------------------------------------------------------------------------
    def fit(self, table: ObservationTable, *, cv_folds: int = 5, seed: int = 0,
            importance: Mapping[str, float] | None = None) -> MixingLaw:
        """Fit on `table`, store params and `report` (with cross-validation unless cv_folds=0).

        `importance` weights the eval domains in the CV's mean-loss ranking and regret (equal if None).
        """
        self._check(table)
        self.table = table
        self.train_domains, self.eval_domains = table.train_domains, table.eval_domains
        self.step_range = (float(table.steps.min()), float(table.steps.max()))
        # the data's support, for optimisation inside it (laws/support.py) and the JSON
        self.observed_mixtures, self.observed_runs = distinct_mixtures(table.W, table.runs)
        notes: list[str] = []
        self._fit(table, notes)
        for key, value in (self.params or {}).items():
            if not np.all(np.isfinite(np.asarray(value, dtype=float))):
                raise ValueError(f"{self.name}: fit produced non-finite parameter {key!r} = {value}; refusing it")
        need = int(math.ceil(self.mixture_params() - 1e-9))
        if table.n_runs <= need:
            raise ValueError(
                f"{self.name}: {table.n_runs} run(s) cannot identify {need} fitted mixture parameter(s) per eval "
                f"domain (a fit needs more runs than parameters, else it reproduces the data whatever the law): "
                f"need at least {need + 1} runs. Add proxy runs, or choose a law with fewer parameters.")
        pred = self._predict(table.W, table.steps)
        bad = np.argwhere(~np.isfinite(pred))
        if bad.size:
            d = self.eval_domains[bad[0][1]]
            raise ValueError(f"{self.name}: fitted law predicts non-finite loss for domain {d!r}; refusing the fit")
        domains = {}
        for j, d in enumerate(self.eval_domains):
            y, p = table.L[:, j], pred[:, j]
            ss_tot = float(np.sum((y - y.mean()) ** 2))
            r2 = 1.0 - float(np.sum((y - p) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
            domains[d] = {"r2": r2, "mre": float(np.mean(np.abs(p - y) / y))}
        self.report = {
            "law": self.name,
            "formula": self.formula,
            "n_runs": table.n_runs,
            "n_rows": table.n_rows,
            "n_mixtures": table.n_mixtures(),
            "n_params": self.n_params(),
            "notes": notes,
            "domains": domains,
            "mean_r2": _nanmean(v["r2"] for v in domains.values()),
            "mean_mre": _nanmean(v["mre"] for v in domains.values()),
        }
        if cv_folds:
            self.report["cv"] = cross_validate(self, table, folds=cv_folds, seed=seed,
                                               importance=self.importance_vector(importance))
        return self

    def _require_fitted(self) -> None:
        if self.params is None:
            raise ValueError(f"{self.name}: law is not fitted; call fit(table) or load it with mixtrain.laws.load_law")

    # ---- predict -----------------------------------------------------------------------
    def predict(self, weights, steps) -> np.ndarray:
        """Losses [n, m] (eval_domains order) for weights [n, k] (train_domains order) at steps [n]."""
        self._require_fitted()
        W = np.asarray(weights, dtype=np.float64)
        if W.ndim == 1:
            W = W[None]
        k = len(self.train_domains)
        if W.ndim != 2 or W.shape[1] != k:
            raise ValueError(f"{self.name}: weights must have shape [n, {k}] (domains {list(self.train_domains)}), got {W.shape}")
        if not np.all(np.isfinite(W)) or np.any(W < 0):
            raise ValueError(f"{self.name}: weights must be finite and >= 0")
        s = np.broadcast_to(np.asarray(steps, dtype=np.float64), (W.shape[0],)).copy()
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"{self.name}: steps must be finite and > 0, got {s}")
        return self._predict(W, s)

    # ---- what the optimisers (laws/optim/) ask of a law ------------------------------------
    def importance_vector(self, importance: Mapping[str, float] | None) -> np.ndarray:
        """Eval-domain importance weights; unnamed domains get 1.0; normalised to sum 1."""
        full = as_domain_map(importance, self.eval_domains, 1.0, "importance")
        return np.array(list(normalize_weights(full, self.eval_domains, what="importance").values()))

    def objective(self, r: np.ndarray, step: float, w: np.ndarray) -> float:
        return float(self._predict(np.asarray(r, float)[None], np.array([step]))[0] @ w)

    def _optimize(self, step: float, w: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  *, rng: np.random.Generator) -> np.ndarray | None:
        """Hook: the closed-form optimum in the box {lo <= r <= hi, sum r = 1}, or None for "no closed
        form" (the default): laws/optim/slsqp.py then runs its generic multi-start SLSQP."""
        return None

    # ---- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._require_fitted()
        from mixtrain import __version__

        return _jsonable({
            "format": FORMAT,
            "law": self.name,
            "formula": self.formula,
            "config": self.config,
            "train_domains": list(self.train_domains),
            "eval_domains": list(self.eval_domains),
            "step_range": list(self.step_range),
            "params": {k: np.asarray(v) for k, v in self.params.items()},
            "observed_mixtures": None if self.observed_mixtures is None else np.asarray(self.observed_mixtures),
            "observed_runs": list(self.observed_runs),
            "report": self.report,
            "table": None if self.table is None else table_to_dict(self.table),
            **self._extra_json(),
            "mixtrain_version": __version__,
        })

    def to_json(self, path: str | None = None) -> dict[str, Any]:
        """The law as a JSON-able dict; also written to `path` if given."""
        d = self.to_dict()
        if path is not None:
            with open(path, "w") as f:
                json.dump(d, f, indent=1, allow_nan=False)
                f.write("\n")
        return d

    @staticmethod
    def read_json(source: str | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """(the saved dict, where it came from) for a path or an already-read dict; checks the format.

        Which class to build is the caller's: `mixtrain.laws.load_law` looks the 'law' key up in
        its registry (this module never imports the package that imports it)."""
        if isinstance(source, Mapping):
            d, where = dict(source), "<dict>"
        else:
            with open(source) as f:
                d, where = json.load(f), str(source)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{where}: not a mixtrain law file (format {got!r}, expected {FORMAT}); "
                             "write one with law.to_json(path) or `python -m mixtrain.fitting.fit --out law.json`")
        return d, where

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "<dict>") -> MixingLaw:
        """This law class rebuilt from `to_dict()` output (its 'law' key must name this class)."""
        if d.get("law") != cls.name:
            raise ValueError(f"{where}: holds law {d.get('law')!r}, not {cls.name!r}; "
                             "load it with mixtrain.laws.load_law (any law)")
        law = cls(**d.get("config", {}))
        law.train_domains, law.eval_domains = tuple(d["train_domains"]), tuple(d["eval_domains"])
        law.step_range = tuple(d.get("step_range", (float("nan"), float("nan"))))
        law.params = {k: np.asarray(v, dtype=float) for k, v in d["params"].items()}
        law.report = d.get("report", {})
        if d.get("observed_mixtures") is not None:
            law.observed_mixtures = np.asarray(d["observed_mixtures"], dtype=float).reshape(-1, len(law.train_domains))
            law.observed_runs = [str(r) for r in d.get("observed_runs", [])] or [f"#{i}" for i in range(len(law.observed_mixtures))]
        if d.get("table") is not None:
            law.table = table_from_dict(d["table"], law.train_domains, law.eval_domains, where)
        law._load_extra(d, where)
        law._after_load()
        return law

    @classmethod
    def from_json(cls, source: str | Mapping[str, Any]) -> MixingLaw:
        """Load a law of this class saved by `to_json` (a path or the dict). For any law:
        `mixtrain.laws.load_law`."""
        d, where = cls.read_json(source)
        return cls.from_dict(d, where)

    def _extra_json(self) -> dict[str, Any]:
        """Hook: non-array state for the JSON (e.g. serialised trees), merged into `to_dict()`."""
        return {}

    def _load_extra(self, d: Mapping[str, Any], where: str) -> None:
        """Hook: read what `_extra_json` wrote."""

    def _after_load(self) -> None:
        """Hook: rebuild derived fields from params after from_json."""


def table_to_dict(t: ObservationTable) -> dict[str, Any]:
    # the optional columns too: --tokens needs tokens/step, the scaling law's bootstrap refits num_params
    return {"runs": [str(r) for r in t.runs.tolist()], "steps": t.steps, "W": t.W, "L": t.L,
            "tokens": t.tokens, "num_params": t.num_params}


def table_from_dict(d: Mapping[str, Any], train_domains, eval_domains, where: str) -> ObservationTable:
    return make_table(train_domains, eval_domains, d["runs"], d["steps"], np.asarray(d["W"], float),
                      np.asarray(d["L"], float), d.get("tokens"), source=f"{where} (fitting table)",
                      num_params=d.get("num_params"))


def own_indices(law: str, train_domains, eval_domains) -> np.ndarray:
    """Index of each eval domain among the training domains (for own-weight laws); raise if absent."""
    missing = [d for d in eval_domains if d not in train_domains]
    if missing:
        raise ValueError(
            f"{law}: eval domain(s) {missing} are not training domains, and this law predicts a domain's "
            f"loss from its own training weight. Drop those loss/ columns, or use law 'exp' or "
            f"'loglinear' (they relate every eval domain to all weights). Training domains: {list(train_domains)}"
        )
    return np.array([list(train_domains).index(d) for d in eval_domains], dtype=np.int64)


def multistart_least_squares(resid, jac, starts, lo, hi, *, probe_nfev: int = 25, max_nfev: int = 1000):
    """least_squares from every start for `probe_nfev` evaluations, then from the best to convergence.

    Returns the scipy result, or None if no start gave finite parameters and cost.
    """
    def run(p0, nfev):
        try:
            res = least_squares(resid, np.clip(p0, lo, hi), jac=jac, bounds=(lo, hi), method="trf",
                                x_scale="jac", max_nfev=nfev)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return None
        return res if np.all(np.isfinite(res.x)) and np.isfinite(res.cost) else None

    probes = [r for r in (run(p0, probe_nfev) for p0 in starts) if r is not None]
    if not probes:
        return None
    best = min(probes, key=lambda r: r.cost)
    if best.status != 0:  # converged within the probe budget
        return best
    final = run(best.x, max_nfev)
    return best if final is None or final.cost > best.cost else final


def run_weights(table: ObservationTable) -> np.ndarray:
    """[n] row weights 1/sqrt(rows of its run): least squares counts every run once, not every row."""
    return 1.0 / np.sqrt(table.rows_per_run())


def step_mode(law: str, table: ObservationTable) -> str:
    """'single' (one distinct step: fit the mixture part only) or 'full' (>= 3 steps); 2 steps -> error."""
    n = table.distinct_steps().shape[0]
    if n == 1:
        return "single"
    if n == 2:
        raise ValueError(
            f"{law}: the table has 2 distinct steps, which cannot identify the 3 step parameters "
            "(B, beta, C). Give >= 3 steps per run, or a single step (mixture-only fit)."
        )
    return "full"
