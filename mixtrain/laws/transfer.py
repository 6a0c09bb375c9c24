"""Transfer-aware BiMix (mixtrain's own law): BiMix on an *effective* own proportion.

    L_i(r, s) = u_i^(-alpha_i) * (B_i s^(-beta_i) + C_i),
    u_i = r_i + sum_{j != i} tau_ij r_j + eps,   0 <= tau_ij <= 1

Why: BiMix predicts infinite loss for a domain at weight 0 because nothing but its own data
helps it; real losses stay finite because other domains transfer. tau_ij is the fraction of a
token of domain j that counts as a token of domain i. With tau = 0 this is exactly bimix.

Data efficiency (few runs): tau is fitted in two stages per eval domain.
1. Uniform transfer, 5 parameters per domain: tau_ij = tau_i for every j != i, i.e.
   u_i = r_i + tau_i (1 - r_i) + eps. Needs >= 3 distinct own weights (alpha vs tau_i).
2. (`full`, default on) every tau_ij free, shrunk towards the domain's mean tau by a Gaussian
   prior of sd `prior_sd` (default 0.2): penalty (sigma^2 / prior_sd^2) * sum_j (tau_ij -
   mean_j tau_ij)^2, where sigma^2 is the per-run residual variance of stage 1 (an
   empirical-Bayes scale, so the penalty needs no tuning to the loss noise). Stage 2 starts
   from stage 1. prior_sd = 0.2 was chosen on synthetic sweeps (bench/laws.py generators,
   seeds 100-101, 20 domains x 16 runs; the bench reports seeds 0-2): 0.02 / 0.1 / 0.2 / 0.5
   gave held-out Spearman 0.85 / 0.91 / 0.93 / 0.93, but 0.5 overfits tau and its optimum
   was ~1% worse than 0.2's. With few runs the shrinkage keeps tau near uniform; with many runs the data
   override it. `full=False` stops after stage 1.
Fit: least squares on log L (trf, analytic Jacobian, bounds as bimix plus tau in [0, 1]),
every run counts once; `inits` starts in stage 1 (each with tau_i in {0, 0.1}).
Step handling, A_i = 1, one-step (mixture-only) fits and eps are as in bimix.
Optimum: the objective sum_i w_i K_i u_i(r)^-alpha_i is convex in r (convex decreasing power
of an affine map), so SLSQP from a few starts finds the global optimum (no closed form: laws/optim/slsqp.py's
generic `box_optimum`).

Place in the flow: observation table (laws/table.py) -> **transfer** fit (laws/base.py; registered as `transfer` by
`@register_law`, laws/law_registry.py) -> predict / law.json -> the optimisers (laws/optim/) -> weights.
"""

from __future__ import annotations

import math

import numpy as np
from mixtrain.laws.base import MixingLaw, multistart_least_squares, own_indices, run_weights, step_mode
from mixtrain.laws.bimix import ALPHA_MAX, BETA_MAX, LOG_FLOOR, LOG_MAX, initial_step_guesses, step_part
from mixtrain.laws.law_registry import register_law
from mixtrain.laws.table import ObservationTable


