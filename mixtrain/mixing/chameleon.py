"""Chameleon (Xie, Tonin, Cevher, ICML'25, arXiv 2505.24844): weights from kernel ridge leverage scores
of domain embeddings; training-free once the domains are embedded.

Place in the flow: embed/ (`mixtrain embed`: one vector per document; a domain's embedding is the
mean of its documents', embed/store.py) -> **chameleon.py** -> sampler/, once per run. Pure: numpy,
scipy and scikit-learn's KernelCenterer; no torch (the embeddings are computed outside mixing/).

The method, re-implemented from the paper's formulas (the official code has no licence):
    K = X X^T                      linear kernel of the k domain embeddings (rows of X)
    K_c = H K H                    centred (H = I - 11^T / k; sklearn's KernelCenterer)
    S_i = [K_c (K_c + lambda k I)^-1]_ii,   S <- S / sum(S)      ridge leverage scores
    pretraining:  w = softmax((1 / S) / tau)   (favours common domains; lambda = 10, tau = 5)
    fine-tuning:  w = softmax(S / tau)         (favours distinctive ones; tau = 0.2)
Adding a domain only adds a row to X: the weights are recomputed from the same embedder (the
fitted embedder of E: `mixtrain embed NEW --out E2 --fitted E`), nothing is retrained.
Without `mixing.embeddings`, train/chameleon_proxy.py trains Chameleon's short uniform proxy run
(or takes `mixing.embed_run=RUN`), embeds every domain's random training windows with it (the
paper's embedder) and sets `embeddings` before this strategy is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixtrain.errors import ConfigError
from mixtrain.mixing.base import DataContext, MixingStrategy
from mixtrain.mixing.strategy_registry import register_strategy

STAGE_TEMPERATURE = {"pretrain": 5.0, "finetune": 0.2}  # the official code's defaults


def leverage_scores(x: np.ndarray, lam: float = 10.0) -> np.ndarray:
    """Normalised ridge leverage scores S (sum 1) of the rows of `x` under the centred linear kernel."""
    from sklearn.preprocessing import KernelCenterer

    x = np.asarray(x, dtype=np.float64)
    k = len(x)
    if k < 3:
        raise ConfigError(f"chameleon needs at least 3 domains (got {k}): with 2 the centred kernel has rank 1 "
                          "and both domains get the same score")
    kc = KernelCenterer().fit_transform(x @ x.T)
    # K_c (K_c + lam k I)^-1 = (K_c + lam k I)^-1 K_c (they commute): solve instead of inverting
    s = np.diag(np.linalg.solve(kc + lam * k * np.eye(k), kc)).copy()
    if not np.all(np.isfinite(s)) or s.sum() <= 0:
        raise ConfigError("chameleon: the domain embeddings are all equal (every leverage score is 0); "
                          "embed the domains with an embedder that tells them apart")
    return s / s.sum()


def chameleon_weights(scores: np.ndarray, temperature: float, stage: str = "pretrain") -> np.ndarray:
    from scipy.special import softmax

    if stage not in STAGE_TEMPERATURE:
        raise ConfigError(f"mixing.stage={stage!r}: use pretrain or finetune")
    logits = (1.0 / scores) if stage == "pretrain" else scores
    return softmax(logits / float(temperature))


@register_strategy
class Chameleon(MixingStrategy):
    """Static weights from the leverage scores of the domains' mean embeddings (mixing.embeddings=E...)."""

    name = "chameleon"

    def __init__(self, embeddings: str | Sequence[str] | None = None, lam: float = 10.0,
                 temperature: float | None = None, stage: str = "pretrain", max_epochs: float | None = None,
                 embed_run: str | None = None, proxy_steps: int = 1000, proxy_model: dict | None = None,
                 proxy_dir: str | None = None, proxy_seed: int = 0, windows: int = 2048, window_tokens: int = 512):
        # embed_run .. window_tokens: read by train/chameleon_proxy.py, which trains/embeds the proxy and
        # sets `embeddings` before this class is built (mixing/ stays free of torch)
        super().__init__(max_epochs)
        if embeddings and embed_run:
            raise ConfigError(f"mixing.embeddings={embeddings} and mixing.embed_run={embed_run}: give one (embeddings: "
                              "vectors already computed; embed_run: the run whose hidden states embed the domains)")
        if int(proxy_steps) < 1 or int(windows) < 1 or int(window_tokens) < 2:
            raise ConfigError(f"mixing.proxy_steps={proxy_steps}, mixing.windows={windows}, mixing.window_tokens="
                              f"{window_tokens}: use at least 1 step, 1 window and 2 tokens per window")
        if stage not in STAGE_TEMPERATURE:
            raise ConfigError(f"mixing.stage={stage!r}: use pretrain or finetune")
        self.embeddings = embeddings
        self.lam = float(lam)
        self.stage = stage
        self.temperature = float(temperature) if temperature is not None else STAGE_TEMPERATURE[stage]
        self.scores: dict[str, float] | None = None

    def compute(self, ctx: DataContext) -> dict[str, float]:
        from mixtrain.mixing.domain_vectors import embeddings_paths, training_domain_means

        if not self.embeddings:
            raise ConfigError("mixing=chameleon has no mixing.embeddings: `python -m mixtrain.train mixing=chameleon` "
                              "embeds the domains with its own proxy run (train/chameleon_proxy.py); from Python, "
                              "call mixtrain.train.chameleon_proxy.with_domain_embeddings(config, data_dir) first "
                              "or give mixing.embeddings=E (`mixtrain embed RAW --out E`)")
        paths = embeddings_paths(self.embeddings, "chameleon")
        means = training_domain_means(paths, ctx.domains, "chameleon")
        scores = leverage_scores(np.stack([means[d] for d in ctx.domains]), self.lam)
        self.scores = {d: float(s) for d, s in zip(ctx.domains, scores)}
        weights = chameleon_weights(scores, self.temperature, self.stage)
        return {d: float(w) for d, w in zip(ctx.domains, weights)}
