"""The target run of `mixtrain.fitting.fit --optimize`: its step, token budget, model size and repetition.

Place in the flow: `mixtrain.fitting.fit --optimize` (fit.py) -> **fit_target.py** turns --step / --tokens /
--global-batch-tokens / --params and the domains' unique token counts (--data-dir DIR reads the
prepared shards' stats; --domain-tokens d=N,...) into (target step, Repetition or None) ->
laws/optim/sampled.py scores mixtures there.

* Budget in tokens: --tokens D, else --step S x --global-batch-tokens G, else --step S x the fitting
  table's tokens per step (its `tokens` column, the proxies' global batch: the target must use the same).
* Step: --step S, else D / (the table's tokens per step). The laws' step axis is in proxy steps, so a
  target at another global batch is given by --tokens; a --step that disagrees with --tokens is refused.
* --params N: the model size, for `--law scaling` only (also with --predict) (other laws know no model size). Under the
  additive law the mixture term does not depend on N or D, so N and D change the predicted loss but
  not the chosen mixture (docs/scaling.md); repetition does depend on D.
* Repetition (laws/repetition.py) is applied when unique token counts are given; then a budget is required.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from mixtrain.laws.repetition import DEFAULT_R_STAR, WARN_EPOCHS, Repetition
from mixtrain.laws.table import parse_domain_values


def add_target_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--tokens", type=float, help="optimize: the target's training tokens (budget; instead of or "
                    "with --step)")
    ap.add_argument("--global-batch-tokens", type=float,
                    help="optimize: tokens per step of the target (default: the fitting table's tokens/step)")
    ap.add_argument("--params", type=float, help="optimize, predict: the target's parameter count (--law scaling only)")
    ap.add_argument("--data-dir", help="optimize: prepared data dir; its stats give each domain's unique tokens "
                    "(repetition at the target budget) and --natural if not given")
    ap.add_argument("--domain-tokens", help="optimize: unique tokens per domain, d=N,... (instead of --data-dir)")
    ap.add_argument("--r-star", type=float, default=DEFAULT_R_STAR,
                    help="optimize: repetition decay R* (laws/repetition.py; the r-th repeat is worth exp(-r/R*))")
    ap.add_argument("--warn-epochs", type=float, default=WARN_EPOCHS,
                    help="optimize: warn when a domain would see more epochs than this at the target budget")


def tokens_per_step(law: Any) -> float | None:
    """Median tokens/step of the law's fitting table (None without a `tokens` column)."""
    t = getattr(law, "table", None)
    if t is None or t.tokens is None or not np.any(t.tokens > 0):
        return None
    return float(np.median(t.tokens[t.tokens > 0] / t.steps[t.tokens > 0]))


def set_target_params(law: Any, params: float | None) -> None:
    """--params N: the model size the scaling law predicts at (its bootstrap refits copy the config)."""
    if params is None:
        return
    if law.name != "scaling":
        raise ValueError(f"--params: law {law.name!r} knows no model size; fit `--law scaling` on a table with "
                         "a num_params column")
    if not params > 0:
        raise ValueError(f"--params must be > 0, got {params}")
    law.config["target_params"] = float(params)


def target_of(law: Any, args: argparse.Namespace) -> tuple[float, Repetition | None]:
    """(target step, Repetition or None) from the CLI arguments (module docstring)."""
    table_per_step = tokens_per_step(law)
    per_step = args.global_batch_tokens or table_per_step
    if args.step is not None and args.tokens is not None and table_per_step \
            and abs(args.step * table_per_step / args.tokens - 1) > 0.01:
        raise ValueError(f"--step {args.step:g} x the proxies' {table_per_step:g} tokens per step is not --tokens "
                         f"{args.tokens:g}: the law's step axis is the proxies' steps; give --tokens alone (the step "
                         "follows) or a matching --step")
    set_target_params(law, args.params)
    step = args.step
    if step is None:
        if args.tokens is None:
            raise ValueError("--optimize needs --step S (the target step of the real run) or --tokens D")
        if not per_step:
            raise ValueError("--tokens without --step: the law's table has no tokens column to convert tokens to "
                             "steps; give --global-batch-tokens G (the proxies' tokens per step) or --step")
        step = args.tokens / (table_per_step or per_step)  # the law's axis: proxy steps
    budget = args.tokens if args.tokens is not None else (step * per_step if per_step else None)
    args.budget_tokens = budget
    counts = _domain_tokens(args, law.train_domains)
    if counts is None:
        return float(step), None
    if budget is None:
        raise ValueError("repetition needs the target budget in tokens: give --tokens D, or --global-batch-tokens G "
                         "with --step (the fitting table has no tokens column)")
    return float(step), Repetition.build(law.train_domains, counts, budget, args.r_star, args.warn_epochs)


def _domain_tokens(args: argparse.Namespace, domains) -> dict[str, float] | None:
    if args.domain_tokens and args.data_dir:
        raise ValueError("give --domain-tokens or --data-dir, not both")
    if args.domain_tokens:
        counts = parse_domain_values(args.domain_tokens, "--domain-tokens")
        if not isinstance(counts, dict):
            raise ValueError("--domain-tokens takes domain=tokens pairs, e.g. code=3e8,web=2e10")
        return counts
    if not args.data_dir:
        return None
    from mixtrain.prepare.shards import read_manifest, read_stats

    counts = {d: float(read_stats(args.data_dir, d)["num_train_tokens"]) for d in read_manifest(args.data_dir)["domains"]}
    if getattr(args, "natural", None) is None:  # the law's domains only (the data dir may hold more)
        args.natural = ",".join(f"{d}={counts[d]:g}" for d in domains if d in counts)
    return counts


def target_flags(args: argparse.Namespace) -> str:
    """The target arguments as given, for weights.yaml's `written by:` line."""
    out = [f"--{flag.replace('_', '-')} {_fmt(getattr(args, flag))}" for flag in
           ("tokens", "global_batch_tokens", "params", "data_dir", "domain_tokens") if getattr(args, flag) is not None]
    if args.data_dir or args.domain_tokens:
        out.append(f"--r-star {args.r_star:g} --warn-epochs {args.warn_epochs:g}")
    return " ".join(out)


def target_lines(law: Any, args: argparse.Namespace) -> list[str]:
    """Comment lines for weights.yaml: the budget, and the scaling law's loss at (N, D)."""
    budget = getattr(args, "budget_tokens", None)
    out = [f"target: step {args.step:g}" + (f", {budget:.4g} tokens" if budget else "")
           + (f", {args.params:.4g} parameters" if args.params else "")]
    if law.name == "scaling":
        out.append("scaling (additive form): the mixture term does not depend on N or D, so the chosen mixture is the "
                   "same at every size and budget; N and D set the predicted loss (and repetition, through D)")
    if (args.data_dir or args.domain_tokens) and args.optimizer == "slsqp":
        out.append("repetition: slsqp scores mixtures without the discount (only the sampled optimiser applies it); "
                   "the epochs above are reported only")
    return out


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
