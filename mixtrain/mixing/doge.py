"""DoGE (Fan, Pagliardini, Jaggi 2024, "DoGE: Domain Reweighting with Generalization Estimation",
ICML; arXiv 2310.15393): weights by a mirror-descent step on each domain's gradient alignment with
the target, as the authors' code (Olivia-fsm/DoGE, src/trainer.py `update_domain_weights`) does.

Place in the flow: declares a `gradient_probe` (mixing/gradient_probe.py) -> at each refit the
controller (mixtrain/train/mixing_controller.py) has mixtrain/train/grad_probe.py measure the Gram
of the per-domain gradients and their inner products with the target -> `update()` -> sampler/.
Pure numpy: the strategy sees inner products only.

One DoGE step (the code's, per refit here):
    S_ij = <g_i, g_j> (each g clipped to norm `clip_norm`, the code's max_grad_norm, as a rescale)
    universal (targets = the training domains): W_i = sum_j S_ij - S_ii
    ood (targets = the validation target, `target.importance` / eval-only domains): W_i = <g_i, g_target>
    score_i = lr_t W_i / (mean_i |g_i| + 1e-6), clipped to [lr_t dw_min, lr_t dw_max]
    log w <- log w + score / mu ; w = softmax ; w = (1 - eps) w + eps / k
The paper's output is the average of w over all updates (`output_weights`, written by the controller
to RUN/weights.yaml for mixing=manual). Deviations (docs/online.md): the paper reweights the
gradients of one batch by w; mixtrain resamples by w, every `refit_every_n_steps` steps, on a
probe batch of `samples_per_domain` blocks per domain; inner products are CountSketch estimates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtrain.mixing.base import DataContext, MixHistory, MixingStrategy
from mixtrain.mixing.gradient_probe import ProbeResult, ProbeSpec
from mixtrain.mixing.static import prior_weights
from mixtrain.mixing.strategy_registry import register_strategy

TARGETS = ("universal", "ood")


def doge_scores(gram: np.ndarray, target_inner: np.ndarray | None, *, lr: float, target: str,
                clip_norm: float | None, target_norm_sq: float | None = None, dw_min: float = 0.0,
                dw_max: float = 5.0) -> np.ndarray:
    """DoGE's clipped, lr-scaled, norm-normalised alignment score per domain (steps 1-3 of the code)."""
    gram = np.asarray(gram, dtype=np.float64)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    c = np.ones_like(norms)
    if clip_norm:  # clip_grad_norm_ on each domain's gradient: a rescale by min(1, clip / |g|)
        c = np.minimum(1.0, clip_norm / np.maximum(norms, 1e-12))
    clipped = gram * np.outer(c, c)
    if target == "universal":
        W = clipped.sum(axis=1) - np.diag(clipped)
    else:
        if target_inner is None:
            raise ValueError("doge target=ood needs the probe's target gradient (tasks='target')")
        ct = 1.0
        if clip_norm and target_norm_sq is not None:
            ct = min(1.0, clip_norm / max(float(np.sqrt(max(target_norm_sq, 0.0))), 1e-12))
        W = np.asarray(target_inner, dtype=np.float64) * c * ct
    avg_norm = float((norms * c).mean())
    scores = lr * W / (avg_norm + 1e-6)
    return np.clip(scores, lr * dw_min, lr * dw_max)


def doge_step(weights: np.ndarray, scores: np.ndarray, *, mu: float, smoothing: float = 0.0) -> np.ndarray:
    """log w + score / mu, softmax, smoothed toward uniform (step 4 of the code)."""
    logits = np.log(np.clip(weights, 1e-300, None)) + scores / mu
    logits -= logits.max()
    w = np.exp(logits)
    w /= w.sum()
    return (1.0 - smoothing) * w + smoothing / len(w)


@register_strategy
class DoGE(MixingStrategy):
    """DoGE's mirror-descent weights from sketched gradient alignment (see the module doc)."""

    name = "doge"

    def __init__(self, refit_every_n_steps: int = 10, target: str = "universal", mu: float = 0.01,
                 clip_norm: float | None = 5.0, dw_min: float = 0.0, dw_max: float = 5.0, smoothing: float = 0.0,
                 lr_scale: str = "optimizer", prior: str = "uniform", samples_per_domain: int = 8,
                 target_samples: int = 8, sketch_dim: int = 8192, max_epochs: float | None = None):
        super().__init__(max_epochs)
        if target not in TARGETS:
            raise ValueError(f"mixing.target={target!r}: DoGE's target is universal (the training domains) or ood "
                             "(the validation target: target.importance / eval_only_domains)")
        if lr_scale not in ("optimizer", "none"):
            raise ValueError(f"mixing.lr_scale={lr_scale!r}: optimizer (the code's lr_t) or none (lr_t = 1)")
        if not mu > 0:
            raise ValueError(f"mixing.mu={mu}: DoGE's Bregman coefficient must be > 0")
        self.refit_every_n_steps, self.target, self.mu = int(refit_every_n_steps), target, float(mu)
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.dw_min, self.dw_max, self.smoothing = float(dw_min), float(dw_max), float(smoothing)
        self.lr_scale, self.prior = lr_scale, prior
        self.gradient_probe = ProbeSpec(samples_per_domain=int(samples_per_domain), target_samples=int(target_samples),
                                        sketch_dim=int(sketch_dim), tasks="none" if target == "universal" else "target")
        self._weights: dict[str, float] | None = None
        self._sum: dict[str, float] = {}
        self._updates = 0
        self.last_fit_report: dict[str, Any] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        return prior_weights(self.prior, 1.0, ctx)

    def update(self, history: MixHistory) -> dict[str, float] | None:
        probe: ProbeResult | None = history.probe
        if probe is None:
            self.last_fit_report = {"phase": "skipped", "reason": "no gradient probe in the history"}
            return None
        domains = list(probe.domains)
        if not np.all(np.isfinite(probe.gram)) or (probe.target_inner is not None
                                                   and not np.all(np.isfinite(probe.target_inner))):
            self.last_fit_report = {"phase": "skipped", "reason": "non-finite gradient inner products"}
            return None
        base = self._weights or history.scheduled_weights or history.weights
        w = np.array([float(base[d]) for d in domains])
        lr = probe.lr if self.lr_scale == "optimizer" else 1.0
        norm_sq = None if probe.task_norm_sq is None else float(probe.task_norm_sq[0])
        scores = doge_scores(probe.gram, probe.target_inner, lr=lr, target=self.target, clip_norm=self.clip_norm,
                             target_norm_sq=norm_sq, dw_min=self.dw_min, dw_max=self.dw_max)
        new = doge_step(w / w.sum(), scores, mu=self.mu, smoothing=self.smoothing)
        self._weights = dict(zip(domains, new.tolist()))
        self._updates += 1
        for d, v in self._weights.items():
            self._sum[d] = self._sum.get(d, 0.0) + v
        self.last_fit_report = {"phase": "fit", "scores": dict(zip(domains, scores.tolist())), "lr": lr,
                                "updates": self._updates}
        return dict(self._weights)

    def output_weights(self) -> dict[str, float] | None:
        """DoGE's output: the average of the weights over all its updates (the paper's proxy output)."""
        if not self._updates:
            return None
        return {d: v / self._updates for d, v in self._sum.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self._weights, "sum": dict(self._sum), "updates": self._updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._weights = dict(state["weights"]) if state.get("weights") else None
        self._sum = dict(state.get("sum") or {})
        self._updates = int(state.get("updates") or 0)
