"""Gaussian-process acquisition with BoTorch: qLogEI on the mixture (single fidelity), and ADMIRE-BayesOpt's
multi-fidelity rule where model size is the fidelity (the one module of laws/ that imports torch).

Place in the flow: observation table (+ each run's relative cost) -> **GP** (BoTorch `SingleTaskGP` /
`SingleTaskMultiFidelityGP`) -> the K pool rows to train next -> laws/optim/acquisition.py `next_batch`
(method `qei`) -> `mixtrain.fitting.search`. Also the multi-fidelity recommendation: the posterior-mean best
mixture at the largest size. torch/BoTorch are imported inside the functions, so `import mixtrain.laws`
stays torch-free.

Follows ADMIRE-BayesOpt (arXiv 2508.11551, official code xo28/ADMIRE-BayesOpt) where it can:
* input [w; fidelity], fidelity = the run's cost relative to the largest size's run (cost from the pool's
  `cost` column, else params x tokens); y = -(importance-weighted final validation loss);
* surrogate `SingleTaskMultiFidelityGP` with BoTorch's default kernel for it (the code does not set one);
* acquisition `qMultiFidelityMaxValueEntropy` made cost-aware by `InverseCostWeightedUtility` over an
  `AffineFidelityCostModel` (cost = fidelity, fixed cost 0), projected to fidelity 1;
* recommendation: argmax of the posterior mean at fidelity 1 over the candidate mixtures.
Single fidelity: `qLogExpectedImprovement` over the pool (ADMIRE: qLogEI, q = 1). Deviations (docs/search.md):
batches of q > 1 chosen greedily by BoTorch's `optimize_acqf_discrete` (pending points fantasised), not
q = 1; outcomes standardised (`Standardize`); weights enter as given (they lie in [0, 1] already).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from mixtrain.laws.table import ObservationTable

__all__ = ["GP_CHOICES", "Fidelity", "qei_batch", "mf_posterior", "mf_recommend"]

GP_CHOICES = 2000  # pool rows the acquisition scores (20,000 took 78 s for q = 6 on 2 CPU cores; 2,000 ~8 s)


@dataclass
class Fidelity:
    """Relative cost in (0, 1] (1: a run at the largest size) of every table run (`runs`, final-row order)
    and every pool row (`pool`)."""

    runs: np.ndarray
    pool: np.ndarray


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread for the call: a GP on a few hundred runs gains nothing from threads, and on a
    shared 2-core machine torch's default pool made one 19-run fit take 20 s instead of 0.3 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _single_threaded(fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        with _one_thread():
            return fn(*args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _tensors(table: ObservationTable, importance: np.ndarray, fidelity: Fidelity | None):
    import torch

    fin = table.final_rows()
    X = table.W[fin]
    if fidelity is not None:
        X = np.hstack([X, fidelity.runs[:, None]])
    y = -(table.L[fin] @ importance)
    return torch.tensor(X, dtype=torch.float64), torch.tensor(y[:, None], dtype=torch.float64)


def _fit_gp(table: ObservationTable, importance: np.ndarray, fidelity: Fidelity | None, seed: int):
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP, SingleTaskMultiFidelityGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    X, Y = _tensors(table, importance, fidelity)
    if fidelity is None:
        model = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
    else:
        model = SingleTaskMultiFidelityGP(X, Y, data_fidelities=[X.shape[1] - 1], outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model, X, Y


@_single_threaded
def qei_batch(table: ObservationTable, pool: np.ndarray, q: int, *, step: float, importance: np.ndarray,
              free: np.ndarray, seed: int = 0, fidelity: Fidelity | None = None) -> tuple[list[int], str]:
    """(q indices into `pool` chosen by the GP acquisition, the reason). `step` is unused: the GP models the
    final-step loss of the table's runs, which share one length (a proxy sweep's)."""
    import torch
    from botorch.optim import optimize_acqf_discrete

    idx = np.flatnonzero(free)
    if q <= 0 or not idx.size:
        return [], ""
    if idx.size > GP_CHOICES:  # greedy q-batch cost grows with q x choices: a seeded subsample of the pool
        idx = np.sort(np.random.default_rng(seed).choice(idx, GP_CHOICES, replace=False))
    q = min(q, idx.size)
    model, X, Y = _fit_gp(table, importance, fidelity, seed)
    if fidelity is None:
        from botorch.acquisition.logei import qLogExpectedImprovement

        acq = qLogExpectedImprovement(model, best_f=Y.max())
        choices = torch.tensor(pool[idx], dtype=torch.float64)
        why = "qei: BoTorch qLogEI from a GP on the mixture"
    else:
        acq = _mf_acquisition(model, pool, fidelity, X.shape[1] - 1)
        choices = torch.tensor(np.hstack([pool[idx], fidelity.pool[idx, None]]), dtype=torch.float64)
        why = "qei (multi-fidelity): cost-weighted max-value entropy (ADMIRE)"
    picked, _ = optimize_acqf_discrete(acq, q=q, choices=choices, unique=True)
    out = []
    for row in picked.numpy():
        j = int(np.argmin(np.abs(choices.numpy() - row[None]).sum(axis=1)))
        out.append(int(idx[j]))
    return out, why


def _mf_acquisition(model, pool: np.ndarray, fidelity: Fidelity, fid_col: int):
    import torch
    from botorch.acquisition.cost_aware import InverseCostWeightedUtility
    from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
    from botorch.acquisition.utils import project_to_target_fidelity
    from botorch.models.cost import AffineFidelityCostModel

    cost_model = AffineFidelityCostModel(fidelity_weights={fid_col: 1.0}, fixed_cost=0.0)
    top = np.hstack([pool, np.ones((len(pool), 1))])
    return qMultiFidelityMaxValueEntropy(
        model, candidate_set=torch.tensor(top, dtype=torch.float64), num_fantasies=16,
        cost_aware_utility=InverseCostWeightedUtility(cost_model=cost_model),
        project=lambda X: project_to_target_fidelity(X=X, target_fidelities={fid_col: 1.0}, d=fid_col + 1))


@_single_threaded
def mf_posterior(table: ObservationTable, X: np.ndarray, *, importance: np.ndarray, fidelity: Fidelity | None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and sd of the mean loss at the largest size (fidelity 1) of the mixtures X [n, k], from one GP fit."""
    import torch

    model, _, _ = _fit_gp(table, importance, fidelity, seed)
    Xc = X if fidelity is None else np.hstack([X, np.ones((len(X), 1))])
    with torch.no_grad():
        post = model.posterior(torch.tensor(Xc, dtype=torch.float64))
        mean, sd = post.mean.squeeze(-1).numpy(), post.variance.clamp_min(0).sqrt().squeeze(-1).numpy()
    return -mean, sd


def mf_recommend(table: ObservationTable, candidates: np.ndarray, *, importance: np.ndarray, fidelity: Fidelity | None,
                 seed: int = 0) -> tuple[int, float, float]:
    """(index into `candidates`, posterior mean and sd of the mean loss at fidelity 1) of the candidate with the
    lowest posterior-mean loss at the largest size (ADMIRE's recommendation); fidelity None: a single-fidelity GP."""
    mean, sd = mf_posterior(table, candidates, importance=importance, fidelity=fidelity, seed=seed)
    i = int(np.argmin(mean))
    return i, float(mean[i]), float(sd[i])
