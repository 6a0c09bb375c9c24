"""The rounds of a sequential proxy sweep at a glance: the predicted best mixture's loss and its interval after
each round, next to uniform and the best run so far.

    python -m mixtrain.fitting.search_rounds OUT [--out OUT/rounds.png]

Place in the flow: `launch/proxy_sweep.sh ROUNDS=3 PER_ROUND=8` writes OUT/round-R/weights.yaml (the
`proposal:` block of `mixtrain fit --optimize`: predicted mean loss of the proposal, uniform and the best
run, each with its bootstrap interval) after every round -> **search_rounds** -> one PNG and a table on stdout.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

from mixtrain.errors import DataError


def read_rounds(out_dir: str) -> list[dict]:
    """[{round, runs, proposal: (v, lo, hi), uniform: (...), best_run: (...), chosen}] for every OUT/round-*/weights.yaml."""
    import yaml

    rows = []
    for path in sorted(glob.glob(os.path.join(out_dir, "round-*", "weights.yaml")),
                       key=lambda p: int(re.findall(r"round-(\d+)", p)[-1])):
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        prop = doc.get("proposal")
        if not isinstance(prop, dict) or "predicted_mean_loss" not in prop:
            raise DataError(f"{path}: no 'proposal: predicted_mean_loss' block (written by `mixtrain fit --optimize` "
                            "with the default sampled optimiser); rerun that round's fit")
        pred = prop["predicted_mean_loss"]

        def triple(key):
            v = pred.get(key)
            return None if v is None else (v["full_fit"], v["lo"], v["hi"])
        run_key = next((k for k in pred if k.startswith("run ")), None)
        n_runs = prop.get("n_runs")
        rows.append({"round": int(re.findall(r"round-(\d+)", path)[-1]), "proposal": triple("proposal"),
                     "uniform": triple("uniform"), "best_run": triple(run_key) if run_key else None,
                     "chosen": prop.get("chosen"), "runs": n_runs, "path": path})
    if not rows:
        raise DataError(f"{out_dir}: no round-*/weights.yaml (run launch/proxy_sweep.sh with ROUNDS >= 1 first)")
    return rows


def plot_rounds(rows: list[dict], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, style in (("proposal", "o-"), ("uniform", "s--"), ("best_run", "^:")):
        pts = [(r["round"], r[key]) for r in rows if r[key] is not None]
        if not pts:
            continue
        x = [p[0] for p in pts]
        v = [p[1][0] for p in pts]
        err = [[p[1][0] - p[1][1] for p in pts], [p[1][2] - p[1][0] for p in pts]]
        ax.errorbar(x, v, yerr=err, fmt=style, capsize=4, label=key.replace("_", " "))
    ax.set_xlabel("round (after its runs were collected)")
    ax.set_ylabel("predicted mean loss at the target (95% bootstrap interval)")
    ax.set_xticks([r["round"] for r in rows])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--out", help="PNG path (default OUT/rounds.png)")
    args = ap.parse_args(argv)
    try:
        rows = read_rounds(args.out_dir)
    except DataError as e:
        sys.exit(f"search_rounds: {e}")
    for r in rows:
        p = r["proposal"]
        print(f"round {r['round']}: predicted best {p[0]:.4f} [{p[1]:.4f}, {p[2]:.4f}], written {r['chosen']}"
              if p else f"round {r['round']}: no proposal")
    print(plot_rounds(rows, args.out or os.path.join(args.out_dir, "rounds.png")))


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain search_rounds")
