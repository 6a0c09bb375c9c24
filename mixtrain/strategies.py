"""Mixing strategies: where the sampler's weights come from.

Place in the flow: shards.py/entropy.py/laws.py produce domain statistics and fitted laws ->
**strategies.py** turns them into `dict[domain, float]` -> sampler.py draws by those weights;
refit.py feeds training history back into `update()` for strategies that adapt online.

A strategy is chosen by the Hydra group `conf/mixing/` (each yaml names a class here with
`_target_`). Adding one touches three places: a class, a `conf/mixing/<name>.yaml`, a test.

Interface:
    initial_weights(ctx: DataContext) -> weights      called once per run (every rank, same result)
    refit_every_n_steps: int | None                   None: static, never updated
    update(history: MixHistory) -> weights | None     new weights, or None to keep the current ones
    state_dict() / load_state_dict()                  saved in the checkpoint (online strategies)
Every strategy may cap epochs per domain (`max_epochs`): no domain is planned to be read more
than that many times over the run's token budget; the surplus goes to the other domains.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mixtrain.weights import normalize_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataContext:
    """What a strategy may know about the prepared data and the run's budget."""

    data_dir: str
    domains: list[str]
    stats: dict[str, dict[str, Any]]  # DIR/<domain>/stats.json per domain
    budget_tokens: int | None = None  # planned training tokens of the whole run (all ranks)
    global_batch_tokens: int | None = None
    max_steps: int | None = None

    def num_train_tokens(self) -> dict[str, int]:
        return {d: int(self.stats[d]["num_train_tokens"]) for d in self.domains}


@dataclass
class MixHistory:
    """What refit.py hands an online strategy: all inputs identical on every rank."""

    step: int
    max_steps: int | None
    # realised per-domain shares of the samples since the last refit (counted from the stream):
    # the mixture the losses below were actually drawn under, not what was scheduled (a change
    # takes effect `weight_lag_batches` later, and may be replaced before it does)
    weights: dict[str, float]
    tokens_seen: dict[str, int]  # training tokens consumed per domain, all ranks
    train_loss: dict[str, float]  # mean per-domain training loss since the last refit (nan: no sample)
    val_loss: dict[str, float] | None = None  # latest per-domain validation loss, if any
    # full record since the start of the run: one dict per earlier refit, {"step", "old_weights",
    # "new_weights" (None if kept), "tokens_seen", "train_loss", "val_loss"}; laws refit on it
    records: list[dict[str, Any]] = field(default_factory=list)
    # the latest scheduled weights (what the sampler will draw by once pending changes land);
    # the base for a strategy's next proposal. None when the caller has no sampler (tests).
    scheduled_weights: dict[str, float] | None = None


def cap_epochs(
    weights: Mapping[str, float], num_tokens: Mapping[str, int], budget_tokens: int, max_epochs: float
) -> dict[str, float]:
    """Lower any weight that would read a domain more than `max_epochs` times over the budget.

    The cap of domain d is max_epochs * num_tokens[d] / budget_tokens; the removed mass is
    given to the uncapped domains in proportion to their weights (repeated until stable).
    Raises ValueError if even reading every domain `max_epochs` times cannot fill the budget.
    """
    w = normalize_weights(weights, list(weights))
    caps = {d: max_epochs * num_tokens[d] / budget_tokens for d in w}
    if sum(min(1.0, c) for c in caps.values()) < 1.0 - 1e-12:
        raise ValueError(
            f"max_epochs={max_epochs}: the data holds {sum(num_tokens.values()):,} tokens, less than the budget "
            f"{budget_tokens:,} / {max_epochs} epochs; raise max_epochs or train for fewer steps"
        )
    fixed: dict[str, float] = {}
    for _ in range(len(w) + 1):
        free = {d: v for d, v in w.items() if d not in fixed}
        mass = 1.0 - sum(fixed.values())
        total = sum(free.values())
        scaled = {d: (v / total * mass if total > 0 else mass / len(free)) for d, v in free.items()}
        over = {d for d, v in scaled.items() if v > caps[d] + 1e-15}
        if not over:
            return normalize_weights({**fixed, **scaled}, list(w))
        for d in over:
            fixed[d] = caps[d]
    raise AssertionError("unreachable: every pass fixes at least one domain")


