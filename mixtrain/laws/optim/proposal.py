"""What the sampled optimiser is told and what it answers: `ProposalSettings` (every setting of
`propose`, with its default, in one place) and `Proposal` (the decision and why: `lines()` for the
console and weights.yaml comments, `meta()` for weights.yaml's `proposal:` block).

Place in the flow: `mixtrain.fitting.fit --optimize` / mixing=law settings -> **ProposalSettings** ->
laws/optim/sampled.py `propose` (candidates.py, scoring.py, decision.py) -> **Proposal** -> weights.yaml.
Pure: numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Proposal", "ProposalSettings"]

STAGE1_SHARE, STAGE2_TOP = 0.6, 20  # candidates: share drawn around observed mixtures; best kept for stage 2


@dataclass(frozen=True)
class ProposalSettings:
    """The settings of `propose` (laws/optim/sampled.py module docstring, steps 1-6), defaults here only."""

    candidates: int = 100_000  # candidate mixtures sampled inside the support (step 1)
    bootstrap: int = 20  # refits of the law on resampled runs (step 2; 0: none, no interval)
    refit_pool: int | None = None  # refits score only this many best candidates (None: the law's `refit_pool`)
    support_cap: float = 1.5  # w_d <= support_cap x its largest observed weight + support_floor (step 3)
    support_floor: float = 0.01
    trust_radius: float | None = None  # optional TV ball around the observed mixtures
    level: float = 0.95  # bootstrap interval (step 4)
    force_proposal: bool = False  # write the proposal, no shrinkage (step 5)
    force_optimize: bool = False  # optimise even when refuse_on_cv would refuse (step 6)
    average_top: int = 100  # RegMix's top-k average joins the candidates (step 2)
    model_error: bool = False  # widen the intervals by the law's CV error (step 4)
    seed: int = 0
    risk_quantile: float = 0.6  # the quantile of (mixture - uniform) the shrinkage minimises (step 5)
    check_law: str | None = "auto"  # laws of other families whose refits judge the step too ("a+b": several; step 5)
    risk_pooling: str = "each"  # "each": every law's own risk_quantile must clear zero; "pooled": all refits pooled
    refuse_on_cv: bool = False  # refuse when the law's CV regret is worse than the nearest run's (step 6)
    shrink_steps: int = 10  # steps t in {0, 1/n, ..., 1} from uniform to the proposal (step 5)
    prefer_best_run: bool = False  # step 7 (observed.py): the best run if measured below the written's prediction

    @classmethod
    def of(cls, settings: ProposalSettings | None = None, **options: Any) -> ProposalSettings:
        """`settings` (default: the defaults) with `options` replacing fields; unknown names are a TypeError."""
        base = settings if settings is not None else cls()
        unknown = sorted(set(options) - set(asdict(base)))
        if unknown:
            raise TypeError(f"propose() got unexpected keyword argument(s) {unknown}")
        return cls(**{**asdict(base), **options})

    def check(self) -> None:
        if self.risk_pooling not in ("each", "pooled"):
            raise ValueError(f"risk_pooling must be 'each' or 'pooled', got {self.risk_pooling!r}")
        if self.candidates < 1 or self.bootstrap < 0 or self.shrink_steps < 1 or not 0.5 <= self.risk_quantile < 1:
            raise ValueError(f"candidates and shrink_steps must be >= 1, bootstrap >= 0 and risk_quantile in [0.5, 1), "
                             f"got {self.candidates}, {self.shrink_steps}, {self.bootstrap} and {self.risk_quantile}")

    @property
    def quantiles(self) -> tuple[float, float]:
        """The bootstrap interval's lower and upper quantile."""
        return (0.5 - self.level / 2, 0.5 + self.level / 2)

    def report(self, step: float, n_candidates: int, bootstrap: int, refit_pool: int) -> dict[str, Any]:
        """The settings as `Proposal.settings` (and weights.yaml) record them, with what was actually used."""
        return {"optimizer": "sampled", "target_step": step, "n_candidates": int(n_candidates), "bootstrap": bootstrap,
                "refit_pool": int(refit_pool), "support_cap": self.support_cap, "support_floor": self.support_floor,
                "trust_radius": self.trust_radius, "level": self.level, "model_error": self.model_error,
                "seed": self.seed, "risk_quantile": self.risk_quantile, "check_law_setting": self.check_law,
                "risk_pooling": self.risk_pooling, "refuse_on_cv": self.refuse_on_cv}


