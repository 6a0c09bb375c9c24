"""Benchmark of the fitted mixing laws on synthetic proxy sweeps with cross-domain transfer.

    python bench/laws.py [--domains 20] [--runs 16] [--steps 50] [--seeds 3] [--laws bimix,exp,...]

SYNTHETIC EVIDENCE ONLY: the losses come from formulas below, not from training runs, so these
numbers say how the fitters behave on such data, not which law real losses follow.

Generator (per seed): k domains in 4 clusters; transfer matrix T with T_ii = 1, T_ij ~ U(0.1,
0.4) inside a cluster and U(0, 0.03) across; effective proportion u = T r (never 0 when other
domains have weight). Two loss families, each with multiplicative Gaussian noise of sd
`--noise` (0.2%):
  sep  L_i = u_i^-alpha_i (B_i s^-beta_i + C_i)  alpha~U(.05,.3) beta~U(.3,.7) C~U(1.5,3)
       B_i 100^-beta_i ~ U(2,6). This is the `transfer` law's family (with a full tau), so it
       favours that law; bimix is the tau = 0 special case.
  add  L_i = E_i + A_i (s u_i k / s_max)^-a_i (Chinchilla-like loss in effective tokens of the
       domain)  E~U(1.5,3) A~U(.5,1.5) a~U(.2,.45). In none of the laws' families: the
       irreducible part does not depend on the mixture, and weights and steps interact.
Training sweep: `--runs` mixtures ~ Dirichlet(1), observed at `--steps` steps evenly spaced in
[100, 5000]. Held-out: 64 other Dirichlet(1) mixtures, noise-free loss at step 5000.

Measured per law (means over seeds):
  fit_s     wall time of law.fit(table, cv_folds=0) on the full table (goal < 5 s)
  fit%      in-sample: the full-table fit's relative error on the runs' final (step 5000) losses
  extrap%   fit on each run's first half of steps (<= 2500), predict its final (step 5000) loss;
            mean relative error vs the observed (noisy) final loss over runs and domains (goal < 0.5%)
  rho       held-out mixtures: Spearman of predicted vs true final loss per domain, mean over domains
  ho_mre%   held-out mixtures: mean relative error of the final loss
  mrho      held-out mixtures: Spearman of predicted vs true mean loss (what the optimiser targets)
  pick%     held-out mixtures: top-1 regret, true mean loss of the mixture the law ranks best vs the
            truly best of the 64, relative (0: the law picks the best)
  regret%   true mean loss at the law's optimum (step 5000, equal importance, no floor, default
            support limits: margin 0.05, TV trust radius 0.25) relative to the best of the training
            mixtures (negative: better than every proxy run); tv = its TV to the nearest proxy
  free%     the same for the unconstrained optimum (support_margin=None, trust_radius=None)
Final line: `laws summary: ...`.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def make_generator(kind: str, k: int, seed: int):
    rng = np.random.default_rng(1000 + seed)
    cluster = np.arange(k) % 4
    same = cluster[:, None] == cluster[None, :]
    T = np.where(same, rng.uniform(0.1, 0.4, (k, k)), rng.uniform(0.0, 0.03, (k, k)))
    np.fill_diagonal(T, 1.0)
    if kind == "sep":
        alpha, beta = rng.uniform(0.05, 0.3, k), rng.uniform(0.3, 0.7, k)
        C = rng.uniform(1.5, 3.0, k)
        B = rng.uniform(2.0, 6.0, k) * 100.0**beta

        def loss(W, s):
            return (W @ T.T) ** -alpha * (B * s[:, None] ** -beta + C)
    elif kind == "add":
        E, A, a = rng.uniform(1.5, 3.0, k), rng.uniform(0.5, 1.5, k), rng.uniform(0.2, 0.45, k)

        def loss(W, s):
            return E + A * (s[:, None] * (W @ T.T) * k / 5000.0) ** -a
    else:
        raise ValueError(kind)
    return loss


def run_one(law_spec: str, kind: str, k: int, n_runs: int, n_steps: int, noise: float, seed: int) -> dict:
    from mixtrain.laws import make_law, spearman
    from mixtrain.laws.cross_validation import selection_metrics
    from mixtrain.laws.optim.slsqp import optimize, solve
    from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table

    name, _, opts = law_spec.partition(":")
    config = {}
    for kv in filter(None, opts.split(";")):
        key, val = kv.split("=")
        config[key] = {"true": True, "false": False}.get(val.lower(), val) if val.lower() in ("true", "false") else float(val)
    domains = [f"d{i:02d}" for i in range(k)]
    loss = make_generator(kind, k, seed)
    steps = np.linspace(100, 5000, n_steps)
    train_mix = dirichlet_mixtures(k, n_runs, seed=seed)
    table = synthetic_table(loss, train_mix, steps, domains, noise=noise, seed=seed)
    out: dict = {}
    try:
        t0 = time.perf_counter()
        law = make_law(name, **config).fit(table, cv_folds=0)
        out["fit_s"] = time.perf_counter() - t0
    except ValueError as e:
        return {"error": str(e).split(".")[0]}
    final = table.final_rows()
    out["fit"] = float(np.mean(np.abs(law.predict(table.W[final], table.steps[final]) - table.L[final]) / table.L[final]))
    # step extrapolation: first half of every run's steps
    half = table.subset(table.steps <= steps[(n_steps - 1) // 2] + 1e-9)
    try:
        law_half = make_law(name, **config).fit(half, cv_folds=0)
        pred = law_half.predict(table.W[final], table.steps[final])
        out["extrap"] = float(np.mean(np.abs(pred - table.L[final]) / table.L[final]))
    except ValueError as e:
        out["extrap_error"] = str(e)
    # held-out mixtures
    test_mix = dirichlet_mixtures(k, 64, seed=10_000 + seed)
    s_end = np.full(64, steps[-1])
    truth = loss(test_mix, s_end)
    pred = law.predict(test_mix, s_end)
    out["rho"] = float(np.nanmean([spearman(pred[:, j], truth[:, j]) for j in range(k)]))
    out["ho_mre"] = float(np.mean(np.abs(pred - truth) / truth))
    sel = selection_metrics(pred, truth, np.full(k, 1.0 / k))
    out["mrho"] = sel["mean_loss_spearman"]
    out["pick"] = sel["regret_top1"] / float(truth.mean(axis=1).min())
    # optimum, with the default support limits and without
    best_proxy = float(loss(train_mix, np.full(n_runs, steps[-1])).mean(axis=1).min())
    opt = solve(law, steps[-1])
    r = np.array(list(opt.weights.values()))
    out["regret"] = float(loss(r[None], s_end[:1]).mean()) / best_proxy - 1.0
    out["tv"] = opt.tv_to_nearest
    r = np.array(list(optimize(law, steps[-1], support_margin=None, trust_radius=None).values()))
    out["free"] = float(loss(r[None], s_end[:1]).mean()) / best_proxy - 1.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", type=int, default=20)
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--noise", type=float, default=0.002)
    ap.add_argument("--generators", default="sep,add")
    ap.add_argument("--laws", default="bimix,exp,exp:ridge=0.01,loglinear,transfer:full=false,transfer",
                    help="law[:option=value;...] list")
    args = ap.parse_args()
    print(f"synthetic: {args.domains} domains x {args.runs} runs x {args.steps} steps, noise {args.noise:.1%}, "
          f"seeds {args.seeds} (numbers are means over seeds)")
    header = (f"{'generator':<9} {'law':<22} {'fit_s':>6} {'fit%':>6} {'extrap%':>8} {'rho':>6} {'ho_mre%':>8} "
              f"{'mrho':>6} {'pick%':>6} {'regret%':>8} {'tv':>5} {'free%':>7}")
    print(header)
    print("-" * len(header))
    summary: dict[tuple[str, str], dict] = {}
    for kind in args.generators.split(","):
        for spec in args.laws.split(","):
            results = [run_one(spec, kind, args.domains, args.runs, args.steps, args.noise, s) for s in range(args.seeds)]
            errors = [r["error"] for r in results if "error" in r]
            if errors:
                print(f"{kind:<9} {spec:<22} refused: {errors[0]}")
                continue
            m = {key: float(np.mean([r[key] for r in results if key in r]))
                 for key in ("fit_s", "fit", "extrap", "rho", "ho_mre", "mrho", "pick", "regret", "tv", "free")}
            m["fit_s_max"] = max(r["fit_s"] for r in results)
            summary[(kind, spec)] = m
            print(f"{kind:<9} {spec:<22} {m['fit_s']:6.2f} {100 * m['fit']:6.3f} {100 * m['extrap']:8.3f} {m['rho']:6.3f} "
                  f"{100 * m['ho_mre']:8.3f} {m['mrho']:6.3f} {100 * m['pick']:6.2f} {100 * m['regret']:8.3f} "
                  f"{m['tv']:5.2f} {100 * m['free']:7.3f}")
    if not summary:
        return
    worst_fit = max(m["fit_s_max"] for m in summary.values())
    parts = [f"max fit_s {worst_fit:.2f} (goal < 5)"]
    for kind in args.generators.split(","):
        rows = {spec: m for (g, spec), m in summary.items() if g == kind}
        if not rows:
            continue
        best_ex = min(rows, key=lambda s: rows[s]["extrap"])
        best_rho = max(rows, key=lambda s: rows[s]["rho"])
        parts.append(f"{kind}: best extrap {100 * rows[best_ex]['extrap']:.3f}% ({best_ex}, goal < 0.5%), "
                     f"best rho {rows[best_rho]['rho']:.3f} ({best_rho}), "
                     f"bimix rho {rows.get('bimix', {}).get('rho', float('nan')):.3f}")
    print("laws summary: " + "; ".join(parts))


if __name__ == "__main__":
    main()
