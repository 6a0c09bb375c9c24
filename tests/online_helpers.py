"""Helpers shared by tests/mixing/test_online.py and tests/mixing/test_online_papers.py: a DataContext and a
driver that calls an online strategy's `update()` the way train/mixing_controller.py does (records grow by
one per refit), so unit tests need no training run."""

from __future__ import annotations

import math

import pytest

from mixtrain.mixing.base import DataContext, MixHistory

DOMAINS = ["a", "b", "c"]


def _ctx(tokens=(1000, 2000, 3000)) -> DataContext:
    return DataContext(data_dir="unused", domains=list(DOMAINS),
                       stats={d: {"num_train_tokens": n} for d, n in zip(DOMAINS, tokens)})


def _history(step, weights, tokens, train_loss, records, val_loss=None) -> MixHistory:
    return MixHistory(step=step, max_steps=1000, weights=dict(weights), tokens_seen=dict(tokens),
                      train_loss=dict(train_loss), val_loss=val_loss, records=list(records))


def _drive(strategy, weights, loss_fn, *, refits=10, every=10, tokens_per_step=1000, start=None):
    """Run `refits` refits like train/mixing_controller.py does; loss_fn(d, n_tokens_of_d, step) -> training loss.

    Returns (list of proposals, final weights, records). `start` continues from a previous drive.
    """
    records, tokens, step = ([], {d: 0 for d in weights}, 0) if start is None else start
    weights, proposals = dict(weights), []
    for _ in range(refits):
        prev = dict(tokens)
        step += every
        tokens = {d: tokens[d] + int(every * tokens_per_step * weights[d]) for d in weights}
        loss = {d: loss_fn(d, 0.5 * (prev[d] + tokens[d]), step) for d in weights}
        h = _history(step, weights, tokens, loss, records)
        new = strategy.update(h)
        proposals.append(new)
        records.append({"step": step, "old_weights": dict(weights), "new_weights": new, "train_loss": loss,
                        "val_loss": None, "tokens_seen": dict(tokens)})
        if new is not None:
            assert all(math.isfinite(v) and v >= 0 for v in new.values())
            assert sum(new.values()) == pytest.approx(1.0)
            weights = new
    return proposals, weights, (records, tokens, step)
