"""mixing=schedule (mixtrain/mixing/stages.py): stages of fixed weights or of any strategy.

Unit tests drive `refit_due`/`update` the way the controller does; the end-to-end tests train 12
steps with a stage switch at step 5 and an online ODM stage from step 8, and check that a crash
before the switch (checkpoint at 4) and one after both stages started (checkpoint at 8) resume to
exactly the full run's refits and mixture.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from crash import CrashAt
from hydra import compose, initialize_config_dir

from mixtrain.mixing import build_mixing
from mixtrain.mixing.base import DataContext, MixHistory

CONF = str(Path(__file__).resolve().parents[2] / "conf")
DOMAINS = ["a", "b", "c"]


def _ctx():
    stats = {d: {"num_train_tokens": n} for d, n in zip(DOMAINS, (1000, 2000, 7000))}
    return DataContext(data_dir="unused", domains=DOMAINS, stats=stats)


def _schedule(stages):
    return build_mixing({"strategy": "schedule", "name": "schedule", "stages": stages}).strategy


def _history(step, weights, records=()):
    tokens = {d: 100 * step for d in DOMAINS}
    return MixHistory(step=step, max_steps=20, weights=dict(weights), tokens_seen=tokens,
                      train_loss={d: 3.0 + i for i, d in enumerate(DOMAINS)}, records=list(records))


def test_stages_switch_at_their_steps_and_wrap_strategies():
    s = _schedule([{"step": 0, "weights": {"a": 2, "b": 1, "c": 1}},
                   {"step": 4, "mixing": {"strategy": "natural"}},
                   {"step": 6, "mixing": {"strategy": "odm", "refit_every_n_steps": 3, "warmup_steps": 0}}])
    assert s.initial_weights(_ctx()) == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25})
    weights, due, proposals = {"a": 0.5, "b": 0.25, "c": 0.25}, [], {}
    for step in range(1, 13):  # as the controller: update() after every due step
        if s.refit_due(step):
            due.append(step)
            proposals[step] = s.update(_history(step, weights))
            weights = proposals[step] or weights
            if step == 6:
                assert s.last_fit_report == {"phase": "stage", "stage": 2, "stage_step": 6}
    assert due == [4, 6, 9, 12]  # the stage switches, then odm's own interval (absolute steps)
    assert proposals[4] == pytest.approx({"a": 0.1, "b": 0.2, "c": 0.7})  # natural
    assert proposals[6] == pytest.approx({d: 1 / 3 for d in DOMAINS})  # odm starts uniform
    assert s.last_fit_report["stage"] == 2 and s.last_fit_report["phase"] == "exp3"
    proposal = proposals[12]
    assert proposal["c"] > proposal["a"]  # ODM: the highest loss gets the most weight
    # state round trip: a fresh schedule restored from it proposes exactly the same next weights
    state = json.loads(json.dumps(s.state_dict()))
    fresh = _schedule(s.stages)
    fresh.initial_weights(_ctx())
    fresh.load_state_dict(state)
    assert fresh.update(_history(15, proposal)) == s.update(_history(15, proposal))


def test_missed_switch_is_caught_up_at_the_next_due_step():
    s = _schedule([{"step": 0, "weights": {"a": 1, "b": 1, "c": 1}}, {"step": 3, "weights": {"a": 1, "b": 0, "c": 0}}])
    s.initial_weights(_ctx())
    assert s.refit_due(3) and s.refit_due(4)  # no update at 3 (e.g. a skipped NaN step): still due at 4
    assert s.update(_history(4, {d: 1 / 3 for d in DOMAINS})) == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert not s.refit_due(5)


@pytest.mark.parametrize("stages, match", [
    ([], r"mixing=schedule needs mixing.stages"),
    ([{"step": 1, "weights": {"a": 1}}], r"stages\[0\].step must be 0"),
    ([{"step": 0, "weights": {"a": 1}}, {"step": 0, "weights": {"a": 1}}], r"stages\[1\].step=0 must be after"),
    ([{"step": 0, "weights": {"a": 1}, "mixing": {"strategy": "uniform"}}], r"exactly one of weights"),
    ([{"step": 0, "mixing": {"strategy": "nope"}}], r"mixing.strategy='nope' is not a mixing strategy"),
    ([{"step": 0, "mixing": {"strategy": "schedule", "stages": []}}], r"cannot wrap a schedule"),
    ([{"step": 0, "wights": {"a": 1}}], r"unknown key\(s\) \['wights'\]"),
])
def test_bad_stages_name_the_stage_and_the_fix(stages, match):
    with pytest.raises(ValueError, match=match):
        _schedule(stages)


def test_a_wrapped_strategys_reference_model_is_the_schedules():
    """The module is built once: a DoReMi stage's frozen reference model must be declared by the
    schedule itself, or that stage's refits would get no per-token excess."""
    doremi = {"strategy": "doremi", "reference_model": "runs/ref", "refit_every_n_steps": 2}
    assert _schedule([{"step": 0, "weights": {"a": 1.0}}, {"step": 4, "mixing": doremi}]).reference_model == "runs/ref"
    assert _schedule([{"step": 0, "weights": {"a": 1.0}}]).reference_model is None
    with pytest.raises(ValueError, match="different reference models"):
        _schedule([{"step": 0, "mixing": doremi}, {"step": 4, "mixing": {**doremi, "reference_model": "runs/other"}}])


