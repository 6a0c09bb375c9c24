"""Online mixing strategies from the literature: ADO, ODM and DoReMi (single run, online variant).

Place in the flow: like strategies.py, between the prepared data and the sampler:
DataContext -> `compute(ctx)` (initial weights) -> sampler.py; then every
`refit_every_n_steps` optimizer steps refit.py hands a `MixHistory` (all-reduced, identical
on every rank) to `update(history)` on rank 0, broadcasts the result and this object's
`state_dict()`, applies the safety rules of the yaml's `refit:` block (floor, max_change,
smoothing) and schedules the weights in the sampler. One line per refit goes to
`RUN/refits.jsonl`, with `last_fit_report` under "fit".

Contract kept by every class here (see the interface in strategies.py):
- weights are always `dict[domain, float]`, in the order of `history.weights`;
- `update` is a pure function of (history, state): no randomness, no clock, so a resumed run
  (state from the checkpoint, records from the checkpoint) proposes exactly the same weights;
- all state is plain JSON-able Python (floats, ints, dicts of them);
- state is only changed at the end of a successful `update`; on NaN/inf inputs `update`
  returns None (keep the weights) and leaves the state alone. NaN in a per-domain training
  loss is legitimate on its own ("no sample of that domain since the last refit"): it only
  removes that domain's observation, never poisons the state;
- pure Python/numpy/scipy: no torch, no Lightning (they live in refit.py).

    ADO     Jiang et al. 2024, "Adaptive Data Optimization: dynamic sample selection with scaling laws"
    ODM     Albalak et al. 2023, "Efficient Online Data Mixing for Language Model Pre-Training" (EXP3)
    DoReMi  Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up Language Model Pretraining"
            (online: the run being trained is the proxy, a finished run is the reference)
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixtrain.collect import METRICS, _num
from mixtrain.strategies import DataContext, MixHistory, MixingStrategy, prior_weights
from mixtrain.weights import normalize_weights


def _finite_or_nan(values: Mapping[str, float] | None) -> bool:
    """True if every value is finite or NaN ("not sampled"); False on +-inf or a non-number."""
    if values is None:
        return True
    for v in values.values():
        try:
            f = float(v)
        except (TypeError, ValueError):
            return False
        if math.isinf(f):
            return False
    return True


def _tokens_ok(tokens: Mapping[str, float], domains: Sequence[str]) -> bool:
    try:
        return all(math.isfinite(float(tokens[d])) and float(tokens[d]) >= 0 for d in domains)
    except (KeyError, TypeError, ValueError):
        return False




# --------------------------------------------------------------------------------------- ADO


def fit_power_law(n: np.ndarray, loss: np.ndarray, *, alpha_max: float = 0.8,
                  huber_delta: float = 1e-3, grid: int = 25) -> dict[str, float]:
    """Fit L(n) = eps + beta * n^(-alpha) in log space; returns {"eps", "beta", "alpha", "cost"}.

    Log space, as ADO: log L = logsumexp(log beta - alpha log n, log eps), so the residuals are
    relative errors and the three parameters live on comparable scales. Huber loss with a
    small delta (ADO: 1e-3) because per-interval training losses have outliers. Bounds:
    0 <= alpha <= alpha_max (ADO: 0.8); eps below the smallest observed loss (the curve must
    still be able to go down to it). Start: for each alpha on a grid, (eps, beta) by linear
    least squares (the law is linear in them for a fixed alpha); the best one is refined.
    Short histories leave the law unidentified (a long flat valley towards eps -> 0): the grid
    start and an evaluation cap keep such fits to milliseconds instead of hundreds.
    """
    from scipy.optimize import least_squares

    n = np.asarray(n, dtype=float)
    loss = np.asarray(loss, dtype=float)
    logn, logl = np.log(n), np.log(loss)
    lo_eps, hi_eps = math.log(max(loss.min() * 1e-3, 1e-8)), math.log(loss.min())
    lower = np.array([lo_eps, -30.0, 0.0])
    upper = np.array([hi_eps, 40.0, alpha_max])

    def residuals(p):
        log_eps, log_beta, alpha = p
        return np.logaddexp(log_beta - alpha * logn, log_eps) - logl

    def jacobian(p):  # analytic: several times fewer evaluations than finite differences
        log_eps, log_beta, alpha = p
        power = log_beta - alpha * logn
        share = np.exp(power - np.logaddexp(power, log_eps))  # the power term's share of the prediction
        return np.stack([1.0 - share, share, -share * logn], axis=1)

    best_sse, x0 = math.inf, None
    for alpha in np.linspace(alpha_max / grid, alpha_max, grid):
        design = np.stack([np.ones_like(n), n ** -alpha], axis=1)
        (eps, beta), *_ = np.linalg.lstsq(design, loss, rcond=None)
        eps = min(max(eps, math.exp(lo_eps)), loss.min())
        p = np.clip([math.log(eps), math.log(max(beta, 1e-12)), alpha], lower, upper)
        sse = float(np.sum(residuals(p) ** 2))
        if sse < best_sse:
            best_sse, x0 = sse, p
    x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)  # least_squares wants a strictly feasible start
    res = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), loss="huber", f_scale=huber_delta,
                        max_nfev=100)
    log_eps, log_beta, alpha = (float(v) for v in res.x)
    return {"eps": math.exp(log_eps), "beta": math.exp(log_beta), "alpha": alpha, "cost": float(res.cost)}


class ADO(MixingStrategy):
    """Adaptive Data Optimization: sample each domain by how fast its fitted loss still falls.

    Per domain d, fit L_d(n) = eps_d + beta_d n^(-alpha_d) to the run's own history: one point
    per refit, (n = tokens of d seen at the middle of the interval, L = mean training loss of d
    over the interval). Then at the current n_d:
        speed_d  = -dL_d/dlog n = alpha_d beta_d n_d^(-alpha_d)      (speed="log", default)
                 = -dL_d/dn     = alpha_d beta_d n_d^(-alpha_d-1)    (speed="per_token", ADO's paper)
        rho_d   ∝ prior_d * credit_d^s * speed_d                     (prior: natural mixture^(1/T))
        pi      = gamma2 * rho + (1 - gamma2) * mean_rho             (ADO's policy smoothing)
        weights = floor + (1 - K floor) * pi                         (every domain keeps >= floor)
    Choices, documented because the paper updates every step and we update every refit:
    - credit_d = an EMA of the domain's realised token share between refits (ADO: an EMA of
      the policy, gamma1 = 0.1 per step). The realised share is what the sampler actually did
      after the safety rules and the weight-change delay, so it is the honest credit. The
      per-step gamma1 is compounded over the k steps of an interval: 1 - (1 - gamma1)^k.
    - mean_rho = ADO's step-weighted running average of rho since step 0 (initialised to the
      prior, weight 1/(t+1) per step, exact for rho constant between refits).
    - speed="log" (default) multiplies ADO's -dL/dn by n: the gain per *relative* increase of
      the domain's data. -dL/dn alone scales like share^(-1-alpha) and so pushes hard towards
      whichever domain was sampled least; per-token is kept for fidelity to the paper.
    Until every domain has `min_points` usable points the weights are kept (the prior).
    """

    name = "ado"
    SPEEDS = ("log", "per_token")

    def __init__(
        self,
        refit_every_n_steps: int = 50,
        prior: str = "natural",
        prior_temperature: float = 1.0,
        credit_smoothing: float = 0.1,
        credit_exponent: float = 0.5,
        policy_smoothing: float = 0.1,
        floor: float = 0.01,
        speed: str = "log",
        min_points: int = 3,
        ignore_initial_steps: int = 0,
        alpha_max: float = 0.8,
        huber_delta: float = 1e-3,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if speed not in self.SPEEDS:
            raise ValueError(f"mixing.speed must be one of {self.SPEEDS}, got {speed!r}")
        for key, v in (("credit_smoothing", credit_smoothing), ("policy_smoothing", policy_smoothing)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"mixing.{key} must be in [0, 1], got {v}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.prior, self.prior_temperature = prior, float(prior_temperature)
        self.credit_smoothing, self.credit_exponent = float(credit_smoothing), float(credit_exponent)
        self.policy_smoothing, self.floor, self.speed = float(policy_smoothing), float(floor), speed
        self.min_points, self.ignore_initial_steps = int(min_points), int(ignore_initial_steps)
        self.alpha_max, self.huber_delta = float(alpha_max), float(huber_delta)
        self._prior_weights: dict[str, float] | None = None
        self._credit: dict[str, float] | None = None
        self._mean_rho: dict[str, float] | None = None
        self._last_step = 0
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        self._prior_weights = prior_weights(self.prior, self.prior_temperature, ctx)
        return dict(self._prior_weights)

    def _points(self, history: MixHistory, d: str) -> tuple[list[float], list[float]]:
        """(n, loss) per interval for domain d: n at the interval's midpoint, skipping unsampled intervals."""
        ns, ls = [], []
        prev = 0.0
        for rec in [*history.records, {"step": history.step, "tokens_seen": history.tokens_seen,
                                       "train_loss": history.train_loss}]:
            n = float(rec["tokens_seen"][d])
            loss = float(rec["train_loss"].get(d, math.nan)) if rec.get("train_loss") else math.nan
            if rec["step"] > self.ignore_initial_steps and n > prev and math.isfinite(loss) and loss > 0:
                ns.append(0.5 * (prev + n))  # the loss is a mean over the interval: place it mid-interval
                ls.append(loss)
            prev = n
        return ns, ls

    def update(self, history: MixHistory) -> dict[str, float] | None:
        domains = list(history.weights)
        k_domains = len(domains)
        if not (_finite_or_nan(history.train_loss) and _tokens_ok(history.tokens_seen, domains)):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite inputs"}
            return None
        if all(math.isnan(float(history.train_loss[d])) for d in domains):
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        prior = normalize_weights(self._prior_weights or history.weights, domains, what="ado prior")
        credit = dict(self._credit or prior)
        steps = max(history.step - self._last_step, 1)

        # credit: EMA of the realised token share since the last refit
        before = history.records[-1]["tokens_seen"] if history.records else {d: 0 for d in domains}
        delta = {d: max(float(history.tokens_seen[d]) - float(before.get(d, 0)), 0.0) for d in domains}
        total = sum(delta.values())
        if total > 0:
            g1 = 1.0 - (1.0 - self.credit_smoothing) ** steps
            credit = {d: (1.0 - g1) * credit[d] + g1 * delta[d] / total for d in domains}

        points = {d: self._points(history, d) for d in domains}
        short = {d: len(p[0]) for d, p in points.items() if len(p[0]) < self.min_points}
        if short:  # not enough history to fit every domain: keep the current (prior) weights
            # mean_rho stays the prior over these steps, exactly as ADO's running mean before its first fit
            self._credit, self._last_step = credit, int(history.step)
            self.last_fit_report = {"phase": "warmup", "points": {d: len(p[0]) for d, p in points.items()}}
            return None

        fits, speed = {}, {}
        for d in domains:
            fit = fit_power_law(np.array(points[d][0]), np.array(points[d][1]),
                                alpha_max=self.alpha_max, huber_delta=self.huber_delta)
            n_now = max(float(history.tokens_seen[d]), 1.0)
            gain = fit["alpha"] * fit["beta"] * n_now ** (-fit["alpha"])  # alpha (L(n) - eps) = -dL/dlog n
            speed[d] = gain if self.speed == "log" else gain / n_now
            fits[d] = fit
        rho_raw = {d: prior[d] * max(credit[d], 0.0) ** self.credit_exponent * speed[d] for d in domains}
        if not all(math.isfinite(v) and v >= 0 for v in rho_raw.values()):
            self.last_fit_report = {"phase": "skipped", "reason": f"non-finite preference {rho_raw}"}
            return None
        z = sum(rho_raw.values())
        rho = {d: rho_raw[d] / z for d in domains} if z > 0 else dict(prior)  # nothing improves: fall back to prior

        mean_rho = dict(self._mean_rho or prior)  # step-weighted mean of rho since step 0 (starts at the prior)
        keep = (self._last_step + 1.0) / (history.step + 1.0)
        pi = {d: self.policy_smoothing * rho[d] + (1.0 - self.policy_smoothing) * mean_rho[d] for d in domains}
        mean_rho = {d: keep * mean_rho[d] + (1.0 - keep) * rho[d] for d in domains}
        floor = min(self.floor, 1.0 / k_domains)
        weights = {d: floor + (1.0 - k_domains * floor) * pi[d] for d in domains}
        weights = normalize_weights(weights, domains, what="ado weights")

        self._credit, self._mean_rho, self._last_step = credit, mean_rho, int(history.step)
        self.last_fit_report = {
            "phase": "fit", "points": len(points[domains[0]][0]),
            "alpha": {d: round(fits[d]["alpha"], 5) for d in domains},
            "eps": {d: round(fits[d]["eps"], 5) for d in domains},
            "speed": {d: float(f"{speed[d]:.6g}") for d in domains},
            "credit": {d: round(credit[d], 5) for d in domains},
        }
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {"prior_weights": self._prior_weights, "credit": self._credit, "mean_rho": self._mean_rho,
                "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("prior_weights"):
            self._prior_weights = dict(state["prior_weights"])
        self._credit = dict(state["credit"]) if state.get("credit") else None
        self._mean_rho = dict(state["mean_rho"]) if state.get("mean_rho") else None
        self._last_step = int(state.get("last_step", 0))


# --------------------------------------------------------------------------------------- ODM


def exp3_exploration(k: int, t: int) -> float:
    """ODM's exploration rate eps_t = min(1/K, sqrt(ln K / (K t)))."""
    if t <= 0:
        return 1.0 / k
    return min(1.0 / k, math.sqrt(math.log(k) / (k * t)))


class ODM(MixingStrategy):
    """Online Data Mixing: EXP3 over domains, reward = the domain's training loss.

    ODM samples one domain per step and updates the sampled arm's reward; here a refit sees
    the mean training loss of every domain since the last refit, so every sampled domain d gets
    its importance-weighted reward loss_d / pi_d at once, pi = the realised shares the losses were
    drawn under (`MixHistory.weights`; not the scheduled weights, which may not have taken effect). As ODM's
    code, the estimated reward is a moving average (non-stationary rewards):
        R_d <- a R_d + (1 - a) loss_d / pi_d          (a = reward_smoothing = 0.9)
        pi  =  (1 - K eps_t) softmax(eps_{t-1} R) + eps_t,   eps_t = min(1/K, sqrt(ln K / (K t)))
    with t = the training step (the paper's per-step exploration schedule, whatever the
    refit interval). A domain with NaN loss (not sampled) gets no reward. Weights are uniform
    until `warmup_steps` (rewards are still collected).
    """

    name = "odm"

    def __init__(
        self,
        refit_every_n_steps: int = 10,
        warmup_steps: int = 100,
        reward_smoothing: float = 0.9,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if not 0.0 <= reward_smoothing < 1.0:
            raise ValueError(f"mixing.reward_smoothing must be in [0, 1), got {reward_smoothing}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.warmup_steps = int(warmup_steps)
        self.reward_smoothing = float(reward_smoothing)
        self._rewards: dict[str, float] | None = None
        self._eps_prev: float | None = None
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: 1.0 for d in ctx.domains}  # EXP3 starts from uniform

    def update(self, history: MixHistory) -> dict[str, float] | None:
        domains = list(history.weights)
        k = len(domains)
        loss = history.train_loss
        if not _finite_or_nan(loss) or any(float(loss[d]) < 0 for d in domains if not math.isnan(float(loss[d]))):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite or negative losses"}
            return None
        sampled = [d for d in domains if not math.isnan(float(loss[d]))]
        if not sampled:
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        pi_now = normalize_weights(history.weights, domains, what="odm realised shares")
        rewards = dict(self._rewards or {d: 0.0 for d in domains})
        a = self.reward_smoothing
        for d in sampled:  # importance weighting: a rarely sampled domain's loss counts more
            rewards[d] = a * rewards[d] + (1.0 - a) * float(loss[d]) / max(pi_now[d], 1e-12)
        eps_prev = self._eps_prev if self._eps_prev is not None else 1.0 / k
        eps = exp3_exploration(k, int(history.step))
        if not all(math.isfinite(v) for v in rewards.values()):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite rewards"}
            return None
        self._rewards, self._eps_prev = rewards, eps
        if history.step <= self.warmup_steps:
            self.last_fit_report = {"phase": "warmup", "eps": eps}
            return None
        x = np.array([eps_prev * rewards[d] for d in domains])
        p = np.exp(x - x.max())  # stable softmax
        p = (1.0 - k * eps) * p / p.sum() + eps
        self.last_fit_report = {"phase": "exp3", "eps": eps,
                                "reward": {d: float(f"{rewards[d]:.6g}") for d in domains}}
        return normalize_weights(dict(zip(domains, p.tolist())), domains, what="odm weights")

    def state_dict(self) -> dict[str, Any]:
        return {"rewards": self._rewards, "eps_prev": self._eps_prev}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rewards = dict(state["rewards"]) if state.get("rewards") else None
        self._eps_prev = None if state.get("eps_prev") is None else float(state["eps_prev"])


# ------------------------------------------------------------------------------------ DoReMi


def read_reference_losses(run_dir: str | os.PathLike, kind: str = "train") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{domain: (steps, losses)} from a finished run's metrics.csv, columns `<kind>/<domain>/loss`.

    Empty cells (a domain not in that step's batch, rows without validation) are skipped; a
    step logged twice (a resumed run) keeps its last row, as collect.py does.
    Raises ValueError naming the file when it or its `step` column is missing.
    """
    file = os.path.join(str(run_dir), METRICS)
    if not os.path.isfile(file):
        raise ValueError(f"mixing.reference_run: {file} does not exist; reference_run must be a finished "
                         "mixtrain run directory (it holds metrics.csv)")
    with open(file, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if "step" not in header:
        raise ValueError(f"{file}: no 'step' column")
    prefix = f"{kind}/"
    domains = [c[len(prefix):-len("/loss")] for c in header
               if c.startswith(prefix) and c.endswith("/loss") and c != f"{kind}/loss"]
    out = {}
    for d in domains:
        by_step: dict[float, float] = {}
        for row in rows:
            step, v = _num(row.get("step")), _num(row.get(f"{kind}/{d}/loss"))
            if step is not None and v is not None and math.isfinite(v):
                by_step[step] = v
        steps = sorted(by_step)
        out[d] = (np.array(steps, dtype=float), np.array([by_step[s] for s in steps], dtype=float))
    return out


class DoReMi(MixingStrategy):
    """DoReMi online: exponentiated-gradient weights on the excess loss over a reference run.

    DoReMi trains a proxy model with Group DRO against a reference model and averages the
    weights; here the run itself is the proxy and `reference_run` (a finished mixtrain run,
    typically uniform, same domains) gives the reference loss of domain d at the current step:
    - reference_loss=train (default): the reference's per-domain training loss averaged over
      the steps of the current refit interval (the same window as the run's own mean training
      loss), interpolated linearly when the reference logged no row in that window;
    - reference_loss=val: the reference's validation loss interpolated at the step, against
      the run's latest validation loss (falls back to training losses when none is known yet).
    Steps beyond the reference's last row use its last value (reported as "extrapolated").
    Then, as the paper's Algorithm 1 (eta = 1, c = 1e-3):
        excess_d = max(loss_d - ref_d, 0)        (NaN loss: domain not sampled, excess 0)
        alpha'   = alpha * exp(eta * k * excess) (in log space), normalised; k = steps since the
                                                 last refit: eta is per training step as in the paper,
                                                 so the dynamics do not depend on the refit interval
        alpha    = (1 - c) alpha' + c / K        (stored smoothed, so no domain dies for good)
    and returns alpha, or with `average: true` the running mean of alpha over refits (the
    paper's final output, for when this run is a proxy).

    Where this differs from the paper (kept on purpose, not an oversight):
    - Clipping per domain mean, not per token. The paper's excess of domain d is the mean over
      its tokens x of max(l_theta(x) - l_ref(x), 0); ours is max(mean l_theta - mean l_ref, 0).
      By Jensen the paper's value is >= ours; they agree only when every token's excess has
      the same sign. Ours lets tokens the model already predicts better than the reference
      cancel tokens it predicts worse, so a domain with a mix of both gains less weight here.
    - The reference is a finished run's loss curve, not a reference model: l_ref comes from
      other batches (the reference run's, at the same steps) rather than the same tokens, and
      from the reference at the same point of training rather than a fully trained model.
      Per-token clipping needs the reference model's per-token losses on this run's batch:
      a frozen second model in the LightningModule (a forward pass per step, sharded like the
      trained model under FSDP), its clipped excess summed per domain next to
      `domain_loss_sum` and carried by refit.py into MixHistory. Not implemented: see
      README "Mixing strategies" (doremi).
    """

    name = "doremi"
    KINDS = ("train", "val")

    def __init__(
        self,
        reference_run: str | None = None,
        reference_loss: str = "train",
        step_size: float = 1.0,
        smoothing: float = 1e-3,
        average: bool = False,
        refit_every_n_steps: int = 10,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if not reference_run:
            raise ValueError("mixing=doremi needs mixing.reference_run=RUN_DIR: a finished mixtrain run over the "
                             "same domains (e.g. a uniform run of the same model size) whose metrics.csv gives the "
                             "reference loss per domain")
        if reference_loss not in self.KINDS:
            raise ValueError(f"mixing.reference_loss must be one of {self.KINDS}, got {reference_loss!r}")
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"mixing.smoothing must be in [0, 1], got {smoothing}")
        self.reference_run = str(reference_run)
        self.reference_loss = reference_loss
        self.step_size, self.smoothing, self.average = float(step_size), float(smoothing), bool(average)
        self.refit_every_n_steps = int(refit_every_n_steps)
        self._reference: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._alpha: dict[str, float] | None = None
        self._alpha_sum: dict[str, float] | None = None
        self._updates = 0
        self._last_step = 0
        self.last_fit_report: dict[str, Any] | None = None

    def _table(self, kind: str, domains: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The reference's losses of `kind` for exactly `domains` (read once, checked)."""
        if kind not in self._reference:
            table = read_reference_losses(self.reference_run, kind)
            file = os.path.join(self.reference_run, METRICS)
            missing = [d for d in domains if d not in table]
            if missing:
                raise ValueError(f"{file}: no column '{kind}/{missing[0]}/loss' for domain {missing[0]!r}; the "
                                 f"reference run holds {kind} losses of {sorted(table)} but this run trains on "
                                 f"{list(domains)}; use a reference run over the same domains")
            extra = [d for d in table if d not in domains]
            if extra:
                raise ValueError(f"{file}: reference run has domain(s) {extra} that this run does not train on "
                                 f"({list(domains)}); use a reference run over the same domains")
            empty = [d for d in domains if len(table[d][0]) == 0]
            if empty:
                raise ValueError(f"{file}: column '{kind}/{empty[0]}/loss' holds no values")
            self._reference[kind] = table
        return self._reference[kind]

    def compute(self, ctx: DataContext) -> dict[str, float]:
        self._table(self.reference_loss, ctx.domains)  # fail at start-up, not at the first refit
        return {d: 1.0 for d in ctx.domains}  # DoReMi starts from uniform

    def _reference_at(self, table, d: str, first: float, last: float, window: bool) -> float:
        steps, losses = table[d]
        if window:
            inside = (steps > first) & (steps <= last)
            if inside.any():
                return float(losses[inside].mean())
        return float(np.interp(last, steps, losses))

    def update(self, history: MixHistory) -> dict[str, float] | None:
        domains = list(history.weights)
        k = len(domains)
        kind = self.reference_loss
        current = history.train_loss
        if kind == "val" and history.val_loss is not None:
            current = history.val_loss
        elif kind == "val":
            kind = "train"  # no validation yet in this run: compare like with like
        if not _finite_or_nan(current):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite losses"}
            return None
        current = {d: float(current[d]) for d in domains}
        if all(math.isnan(v) for v in current.values()):
            self.last_fit_report = {"phase": "skipped", "reason": "no domain sampled since the last refit"}
            return None
        table = self._table(kind, domains)
        ref = {d: self._reference_at(table, d, self._last_step, history.step, window=(kind == "train"))
               for d in domains}
        excess = {d: (0.0 if math.isnan(current[d]) else max(current[d] - ref[d], 0.0)) for d in domains}
        if not all(math.isfinite(v) for v in [*ref.values(), *excess.values()]):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite reference or excess"}
            return None
        alpha = self._alpha or {d: 1.0 / k for d in domains}
        # DoReMi takes one step of size eta per training step; one refit stands for all the steps since the last
        eta = self.step_size * max(history.step - self._last_step, 1)
        logits = np.array([math.log(max(alpha[d], 1e-300)) + eta * excess[d] for d in domains])
        p = np.exp(logits - logits.max())
        p = (1.0 - self.smoothing) * p / p.sum() + self.smoothing / k
        new_alpha = dict(zip(domains, p.tolist()))
        alpha_sum = {d: (self._alpha_sum or {}).get(d, 0.0) + new_alpha[d] for d in domains}

        self._alpha, self._alpha_sum = new_alpha, alpha_sum
        self._updates += 1
        self._last_step = int(history.step)
        last_ref_step = max(float(table[d][0][-1]) for d in domains)
        self.last_fit_report = {"phase": "eg", "kind": kind, "excess": {d: round(excess[d], 5) for d in domains},
                                "reference": {d: round(ref[d], 5) for d in domains},
                                "extrapolated": bool(history.step > last_ref_step)}
        out = {d: alpha_sum[d] / self._updates for d in domains} if self.average else new_alpha
        return normalize_weights(out, domains, what="doremi weights")

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self._alpha, "alpha_sum": self._alpha_sum, "updates": self._updates,
                "last_step": self._last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._alpha = dict(state["alpha"]) if state.get("alpha") else None
        self._alpha_sum = dict(state["alpha_sum"]) if state.get("alpha_sum") else None
        self._updates = int(state.get("updates", 0))
        self._last_step = int(state.get("last_step", 0))
