"""Synthetic observation tables from a known loss function (for tests and bench/laws.py).

Not evidence about real training runs: a table generated from law X says how well a fitter
recovers X, nothing about whether real losses follow X.

Place in the flow: a known loss function (or a `World`) -> **synthetic** table (laws/table.py) -> a law's fit
and the optimisers (laws/optim/), scored against the known truth in tests/ and bench/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mixtrain.laws.table import ObservationTable, make_table


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


class World:
    """A random synthetic world with known, non-separable ground truth (bench/optimiser.py, tests).

    k domains; natural shares n ~ Dirichlet(2) with domain 0 a broad "web" domain (the largest share).
    Transfer: the effective data of domain i is u_i = sum_j T_ij r_j, T_ii = 1, T_ij ~ U(0.05, 0.3)
    inside clusters of 4, U(0, 0.03) across, and T_i0 ~ U(0.05, 0.2) (web helps every domain).
    Loss: L_i(r, s) = E_i + A_i (s u_i k / s_ref)^-a_i + rep_i * (1 - exp(-max(0, r_i / (4 n_i) - 1))) (repeating
    a small domain more than ~4x its natural share hurts, by at most rep_i), E ~ U(1.5, 3), A ~ U(0.5, 1.5), a ~ U(0.2, 0.45),
    rep ~ U(0.1, 0.4). Convex in r, so the true optimum (equal importance) is found by SLSQP.
    """

    def __init__(self, k: int, seed: int, s_ref: float = 2000.0) -> None:
        rng = np.random.default_rng(seed)
        self.k, self.s_ref = k, float(s_ref)
        n = np.sort(rng.dirichlet(np.full(k, 2.0)))[::-1]
        self.natural = n
        cluster = np.arange(k) % 4
        T = np.where(cluster[:, None] == cluster[None, :], rng.uniform(0.05, 0.3, (k, k)), rng.uniform(0, 0.03, (k, k)))
        T[:, 0] = rng.uniform(0.05, 0.2, k)
        np.fill_diagonal(T, 1.0)
        self.T = T
        self.E, self.A = rng.uniform(1.5, 3.0, k), rng.uniform(0.5, 1.5, k)
        self.a, self.rep = rng.uniform(0.2, 0.45, k), rng.uniform(0.1, 0.4, k)
        self.domains = [f"d{i:02d}" for i in range(k)]
        self._opt: np.ndarray | None = None

    def loss(self, W: np.ndarray, s: np.ndarray) -> np.ndarray:
        W = np.atleast_2d(W)
        u = np.maximum(W @ self.T.T, 1e-9)
        over = np.maximum(0.0, W / (4.0 * self.natural) - 1.0)
        return self.E + self.A * (np.asarray(s, float)[:, None] * u * self.k / self.s_ref) ** -self.a + self.rep * -np.expm1(-over)

    def mean_loss(self, r: np.ndarray, s: float | None = None) -> float:
        return float(self.loss(np.asarray(r, float)[None], np.array([s or self.s_ref]))[0].mean())

    def optimum(self) -> np.ndarray:
        """The true optimum at s_ref (equal importance): SLSQP from uniform and natural, best wins."""
        if self._opt is None:
            from scipy.optimize import minimize

            best = None
            for x0 in (np.full(self.k, 1.0 / self.k), self.natural):
                res = minimize(lambda r: self.mean_loss(np.clip(r, 0, None)), x0, method="SLSQP",
                               bounds=[(0, 1)] * self.k, options={"maxiter": 500, "ftol": 1e-13},
                               constraints=[{"type": "eq", "fun": lambda r: r.sum() - 1.0}])
                x = np.clip(res.x, 0, None)
                x /= x.sum()
                if best is None or self.mean_loss(x) < self.mean_loss(best):
                    best = x
            self._opt = best
        return self._opt

    def proxy_table(self, n_runs: int, *, noise: float = 0.005, seed: int = 0, anchors: bool = False) -> ObservationTable:
        """`n_runs` proxy runs at s_ref on mixtures ~ Dirichlet(c k n), c ~ logU(0.3, 3) per run (RegMix-style).
        `anchors`: the first two runs are uniform and natural instead, as `mixtrain proxy` writes every sweep
        (fitting/proxy.py); the Dirichlet draws are the same as without, minus the last two."""
        rng = np.random.default_rng(seed)
        c = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n_runs))
        W = np.array([rng.dirichlet(ci * self.k * self.natural + 1e-3) for ci in c])
        if anchors:
            W = np.vstack([np.full(self.k, 1.0 / self.k), self.natural, W[: n_runs - 2]])
        return synthetic_table(self.loss, W, [self.s_ref], self.domains, noise=noise, seed=seed + 1)
