"""Proxy-sweep mixtures: the K mixtures short runs are trained on before a law is fitted.

    python -m mixtrain.fitting.proxy --data-dir DIR --num-runs 16 --out MIXDIR [--seed 0] [--concentration 10]
    python -m mixtrain.fitting.proxy --next K --table T.csv --out DIR [--pool POOL.csv]   # the next K: fitting/search.py

Place in the flow: prepared DIR -> **proxy.py** writes MIXDIR/mix-XX.yaml (each usable as
`mixing=manual mixing.weights_file=...`) -> a Hydra multirun of short runs -> collect.py ->
fit.py. `launch/proxy_sweep.sh` runs the whole chain in one command.

The mixtures, in order: uniform, natural, the entropy mixtures available for DIR (SE, CE, JE,
VNE, proportional normalisation; skipped with a note if entropy cannot be computed), then
seeded Dirichlet draws around the natural mixture (concentration c: Dirichlet(c * K * natural),
as in BiMix/RegMix sweeps), until `num_runs` distinct mixtures exist. Pure numpy + YAML.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from mixtrain.store.datadir import read_manifest, read_stats
from mixtrain.weights import normalize_weights


def proxy_mixtures(data_dir: str, num_runs: int, *, seed: int = 0, concentration: float = 10.0,
                   with_entropy: bool = True) -> list[tuple[str, dict[str, float]]]:
    """[(label, weights)] - `num_runs` distinct mixtures over the prepared domains."""
    domains = list(read_manifest(data_dir)["domains"])
    natural = normalize_weights({d: read_stats(data_dir, d)["num_train_tokens"] for d in domains}, domains)
    out: list[tuple[str, dict[str, float]]] = [("uniform", {d: 1 / len(domains) for d in domains}), ("natural", natural)]
    if with_entropy:
        try:
            from mixtrain.prepare.domain_entropy import entropy_weights, load_or_compute_entropies

            table = load_or_compute_entropies(data_dir, domains=domains, sample_tokens=2_000_000, seed=seed)
            for measure in ("se", "ce", "je", "vne"):
                out.append((f"entropy-{measure}", entropy_weights({d: table[d][measure] for d in domains})))
        except Exception as e:  # entropy is a bonus here; the Dirichlet draws still make a sweep
            print(f"[proxy] entropy mixtures skipped: {type(e).__name__}: {e}", file=sys.stderr)
    rng = np.random.default_rng(seed)
    alpha = concentration * len(domains) * np.array([natural[d] for d in domains]) + 1e-3
    while len(out) < num_runs:
        draw = rng.dirichlet(alpha)
        out.append((f"dirichlet-{len(out):02d}", normalize_weights(dict(zip(domains, draw.tolist())), domains)))
    unique: list[tuple[str, dict[str, float]]] = []
    for label, w in out:  # two rules can give the same mixture (e.g. equal-size domains)
        if not any(max(abs(w[d] - u[d]) for d in domains) < 1e-6 for _, u in unique):
            unique.append((label, w))
    return unique[:num_runs]


def write_mixtures(mixtures, out_dir: str) -> list[str]:
    import yaml

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, (label, weights) in enumerate(mixtures):
        path = os.path.join(out_dir, f"mix-{i:02d}-{label}.yaml")
        with open(path, "w") as f:
            f.write(f"# proxy mixture {i}: {label}\n")
            yaml.safe_dump({"weights": {d: float(w) for d, w in weights.items()}}, f, sort_keys=False)
        paths.append(path)
    return paths


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--next" or a.startswith("--next=") for a in argv):  # sequential search: fitting/search.py
        from mixtrain.fitting.search import main as search_main

        return search_main(argv)
    ap = argparse.ArgumentParser(prog="mixtrain proxy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--num-runs", type=int, default=16)
    ap.add_argument("--out", required=True, help="folder for mix-XX.yaml files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concentration", type=float, default=10.0)
    ap.add_argument("--no-entropy", action="store_true")
    args = ap.parse_args(argv)
    if args.num_runs < 2:
        ap.error("--num-runs must be >= 2")
    mixtures = proxy_mixtures(args.data_dir, args.num_runs, seed=args.seed, concentration=args.concentration,
                              with_entropy=not args.no_entropy)
    paths = write_mixtures(mixtures, args.out)
    for (label, w), path in zip(mixtures, paths):
        print(f"{path}  " + " ".join(f"{d}={v:.3f}" for d, v in w.items()), file=sys.stderr)
    print(",".join(paths))  # stdout: the list a Hydra sweep takes


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain proxy")
