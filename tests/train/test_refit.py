"""Tests for mixtrain.train.mixing_controller (the mixing controller): what a strategy is told, what is capped, what refits.jsonl says took effect.

One real 8-step CPU run (tiny model, real shards) with a scripted online strategy: it always
proposes most weight for the smallest domain, and records every MixHistory it is handed.
Planning windows of 16 batches (window_samples=64, 4 samples a batch) make every refit of the
run land on the same effective batch 16, so each refit replaces the previous pending change.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mixtrain.mixing.base import MixHistory, MixingStrategy, cap_remaining_epochs

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf")
SEEN: list[MixHistory] = []
# conf/mixing/odm.yaml's keys that Scripted (which borrows odm's refit block) does not take
NOT_SCRIPTED = ["~mixing.warmup_steps", "~mixing.reward", "~mixing.reward_scale", "~mixing.reward_smoothing",
                "~mixing.propose_every_n_steps"]


class Scripted(MixingStrategy):
    """Uniform at first; every refit proposes 0.9 for `favourite` (the rest shared equally)."""

    name = "scripted"

    def __init__(self, favourite: str, refit_every_n_steps: int = 2, max_epochs: float | None = None):
        super().__init__(max_epochs)
        self.favourite, self.refit_every_n_steps = favourite, refit_every_n_steps

    def compute(self, ctx):
        return {d: 1.0 for d in ctx.domains}

    def update(self, history: MixHistory):
        SEEN.append(history)
        others = [d for d in history.weights if d != self.favourite]
        return {self.favourite: 0.9, **{d: 0.1 / len(others) for d in others}}


@pytest.fixture(scope="module")
def scripted_run(tiny_data_dir, tmp_path_factory):
    import torch

    from conftest import train_composed as train

    stats = {d: json.loads((Path(tiny_data_dir) / d / "stats.json").read_text())
             for d in json.loads((Path(tiny_data_dir) / "manifest.json").read_text())["domains"]}
    num_tokens = {d: int(s["num_train_tokens"]) for d, s in stats.items()}
    favourite = min(num_tokens, key=num_tokens.get)
    budget = 8 * 4 * 32  # steps x batch x seq_len, one process
    # the favourite may take at most half the budget over the run: caps its 0.9 proposals
    max_epochs = 0.5 * budget / num_tokens[favourite]
    run = tmp_path_factory.mktemp("refit") / "run"
    SEEN.clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model gains nothing from threads on a shared CPU
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=[
                "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={run}", "prepare_if_missing=false",
                "seq_len=32", "batch_size=4", "val_blocks_per_domain=2", "table_at_end=false",
                "trainer.enable_progress_bar=false", "trainer.max_steps=8", "trainer.val_check_interval=8",
                "checkpoint_every_n_steps=8", "sampler.window_samples=64", "mixing=odm", *NOT_SCRIPTED,
                f"+mixing._target_={__name__}.Scripted",
                f"+mixing.favourite={favourite}", "mixing.refit_every_n_steps=2", f"mixing.max_epochs={max_epochs}",
            ])
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    with open(run / "refits.jsonl") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return {"lines": lines, "seen": list(SEEN), "favourite": favourite, "num_tokens": num_tokens,
            "budget": budget, "max_epochs": max_epochs}


def test_pending_change_replaced_by_a_newer_one_is_logged_as_replaced(scripted_run):
    lines = scripted_run["lines"]
    assert [r["step"] for r in lines] == [2, 4, 6, 8]
    assert all(r["effective_batch"] == 16 for r in lines)  # next + lag 8, rounded up to a 16-batch window
    # only the last one will take effect; each earlier one was replaced before batch 16
    assert [r["status"] for r in lines] == ["replaced", "replaced", "replaced", "updated"]
    assert [r.get("replaced_by_step") for r in lines] == [4, 6, 8, None]


def test_strategies_see_realised_shares_not_the_scheduled_weights(scripted_run):
    seen, lines = scripted_run["seen"], scripted_run["lines"]
    assert len(seen) == 4
    before = {d: 0 for d in seen[0].tokens_seen}
    for history, line in zip(seen, lines):
        delta = {d: history.tokens_seen[d] - before[d] for d in before}
        total = sum(delta.values())
        assert total == 2 * 4 * 32  # the two steps since the last refit
        assert history.weights == pytest.approx({d: n / total for d, n in delta.items()})
        before = dict(history.tokens_seen)
    # no change took effect in the run (all land at batch 16): the samples were drawn uniformly,
    # while the scheduled weights were the previous refit's proposal
    for prev, history in zip(lines, seen[1:]):
        assert history.scheduled_weights == pytest.approx(prev["new_weights"])
        assert history.weights != pytest.approx(history.scheduled_weights)


def test_max_epochs_caps_every_proposal_over_the_remaining_budget(scripted_run):
    fav, num_tokens, budget = scripted_run["favourite"], scripted_run["num_tokens"], scripted_run["budget"]
    lines = scripted_run["lines"]
    assert sum(lines[-1]["tokens_seen"].values()) == budget  # the last refit, at the end: nothing left to cap
    for line in lines[:-1]:
        seen = line["tokens_seen"]
        cap = (scripted_run["max_epochs"] * num_tokens[fav] - seen[fav]) / (budget - sum(seen.values()))
        assert cap < 0.9
        assert line["new_weights"][fav] == pytest.approx(cap, rel=1e-9)
        assert math.isclose(sum(line["new_weights"].values()), 1.0)


def test_cap_remaining_epochs_spends_what_is_left_of_each_allowance():
    w = cap_remaining_epochs({"a": 0.9, "b": 0.1}, {"a": 100, "b": 1000}, {"a": 40, "b": 10}, 200, 1.0)
    # a may read 100 - 40 = 60 more of the 150 remaining tokens
    assert w == pytest.approx({"a": 0.4, "b": 0.6})
    assert cap_remaining_epochs({"a": 0.9, "b": 0.1}, {"a": 1, "b": 1}, {"a": 100, "b": 100}, 200, 1.0) == \
        pytest.approx({"a": 0.9, "b": 0.1})  # budget spent: nothing left to cap
    with pytest.raises(ValueError, match="max_epochs"):
        cap_remaining_epochs({"a": 0.5, "b": 0.5}, {"a": 10, "b": 10}, {"a": 0, "b": 0}, 200, 1.0)


def test_refits_happen_once_per_optimizer_step_under_gradient_accumulation(tiny_data_dir, tmp_path):
    """2 micro-batches per optimizer step: a refit runs after the step's last micro-batch only (the
    first micro-batch of the next step sees the same global_step and must not refit again), with
    every token of the step counted and both micro-batches' losses in its history."""
    import torch

    from conftest import train_composed as train

    SEEN.clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=[
                "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'run'}",
                "prepare_if_missing=false", "seq_len=32", "batch_size=4", "global_batch_tokens=256",
                "val_blocks_per_domain=2", "table_at_end=false", "trainer.enable_progress_bar=false",
                "trainer.max_steps=6", "trainer.val_check_interval=12", "checkpoint_every_n_steps=6",
                "mixing=odm", *NOT_SCRIPTED,
                f"+mixing._target_={__name__}.Scripted", "+mixing.favourite=prose", "mixing.refit_every_n_steps=2",
            ])
        summary = train(cfg)
    finally:
        torch.set_num_threads(threads)
    assert summary["step"] == 6
    with open(tmp_path / "run" / "refits.jsonl") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    assert [r["step"] for r in lines] == [2, 4, 6]
    tokens_per_step = 2 * 4 * 32  # accumulate x batch x seq_len
    assert [sum(r["tokens_seen"].values()) for r in lines] == [2 * tokens_per_step, 4 * tokens_per_step,
                                                              6 * tokens_per_step]
    # the losses of all 4 micro-batches (16 samples) since the last refit reached the strategy
    assert [h.step for h in SEEN] == [2, 4, 6]
