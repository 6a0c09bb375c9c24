"""The gradient probe's contract: what a gradient-based strategy asks for, and the numbers it gets back.

Place in the flow: a strategy in this package (doge.py, tikmix.py) declares a `ProbeSpec` as its
`gradient_probe` (as DoReMi declares `reference_model`) -> the controller
(mixtrain/train/mixing_controller.py) asks mixtrain/train/grad_probe.py to measure it at every refit
-> a `ProbeResult` (a k x k Gram, inner products against the targets) lands in
`MixHistory.probe` -> the strategy's `update()`. Pure: numpy only, so strategies stay torch-free.

Every gradient g is of a *mean* loss over a seeded probe batch; it is never kept. Each one is
sketched to `sketch_dim` numbers with a CountSketch (Charikar, Chen, Farach-Colton 2002): coordinate
p of g is added, times a random sign s(p), to bucket h(p). For any a, b the sketched inner product
is unbiased, E<Sa, Sb> = <a, b>, with variance (1/d) sum_{p!=q} (a_p^2 b_q^2 + a_p b_p a_q b_q)
<= (|a|^2 |b|^2 + <a, b>^2) / d. So its error relative to |a||b| has a root-mean-square of at most
`sketch_error_bound(d)` = sqrt(2 / d) (tests/train/test_grad_probe.py checks it on exact gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASKS = ("none", "target", "each")  # no target gradient | one importance-weighted target | one per target domain
PRECONDITIONERS = ("identity", "adam")


def sketch_error_bound(sketch_dim: int) -> float:
    """Root-mean-square of (<Sa, Sb> - <a, b>) / (|a| |b|) for a CountSketch S of `sketch_dim` buckets:
    at most sqrt(2 / d) for any a, b (the variance bound in the module doc)."""
    return math.sqrt(2.0 / int(sketch_dim))


@dataclass(frozen=True)
class ProbeSpec:
    """What a strategy asks the probe to measure at its refits.

    samples_per_domain: blocks per training domain in the probe batch (all ranks together; rank r
        takes samples r, r+W, ...); target_samples: blocks of the importance-weighted target (tasks
        drawn by importance) or, with tasks="each", blocks per target domain.
    tasks: "none" (only the Gram, e.g. DoGE's universal setting), "target" (one target gradient:
        the validation domains weighted by target.importance) or "each" (one per target domain, for
        TiKMiX's influence matrix).
    precondition: "identity", or "adam": the target side is divided by the optimiser's
        sqrt(bias-corrected second moment) + eps (a diagonal Hessian approximation; TiKMiX).
    """

    samples_per_domain: int = 8
    target_samples: int = 8
    sketch_dim: int = 8192
    tasks: str = "target"
    precondition: str = "identity"

    def __post_init__(self):
        if self.tasks not in TASKS:
            raise ValueError(f"gradient probe tasks={self.tasks!r}: use one of {list(TASKS)}")
        if self.precondition not in PRECONDITIONERS:
            raise ValueError(f"gradient probe precondition={self.precondition!r}: use one of {list(PRECONDITIONERS)}")
        for key in ("samples_per_domain", "target_samples", "sketch_dim"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"gradient probe {key}={getattr(self, key)}: use a positive integer")


@dataclass
class ProbeResult:
    """The probe's measurement at one refit: inner products only, identical on every rank.

    gram[i, j] = <g_i, g_j> over the training domains (sketched; the diagonal is |g_i|^2);
    task_inner[i, t] = <g_i, P g_task_t> (P: the preconditioner, identity by default) for the target
    domains `tasks` with `importance`; target_inner = task_inner @ importance (with tasks="target"
    measured directly on an importance-weighted batch); task_norm_sq[t] = |g_task_t|^2.
    """

    step: int
    domains: list[str]
    gram: np.ndarray  # [k, k]
    tasks: list[str] = field(default_factory=list)
    importance: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [T]
    task_inner: np.ndarray | None = None  # [k, T] (tasks="each")
    target_inner: np.ndarray | None = None  # [k]
    task_norm_sq: np.ndarray | None = None  # [T] or [1] for the combined target
    lr: float = 0.0  # the optimiser's learning rate at this step (DoGE scales its scores by it)
    sketch_dim: int = 0
    seconds: float = 0.0

    @property
    def norms(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.gram), 0.0, None))

    def report(self) -> dict[str, Any]:
        """A refits.jsonl-sized summary: norms and target alignments, not the k x k matrix."""
        out: dict[str, Any] = {"sketch_dim": self.sketch_dim, "seconds": self.seconds, "lr": self.lr,
                               "grad_norm": dict(zip(self.domains, self.norms.tolist()))}
        if self.target_inner is not None:
            out["target_inner"] = dict(zip(self.domains, self.target_inner.tolist()))
        return out