@dataclass
class Proposal:
    """What `propose` decided and why (`lines()` for humans, `meta()` for weights.yaml)."""

    weights: dict[str, float]  # what to train on (the proposal, or the fallback)
    chosen: str  # "proposal", "uniform", "natural" or "run <name>"
    proposal: dict[str, float]  # the law's proposal, written or not
    predicted: dict[str, tuple[float, float, float]]  # label -> (full fit, interval lo, hi)
    diff_vs_uniform: tuple[float, float, float] | None  # proposal - uniform: (refits' mean, lo, hi)
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    at_cap: list[str] = field(default_factory=list)
    shrink: dict[str, Any] = field(default_factory=dict)  # the step from uniform towards the proposal (step 5)

    def lines(self) -> list[str]:
        s = self.settings
        radius = "off" if s["trust_radius"] is None else f"TV <= {s['trust_radius']:g}"
        out = [f"optimiser: sampled, {s['n_candidates']} candidates, {s['bootstrap']} bootstrap refits over runs "
               f"(refits score {s['refit_pool']} of them); support: w_d <= {s['support_cap']:g} x its largest "
               f"observed weight + {s['support_floor']:g} (0 if never above {s['support_floor']:g}); trust radius {radius}",
               f"predicted mean loss at step {s['target_step']:g}: full fit [{100 * s['level']:g}% bootstrap interval]"]
        for label, (v, lo, hi) in self.predicted.items():
            out.append(f"  {label:<24} {v:.4f}  [{lo:.4f}, {hi:.4f}]")
        if "natural" not in self.predicted:
            out.append("  natural                  not given (--natural domain=tokens,...)")
        if self.diff_vs_uniform is not None:
            m, lo, hi = self.diff_vs_uniform
            out.append(f"proposal - uniform: {m:+.4f}  [{lo:+.4f}, {hi:+.4f}]"
                       + (" (refits + the law's CV error)" if s.get("model_error") else " (over refits)"))
        sh = self.shrink
        for name, (m, lo, hi) in (sh.get("check_diffs") or {}).items():
            out.append(f"check law {name}: proposal - uniform {m:+.4f}  [{lo:+.4f}, {hi:+.4f}] (over its refits)")
        if sh.get("check_note"):
            out.append(f"check law: {sh['check_note']}")
        if "t" in sh:
            over = ("the highest of the laws' own percentiles" if sh.get("risk_pooling") == "each"
                    else "over all laws' refits pooled")
            out.append(f"shrinkage: {sh['t']:g} of the way from uniform to the proposal (the step whose "
                       f"{100 * sh['quantile']:g}th percentile of (mixture - uniform), {over}, is lowest: "
                       f"{sh['risk']:+.4f})")
        if self.at_cap:
            out.append("proposal at its support cap: " + ", ".join(self.at_cap))
        out.append(f"written: {self.chosen} ({self.reason})")
        return out

    def meta(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "reason": self.reason,
                "predicted_mean_loss": {k: {"full_fit": v[0], "lo": v[1], "hi": v[2]} for k, v in self.predicted.items()},
                "proposal_minus_uniform": None if self.diff_vs_uniform is None else
                dict(zip(("mean", "lo", "hi"), self.diff_vs_uniform)),
                "proposal": dict(self.proposal), "at_support_cap": list(self.at_cap),
                "shrink": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.shrink.items()}, **self.settings}