@register_law(order=40)
class TransferLaw(MixingLaw):
    name = "transfer"
    formula = "L_i = u_i^-alpha_i * (B_i s^-beta_i + C_i),  u_i = r_i + sum_{j!=i} tau_ij r_j + eps"
    defaults = {"eps": 1e-3, "prior_sd": 0.2, "full": True, "inits": 4}

    def n_params(self) -> int:
        m, k = len(self.eval_domains), len(self.train_domains)
        step = 1 if self._single else 3
        return m * (1 + step + ((k - 1) if self.config["full"] else 1))

    def mixture_params(self) -> int:
        return 3  # level, alpha and the uniform transfer tau_i; the full tau_ij are shrunk towards it

    @property
    def _single(self) -> bool:
        return bool(self.params is not None and self.params["step_free"] > 0)

    def _check(self, table: ObservationTable) -> None:
        own = own_indices(self.name, table.train_domains, table.eval_domains)
        table.require(law=self.name, min_runs=3, min_mixtures=3, why="alpha and the transfer level need >= 3 own weights")
        for j, i in enumerate(own):
            if np.unique(np.round(table.W[:, i], 12)).shape[0] < 3:
                raise ValueError(
                    f"{self.name}: domain {table.eval_domains[j]!r} takes fewer than 3 distinct weights over the "
                    "runs; alpha and its transfer level cannot be separated. Add runs or use law 'bimix'."
                )
        step_mode(self.name, table)

    def _fit_domain(self, y, ro, G, x, omega, single, p0s, lam, n_tau):
        """Least squares for one domain. Params: [alpha, (lb, beta, lc) | lK, tau (n_tau)]."""
        ns = 1 if single else 3
        eps = float(self.config["eps"])
        q = G.shape[1]
        pen = None
        if lam > 0 and q > 1:
            pen = math.sqrt(lam) * (np.eye(q) - 1.0 / q)

        def parts(p):
            tau = p[1 + ns :]
            u = ro + G @ tau + eps
            if single:
                z, dz = np.full_like(u, p[1]), [np.ones_like(u)]
            else:
                z, db, dbeta, dc = step_part(p[1], p[2], p[3], x)
                dz = [db, dbeta, dc]
            return u, z, dz

        def resid(p):
            u, z, _ = parts(p)
            r = omega * (-p[0] * np.log(u) + z - y)
            return np.concatenate([r, pen @ p[1 + ns :]]) if pen is not None else r

        def jac(p):
            u, _, dz = parts(p)
            J = omega[:, None] * np.column_stack([-np.log(u)] + dz + [(-p[0] / u)[:, None] * G])
            if pen is not None:
                J = np.vstack([J, np.hstack([np.zeros((q, 1 + ns)), pen])])
            return J

        floor = float(y.min()) - LOG_FLOOR
        lo = [0.0] + ([-LOG_MAX] if single else [floor, 0.0, floor]) + [0.0] * q
        hi = [ALPHA_MAX] + ([LOG_MAX] if single else [LOG_MAX, BETA_MAX, LOG_MAX]) + [1.0] * q
        best = multistart_least_squares(resid, jac, p0s, lo, hi, max_nfev=100 * len(lo))
        return best

    def _fit(self, table: ObservationTable, notes: list[str]) -> None:
        eps, inits = float(self.config["eps"]), int(self.config["inits"])
        full, prior_sd = bool(self.config["full"]), float(self.config["prior_sd"])
        own = own_indices(self.name, table.train_domains, table.eval_domains)
        k, m = len(table.train_domains), len(own)
        single = step_mode(self.name, table) == "single"
        if single:
            notes.append(f"one distinct step ({table.steps[0]:g}): fitted L_i = K_i u_i^-alpha_i only; predictions ignore the step")
        omega = run_weights(table)
        s_ref = float(table.steps.max())
        x = np.log(table.steps / s_ref)
        alpha, B, beta, C = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
        T = np.zeros((m, k))
        sig2s = []
        for i, o in enumerate(own):
            d = table.eval_domains[i]
            y = np.log(table.L[:, i])
            ro = table.W[:, o]
            others = np.array([j for j in range(k) if j != o], dtype=np.int64)
            G1 = table.W[:, others].sum(axis=1, keepdims=True)
            # stage 1 starts: bimix-like (alpha from a linear fit) x tau in {0, 0.1}
            lu = np.log(ro + eps)
            X = np.stack([np.ones_like(x), lu, x], axis=1) * omega[:, None]
            a0 = float(np.clip(-np.linalg.lstsq(X, y * omega, rcond=None)[0][1], 0.01, 3.0))
            p0s = []
            for tau0 in (0.0, 0.1):
                lu0 = np.log(ro + tau0 * G1[:, 0] + eps)
                if single:
                    p0s.append([a0, float(np.mean(y + a0 * lu0)), tau0])
                else:
                    p0s += [[a0, *g, tau0] for g in initial_step_guesses(y + a0 * lu0, x, inits)]
            best = self._fit_domain(y, ro, G1, x, omega, single, p0s, 0.0, 1)
            if best is None:
                raise ValueError(f"{self.name}: stage-1 fit failed for domain {d!r} from every start; check its losses")
            p = best.x
            taus = np.full(k - 1, p[-1])
            if full and k > 2:
                dof = max(table.n_runs - len(p), 1)
                sig2 = 2.0 * best.cost / dof
                sig2s.append(sig2)
                lam = sig2 / prior_sd**2
                best2 = self._fit_domain(y, ro, table.W[:, others], x, omega, single,
                                         [np.concatenate([p[:-1], taus])], lam, k - 1)
                if best2 is None:
                    raise ValueError(f"{self.name}: stage-2 (full transfer) fit failed for domain {d!r}; try full=False")
                p = best2.x
                taus = p[len(p) - (k - 1) :]
            alpha[i] = p[0]
            if single:
                C[i] = math.exp(p[1])
            else:
                B[i] = math.exp(p[1] + p[2] * math.log(s_ref))
                beta[i], C[i] = p[2], math.exp(p[3])
            T[i, others] = taus
            T[i, o] = 1.0
        if full and k > 2:
            notes.append(f"tau shrunk towards each domain's mean: prior sd {prior_sd}, stage-1 residual variance per run "
                         f"median {float(np.median(sig2s)):.3g}")
        self.params = {"alpha": alpha, "B": B, "beta": beta, "C": C, "T": T, "own": own.astype(float),
                       "step_free": np.array(float(single))}

    def _K(self, steps: np.ndarray) -> np.ndarray:
        p = self.params
        if self._single:
            return np.broadcast_to(p["C"], (steps.shape[0], p["C"].shape[0]))
        return p["B"][None] * steps[:, None] ** (-p["beta"][None]) + p["C"][None]

    def _predict(self, W: np.ndarray, steps: np.ndarray) -> np.ndarray:
        p = self.params
        u = W @ p["T"].T + float(self.config["eps"])
        return u ** (-p["alpha"][None]) * self._K(steps)

    def _predict_grad(self, r: np.ndarray, step: float):
        p = self.params
        u = p["T"] @ r + float(self.config["eps"])
        L = u ** (-p["alpha"]) * self._K(np.array([step]))[0]
        return L, (-p["alpha"] * L / u)[:, None] * p["T"]