def test_stage_weights_are_checked_against_the_domains_at_start():
    s = _schedule([{"step": 0, "weights": {d: 1 for d in DOMAINS}}, {"step": 5, "weights": {"a": 1, "z": 1}}])
    with pytest.raises(ValueError, match=r"mixing.stages\[1\] weights.*z"):
        s.initial_weights(_ctx())


# ------------------------------------------------------------------------------ end to end

COMMON = ["trainer.max_steps=12", "trainer.val_check_interval=12", "checkpoint_every_n_steps=4",
          "trainer.log_every_n_steps=1", "sampler.window_samples=4", "sampler.weight_lag_batches=2"]


def _cfg(data_dir, out_dir, *overrides):
    a, b, c = json.loads((Path(data_dir) / "manifest.json").read_text())["domains"]
    stages = (f"[{{step: 0, weights: {{{a}: 0.8, {b}: 0.1, {c}: 0.1}}}}, "
              f"{{step: 5, weights: {{{a}: 0.1, {b}: 0.1, {c}: 0.8}}}}, "
              "{step: 8, mixing: {strategy: odm, refit_every_n_steps: 2, warmup_steps: 0}}]")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=[
            "experiment=smoke", f"data_dir={data_dir}", f"out_dir={out_dir}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "val_blocks_per_domain=2", "table_at_end=false",
            "trainer.enable_progress_bar=false", "mixing=schedule", f"mixing.stages={stages}", *COMMON, *overrides,
        ])


def _refits(run_dir):
    with open(Path(run_dir) / "refits.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def _mix(run_dir):
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k == "step" or k.startswith("mix/")} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def full_run(tiny_data_dir, tmp_path_factory):
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("schedule") / "full"
    assert train(_cfg(tiny_data_dir, run))["step"] == 12
    return run


def test_schedule_run_switches_stages_then_refits_the_wrapped_strategy(full_run):
    lines = _refits(full_run)
    assert [r["step"] for r in lines] == [5, 8, 10, 12]
    assert [r["fit"].get("stage") for r in lines] == [1, 2, 2, 2]
    assert lines[0]["status"] == "updated"
    assert sorted(lines[0]["new_weights"].values()) == pytest.approx([0.1, 0.1, 0.8])  # switched exactly
    assert lines[1]["new_weights"] == pytest.approx({d: 1 / 3 for d in lines[1]["new_weights"]})  # odm starts uniform
    assert lines[2]["fit"]["phase"] == "exp3"
    rows = _mix(full_run)
    first = {k: float(v) for k, v in rows[0].items() if k.startswith("mix/") and not k.startswith("mix/tokens/")}
    assert sorted(first.values()) == pytest.approx([0.1, 0.1, 0.8])  # stage 0 governs the start


@pytest.mark.parametrize("crash_at", [7, pytest.param(10, marks=pytest.mark.slow)])  # resumes from step 4 (before the switch at 5) / step 8 (after both)
def test_resume_across_a_stage_boundary_is_exact(full_run, tiny_data_dir, tmp_path, crash_at):
    from conftest import train_composed as train

    run = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tiny_data_dir, run), extra_callbacks=[CrashAt(crash_at)])
    train(_cfg(tiny_data_dir, run, "resume=true"))
    full, resumed = _refits(full_run), _refits(run)
    assert [r["step"] for r in resumed] == [r["step"] for r in full]
    for a, b in zip(full, resumed):
        for key in ("status", "new_weights", "old_weights", "train_loss", "tokens_seen", "fit", "effective_batch"):
            assert a[key] == b[key], (crash_at, a["step"], key)
    assert _mix(run) == _mix(full_run)