def cap_remaining_epochs(
    weights: Mapping[str, float], num_tokens: Mapping[str, int], tokens_seen: Mapping[str, int],
    budget_tokens: int, max_epochs: float,
) -> dict[str, float]:
    """`cap_epochs` for the rest of a run: what is left of each domain's `max_epochs` allowance
    (max_epochs * num_tokens - tokens already seen) over what is left of the budget."""
    remaining = budget_tokens - sum(int(tokens_seen[d]) for d in weights)
    if remaining <= 0:
        return normalize_weights(weights, list(weights))  # the budget is spent: nothing left to cap
    allowance = {d: max(max_epochs * num_tokens[d] - int(tokens_seen[d]), 0.0) for d in weights}
    return cap_epochs(weights, allowance, remaining, 1.0)


class MixingStrategy:
    """Base class: a static strategy only implements `compute(ctx)`."""

    name = "base"
    refit_every_n_steps: int | None = None

    def __init__(self, max_epochs: float | None = None):
        self.max_epochs = max_epochs

    def compute(self, ctx: DataContext) -> dict[str, float]:
        raise NotImplementedError

    def initial_weights(self, ctx: DataContext) -> dict[str, float]:
        weights = normalize_weights(self.compute(ctx), ctx.domains, what=f"{self.name} weights")
        return self.apply_cap(weights, ctx)

    def apply_cap(self, weights: dict[str, float], ctx: DataContext) -> dict[str, float]:
        if self.max_epochs is None:
            return weights
        if not ctx.budget_tokens:
            raise ValueError(f"mixing.max_epochs needs a token budget: set trainer.max_steps ({self.name})")
        return cap_epochs(weights, ctx.num_train_tokens(), ctx.budget_tokens, self.max_epochs)

    def update(self, history: MixHistory) -> dict[str, float] | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """Settings for logs and reports."""
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}


class Uniform(MixingStrategy):
    name = "uniform"

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: 1.0 for d in ctx.domains}


class Natural(MixingStrategy):
    """Proportional to each domain's training tokens."""

    name = "natural"

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: float(n) for d, n in ctx.num_train_tokens().items()}


