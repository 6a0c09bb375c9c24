"""Synthetic observation tables from a known loss function (for tests and bench/laws.py).

Not evidence about real training runs: a table generated from law X says how well a fitter
recovers X, nothing about whether real losses follow X.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mixtrain.table import ObservationTable, make_table


def dirichlet_mixtures(k: int, n: int, *, concentration: float = 1.0, seed: int = 0) -> np.ndarray:
    """[n, k] mixtures drawn from Dirichlet(concentration * 1)."""
    return np.random.default_rng(seed).dirichlet(np.full(k, concentration), size=n)


def synthetic_table(
    loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    mixtures: np.ndarray,
    steps: Sequence[float],
    domains: Sequence[str],
    *,
    eval_domains: Sequence[str] | None = None,
    noise: float = 0.0,
    seed: int = 0,
    run_prefix: str = "run",
) -> ObservationTable:
    """One run per mixture, observed at every step; multiplicative Gaussian noise of relative sd `noise`."""
    mixtures = np.asarray(mixtures, dtype=float)
    mixtures = mixtures / mixtures.sum(axis=1, keepdims=True)
    steps = np.asarray(steps, dtype=float)
    n_runs, n_steps = mixtures.shape[0], steps.shape[0]
    W = np.repeat(mixtures, n_steps, axis=0)
    S = np.tile(steps, n_runs)
    L = np.asarray(loss_fn(W, S), dtype=float)
    if noise:
        L = L * np.exp(noise * np.random.default_rng(seed).standard_normal(L.shape))
    runs = [f"{run_prefix}{i:03d}" for i in range(n_runs) for _ in range(n_steps)]
    return make_table(domains, eval_domains or domains, runs, S, W, L, source=f"<synthetic {run_prefix}>")