class Temperature(MixingStrategy):
    """r_i ∝ n_i^(1/T): T=1 is natural, T→∞ uniform (mT5/UniMax style)."""

    name = "temperature"

    def __init__(self, temperature: float = 3.0, max_epochs: float | None = None):
        super().__init__(max_epochs)
        if not temperature > 0:
            raise ValueError(f"mixing.temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return {d: float(n) ** (1.0 / self.temperature) for d, n in ctx.num_train_tokens().items()}


class Manual(MixingStrategy):
    """Weights from the config (`weights: {domain: w}`) or from a YAML file with a `weights` key."""

    name = "manual"

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        weights_file: str | None = None,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if (weights is None) == (weights_file is None):
            raise ValueError(
                "mixing=manual needs exactly one of mixing.weights={domain: w, ...} or mixing.weights_file=FILE.yaml"
            )
        self.weights = dict(weights) if weights is not None else None
        self.weights_file = weights_file

    def compute(self, ctx: DataContext) -> dict[str, float]:
        if self.weights is not None:
            return self.weights
        return read_weights_file(self.weights_file)


def read_weights_file(path: str | os.PathLike) -> dict[str, float]:
    """Read a weights.yaml (`weights: {domain: w}`), as written by `python -m mixtrain.fit --optimize`."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file {path} does not exist") from None
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise ValueError(f"weights file {path} must hold a mapping `weights: {{domain: weight, ...}}`")
    return {str(k): v for k, v in data["weights"].items()}


class Entropy(MixingStrategy):
    """BiMix training-free weights from a per-domain entropy (se, ce, je or vne)."""

    name = "entropy"
    MEASURES = ("se", "ce", "je", "vne")

    def __init__(
        self,
        measure: str = "ce",
        normalization: str = "proportional",
        temperature: float = 1.0,
        sample_tokens: int | None = 2_000_000,
        seed: int = 0,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if measure not in self.MEASURES:
            raise ValueError(f"mixing.measure must be one of {self.MEASURES}, got {measure!r}")
        self.measure = measure
        self.normalization = normalization
        self.temperature = float(temperature)
        self.sample_tokens = sample_tokens
        self.seed = seed
        self.entropies: dict[str, float] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        from mixtrain.entropy import entropy_weights, load_or_compute_entropies

        # Only one process writes the cache into stats.json; every process gets the same numbers.
        writer = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
        table = load_or_compute_entropies(
            ctx.data_dir, domains=ctx.domains, sample_tokens=self.sample_tokens, seed=self.seed, write=writer
        )
        self.entropies = {d: float(table[d][self.measure]) for d in ctx.domains}
        return entropy_weights(self.entropies, normalization=self.normalization, temperature=self.temperature)


class Law(MixingStrategy):
    """The optimum of a fitted mixing law (law.json from `python -m mixtrain.fit`) at a target step."""

    name = "law"

    def __init__(
        self,
        law_file: str | None = None,
        step: int | None = None,
        importance: Mapping[str, float] | None = None,
        min_weight: float = 0.0,
        max_epochs: float | None = None,
        support_margin: float | None = 0.05,
        trust_radius: float | None = 0.25,
        seed: int = 0,
    ):
        super().__init__(max_epochs)
        if not law_file:
            raise ValueError("mixing=law needs mixing.law_file=law.json (from `python -m mixtrain.fit ... --out law.json`)")
        self.law_file = law_file
        self.step = step
        self.importance = dict(importance) if importance else None
        self.min_weight = float(min_weight)
        # the optimum stays inside the proxies' support unless these are null (mixtrain/laws/support.py)
        self.support_margin = None if support_margin is None else float(support_margin)
        self.trust_radius = None if trust_radius is None else float(trust_radius)
        self.seed = int(seed)

    def compute(self, ctx: DataContext) -> dict[str, float]:
        from mixtrain.laws import load_law

        law = load_law(self.law_file)
        step = self.step if self.step is not None else ctx.max_steps
        if step is None:
            raise ValueError("mixing=law needs mixing.step (the target step) or trainer.max_steps")
        law_domains = list(law.train_domains)
        if sorted(law_domains) != sorted(ctx.domains):
            raise ValueError(
                f"law {self.law_file} was fitted on domains {law_domains} but this run trains on {ctx.domains}; "
                "fit the law on runs over the same domains"
            )
        opt = law.solve(step, importance=self.importance, min_weight=self.min_weight,
                        support_margin=self.support_margin, trust_radius=self.trust_radius, seed=self.seed)
        log.info("mixing=law: optimum of %s at step %s; %s", self.law_file, step, "; ".join(opt.lines()))
        return opt.weights


def prior_weights(kind: str, temperature: float, ctx: DataContext) -> dict[str, float]:
    """The static rule an online strategy starts from: uniform, natural or temperature."""
    rule = {"uniform": Uniform(), "natural": Natural(), "temperature": Temperature(temperature)}
    if kind not in rule:
        raise ValueError(f"mixing.prior must be uniform, natural or temperature, got {kind!r}")
    return normalize_weights(rule[kind].compute(ctx), ctx.domains, what="prior weights")


def domain_stats_context(
    data_dir: str, domains: Sequence[str], stats: Mapping[str, Mapping[str, Any]], *,
    max_steps: int | None, global_batch_tokens: int | None,
) -> DataContext:
    budget = max_steps * global_batch_tokens if (max_steps and global_batch_tokens) else None
    return DataContext(
        data_dir=str(data_dir), domains=list(domains), stats={d: dict(stats[d]) for d in domains},
        budget_tokens=budget, global_batch_tokens=global_batch_tokens, max_steps=max_steps,
    )


def is_finite_weights(weights: Mapping[str, float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in weights.values())


def remaining_budget_weights(
    target: Mapping[str, float], tokens_seen: Mapping[str, float], remaining_tokens: float
) -> dict[str, float]:
    """Weights for the rest of a run so that its cumulative mixture ends as close to `target` as possible.

    With n_d tokens seen (N in all) and R tokens left, weights w give the final cumulative share
    c_d = (n_d + w_d R) / (N + R). c = target needs w_d = (target_d (N + R) - n_d) / R, which
    leaves the simplex when a domain is already over-represented. c is affine in w, so the w on
    the simplex with c closest to target (Euclidean) is the Euclidean projection of that
    unconstrained w onto the simplex: negative entries clipped to 0, the rest shifted equally.
    """
    domains = list(target)
    if remaining_tokens <= 0:
        return normalize_weights(target, domains)
    import numpy as np

    from mixtrain.laws.base import project_box_simplex

    seen = np.array([float(tokens_seen.get(d, 0.0)) for d in domains])
    r = np.array([float(target[d]) for d in domains])
    ideal = (r * (seen.sum() + remaining_tokens) - seen) / remaining_tokens
    w = project_box_simplex(ideal, np.zeros(len(domains)), np.ones(len(domains)))
    return normalize_weights(dict(zip(domains, w.tolist())), domains, what="online_bimix remaining-budget weights")


class OnlineBiMix(MixingStrategy):
    """Ours: refit the BiMix law on the run's own history and re-solve for the remaining budget.

    Observations (one per refit): the cumulative token share of every domain so far (the
    mixture the model has actually seen, which moves as weights change) and the latest
    per-domain validation loss (training loss when no validation ran since the last refit),
    at the current step. Until `min_records` observations exist the strategy explores:
    Dirichlet draws around the prior (seeded by refit index), which vary the shares so the
    proportion exponents become identifiable. Then every refit fits `law` (bimix by default)
    on all observations and solves for its optimum r* at the final step (trainer.max_steps).
    r* is a cumulative proportion (BiMix's r is the share of the tokens seen), so the weights
    returned are those for the *rest* of the run that bring the cumulative share at the end
    closest to r* given the tokens already seen (`remaining_budget_weights`; remaining tokens
    = steps left x tokens per step so far). The refit callback's floor/max_change/smoothing and
    the sampler's planning window still move the realised shares; every refit re-compensates.
    A failed fit raises; the refit callback keeps the previous weights and logs why.
    """

    name = "online_bimix"

    def __init__(
        self,
        refit_every_n_steps: int = 200,
        prior: str = "natural",
        prior_temperature: float = 3.0,
        law: str = "bimix",
        min_records: int = 4,
        explore_concentration: float = 20.0,
        min_weight: float = 0.02,
        seed: int = 0,
        max_epochs: float | None = None,
    ):
        super().__init__(max_epochs)
        if prior not in ("uniform", "natural", "temperature"):
            raise ValueError(f"mixing.prior must be uniform, natural or temperature, got {prior!r}")
        self.refit_every_n_steps = int(refit_every_n_steps)
        self.prior, self.prior_temperature, self.law = prior, float(prior_temperature), law
        self.min_records, self.explore_concentration = int(min_records), float(explore_concentration)
        self.min_weight, self.seed = float(min_weight), int(seed)
        self._prior_weights: dict[str, float] | None = None
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        self._prior_weights = prior_weights(self.prior, self.prior_temperature, ctx)
        return self._prior_weights

    def _observations(self, history: MixHistory) -> list[dict[str, Any]]:
        rows = []
        for rec in [*history.records, {"step": history.step, "tokens_seen": history.tokens_seen,
                                       "train_loss": history.train_loss, "val_loss": history.val_loss}]:
            losses = rec.get("val_loss") or rec.get("train_loss")
            total = sum(rec["tokens_seen"].values())
            if not losses or total <= 0 or not all(math.isfinite(v) and v > 0 for v in losses.values()):
                continue
            rows.append({"step": rec["step"], "share": {d: n / total for d, n in rec["tokens_seen"].items()},
                         "loss": dict(losses)})
        return rows

    def update(self, history: MixHistory) -> dict[str, float] | None:
        import numpy as np

        from mixtrain.laws import make_law
        from mixtrain.table import make_table

        domains = list(history.weights)
        rows = self._observations(history)
        if len(rows) < self.min_records:
            prior = np.array([(self._prior_weights or history.weights)[d] for d in domains], dtype=float)
            prior = prior / prior.sum()
            rng = np.random.default_rng([self.seed, len(history.records)])
            draw = rng.dirichlet(self.explore_concentration * prior + 1e-3)
            self.last_fit_report = {"phase": "explore", "observations": len(rows)}
            return dict(zip(domains, draw.tolist()))
        # every observation is its own "run": its mixture (the cumulative share) differs from
        # the others', which is what identifies the proportion exponents; equal weight per refit
        table = make_table(
            domains, domains, [f"refit-{i}" for i in range(len(rows))], [r["step"] for r in rows],
            [[r["share"][d] for d in domains] for r in rows], [[r["loss"][d] for d in domains] for r in rows],
            source="online_bimix history",
        )
        law = make_law(self.law).fit(table, cv_folds=0)  # one run: nothing to cross-validate over
        target = history.max_steps or history.step
        optimum = law.optimize(target, min_weight=self.min_weight)
        seen_total = float(sum(history.tokens_seen.values()))
        remaining = seen_total / history.step * (target - history.step) if history.step > 0 else 0.0
        weights = remaining_budget_weights(optimum, history.tokens_seen, remaining)
        self.last_fit_report = {"phase": "fit", "observations": len(rows), "target_step": target,
                                "optimum": {d: round(v, 5) for d, v in optimum.items()},
                                "remaining_tokens": round(remaining), "report": _short_report(law)}
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {"prior_weights": self._prior_weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("prior_weights"):
            self._prior_weights = dict(state["prior_weights"])


def _short_report(law) -> dict[str, Any]:
    report = getattr(law, "report", None) or {}
    return {k: report[k] for k in ("law", "mean_r2", "mean_mre", "notes") if k in report}
