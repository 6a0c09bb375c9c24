"""Online strategies (mixtrain/mixing/: ado.py, odm.py, doremi.py, online_bimix.py); the
paper-algorithm checks of ADO, ODM and online_bimix are in tests/mixing/test_online_papers.py.

Unit tests drive `update()` with hand-built MixHistory objects the way train/mixing_controller.py does (records
grow by one per refit); end-to-end tests train a few steps on the tiny shards and read
refits.jsonl; a 2-process gloo run checks every rank applies identical weights; a crash
between refits followed by resume=true reproduces every later refit exactly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from crash import CrashAt
from conftest import smoke_cfg
from online_helpers import DOMAINS, _ctx, _drive, _history

from mixtrain.mixing.ado import ADO
from mixtrain.mixing.doremi import DoReMi, per_token_excess, read_reference_losses
from mixtrain.mixing.odm import ODM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[2]


def _write_reference(run_dir: Path, losses: dict[str, float], steps=range(1, 101), kind="train"):
    run_dir.mkdir(parents=True, exist_ok=True)
    cols = ["step"] + [f"{kind}/{d}/loss" for d in losses]
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for s in steps:
            w.writerow([s] + [losses[d] for d in losses])
    return run_dir


# ---------------------------------------------------------------------------- DoReMi


def test_doremi_excess_loss_over_reference_gains_weight(tmp_path):
    ref = _write_reference(tmp_path / "ref", {"a": 3.0, "b": 3.0, "c": 3.0})
    doremi = DoReMi(reference_run=str(ref), refit_every_n_steps=10)
    init = doremi.initial_weights(_ctx())
    # a: far above its reference; b: below it (no excess); c: slightly above
    loss = {"a": 5.0, "b": 2.0, "c": 3.05}
    proposals, final, _ = _drive(doremi, init, lambda d, n, s: loss[d], refits=3)
    first = proposals[0]
    assert first["a"] > 0.9 and first["b"] < 1 / 3 and first["b"] < first["c"]
    assert final["b"] >= doremi.smoothing / 3 - 1e-12  # smoothing keeps every domain alive
    assert doremi.last_fit_report["excess"] == pytest.approx({"a": 2.0, "b": 0.0, "c": 0.05})


def test_doremi_reference_is_window_mean_of_train_and_interpolated_val(tmp_path):
    ref = _write_reference(tmp_path / "ref", {"a": 0.0, "b": 0.0, "c": 0.0}, steps=[])
    with open(ref / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "train/a/loss", "train/b/loss", "train/c/loss", "val/a/loss", "val/b/loss", "val/c/loss"])
        for s in range(1, 21):
            w.writerow([s, 10 - 0.1 * s, 4, ""] + ([6 - 0.1 * s, 4, 4] if s % 10 == 0 else ["", "", ""]))
        w.writerow([20, 1, 4, 4, 4, 4, 4])  # a resumed run logs step 20 again: the last row wins
    table = read_reference_losses(ref, "train")
    assert list(table["a"][0]) == list(range(1, 21)) and table["a"][1][-1] == 1 and len(table["c"][0]) == 1
    doremi = DoReMi(reference_run=str(ref))
    doremi.initial_weights(_ctx())
    h = _history(10, {d: 1 / 3 for d in DOMAINS}, {d: 100 for d in DOMAINS}, {d: 4.0 for d in DOMAINS}, [])
    doremi.update(h)
    assert doremi.last_fit_report["reference"]["a"] == pytest.approx(10 - 0.1 * 5.5)  # mean over steps 1..10
    val = DoReMi(reference_run=str(ref), reference_loss="val")
    val.initial_weights(_ctx())
    h = _history(15, {d: 1 / 3 for d in DOMAINS}, {d: 100 for d in DOMAINS}, {d: 4.0 for d in DOMAINS}, [],
                 val_loss={d: 4.0 for d in DOMAINS})
    val.update(h)
    assert val.last_fit_report["kind"] == "val"
    assert val.last_fit_report["reference"]["a"] == pytest.approx((5.0 + 4.0) / 2)  # between steps 10 and 20


def test_doremi_bad_reference_run_errors_name_file_and_column(tmp_path):
    with pytest.raises(ValueError, match="reference_run=RUN_DIR"):
        DoReMi(reference_run=None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=re.escape(f"{empty / 'metrics.csv'} does not exist")):
        DoReMi(reference_run=str(empty)).initial_weights(_ctx())
    partial = _write_reference(tmp_path / "partial", {"a": 3.0, "b": 3.0})
    with pytest.raises(ValueError, match=r"partial/metrics.csv: no column 'train/c/loss' for domain 'c'"):
        DoReMi(reference_run=str(partial)).initial_weights(_ctx())
    extra = _write_reference(tmp_path / "extra", {"a": 3.0, "b": 3.0, "c": 3.0, "z": 1.0})
    with pytest.raises(ValueError, match=r"extra/metrics.csv: reference run has domain\(s\) \['z'\]"):
        DoReMi(reference_run=str(extra)).initial_weights(_ctx())
    train_only = _write_reference(tmp_path / "trainonly", {"a": 3.0, "b": 3.0, "c": 3.0})
    with pytest.raises(ValueError, match="no column 'val/a/loss'"):
        DoReMi(reference_run=str(train_only), reference_loss="val").initial_weights(_ctx())


def test_doremi_per_token_clipping_differs_from_mean_clipping(tmp_path):
    """Domain a is 1 nat worse than the reference on half its tokens and 1 nat better on the other
    half: its mean excess is 0 (clipped per domain mean, reference_run), but the paper's per-token
    clipping (reference_model) gives lambda_a = 0.5, and a gains weight."""
    loss = {"a": [3.0, 1.0] * 4, "b": [2.0] * 8, "c": [2.5, 2.0] * 4}
    ref = {"a": [2.0] * 8, "b": [2.0] * 8, "c": [2.0] * 8}
    mean = {d: sum(v) / len(v) for d, v in loss.items()}
    per_token = {d: per_token_excess(loss[d], ref[d]) for d in DOMAINS}
    assert per_token == pytest.approx({"a": 0.5, "b": 0.0, "c": 0.25})
    assert max(mean["a"] - 2.0, 0.0) == 0.0 < per_token["a"]  # Jensen: per token >= per mean
    assert math.isnan(per_token_excess([], []))

    uniform = {d: 1 / 3 for d in DOMAINS}
    h = _history(10, uniform, {d: 1000 for d in DOMAINS}, mean, [])
    by_mean = DoReMi(reference_run=str(_write_reference(tmp_path / "ref", {d: 2.0 for d in DOMAINS})))
    by_mean.initial_weights(_ctx())
    w_mean = by_mean.update(h)
    assert by_mean.last_fit_report["excess"] == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.25})
    by_token = DoReMi(reference_model="runs/reference")  # the strategy only declares it; module.py runs it
    assert by_token.reference_model == "runs/reference" and by_token.initial_weights(_ctx()) == pytest.approx(uniform)
    h.excess_loss = per_token
    w_token = by_token.update(h)
    assert by_token.last_fit_report["kind"] == "token"
    assert w_token["a"] > w_token["c"] > w_token["b"]  # a gains weight only per token
    assert w_mean["a"] == pytest.approx(w_mean["b"]) and w_mean["c"] > w_mean["a"]
    assert w_token["a"] > w_mean["a"] * 1.5


def test_doremi_reference_model_needs_the_step_excess_and_one_reference(tmp_path):
    doremi = DoReMi(reference_model="runs/reference")
    doremi.initial_weights(_ctx())
    h = _history(10, {d: 1 / 3 for d in DOMAINS}, {d: 1000 for d in DOMAINS}, {d: 3.0 for d in DOMAINS}, [])
    assert doremi.update(h) is None  # no excess_loss: the module ran no reference model
    assert "no reference model" in doremi.last_fit_report["reason"]
    h.excess_loss = {"a": math.inf, "b": 0.1, "c": 0.1}
    assert doremi.update(h) is None and doremi.state_dict()["updates"] == 0
    h.excess_loss = {"a": math.nan, "b": 0.1, "c": 0.0}  # a not sampled: no excess, weight falls
    w = doremi.update(h)
    assert w["b"] > w["a"] and w["a"] == pytest.approx(w["c"])
    with pytest.raises(ValueError, match="reference_model=PATH.*reference_run=RUN_DIR"):
        DoReMi()
    with pytest.raises(ValueError, match="not both"):
        DoReMi(reference_run=str(tmp_path), reference_model=str(tmp_path))


# ---------------------------------------------------------------------------- all three


def _make(name, tmp_path):
    if name == "ado":
        return (ADO(prior="uniform", ignore_initial_steps=0, min_points=3, fit_every_n_steps=20),
                lambda d, n, s: {"a": 3.0, "b": 1.0 + 50.0 * n ** -0.4, "c": 2.5}[d])
    if name == "odm":
        return ODM(warmup_steps=0), lambda d, n, s: {"a": 6.0, "b": 3.0, "c": 3.5}[d]
    ref = _write_reference(tmp_path / "ref", {"a": 3.0, "b": 3.0, "c": 3.0}, steps=range(0, 400, 5))
    return DoReMi(reference_run=str(ref), step_size=0.05, average=True), \
        lambda d, n, s: {"a": 3.2, "b": 2.0, "c": 3.1}[d]


@pytest.mark.parametrize("name", ["ado", "odm", "doremi"])
def test_state_dict_round_trip_gives_identical_updates(name, tmp_path):
    first, loss = _make(name, tmp_path)
    init = first.initial_weights(_ctx())
    _, w, carry = _drive(first, init, loss, refits=5)
    state = json.loads(json.dumps(first.state_dict()))  # must be plain JSON-able python
    fresh, _ = _make(name, tmp_path)
    fresh.load_state_dict(state)  # no compute(ctx): a resumed rank-0 gets everything from the state
    records, tokens, step = carry
    copy = ([dict(r) for r in records], dict(tokens), step)
    a, _, _ = _drive(first, w, loss, refits=4, start=carry)
    b, _, _ = _drive(fresh, w, loss, refits=4, start=copy)
    assert all(p is not None for p in a)
    assert a == b  # bit-identical proposals


@pytest.mark.parametrize("name", ["ado", "odm", "doremi"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_keep_weights_and_state(name, bad, tmp_path):
    strategy, loss = _make(name, tmp_path)
    init = strategy.initial_weights(_ctx())
    _, w, (records, tokens, step) = _drive(strategy, init, loss, refits=5)
    before = json.dumps(strategy.state_dict())
    h = _history(step + 10, w, {d: tokens[d] + 3000 for d in w}, {d: bad for d in w}, records)
    assert strategy.update(h) is None
    assert strategy.last_fit_report["phase"] in ("skipped", "warmup")
    assert json.dumps(strategy.state_dict()) == before
    h = _history(step + 10, w, {d: tokens[d] + 3000 for d in w}, {"a": bad, "b": 3.0, "c": 3.0}, records)
    out = strategy.update(h)
    if math.isinf(bad):
        assert out is None
    else:  # NaN is "domain not sampled": the others still count; never a NaN weight
        assert out is None or all(math.isfinite(v) for v in out.values())


# ---------------------------------------------------------------------------- end to end


def _cfg(data_dir, out_dir, *overrides):
    return smoke_cfg(data_dir, out_dir, "trainer.enable_progress_bar=false", *overrides)


# 12 steps, refit every 3, checkpoint every 4: the crash at 10 falls between the refits at 9 and 12
# window_samples=4: a weight change governs the batch right after the refit's planning delay
COMMON = ["trainer.max_steps=12", "trainer.val_check_interval=12", "checkpoint_every_n_steps=4",
          "trainer.log_every_n_steps=1", "sampler.window_samples=4",
          # the smallest lag 0 workers allow, so a refit's weights govern batches of this short run
          "sampler.weight_lag_batches=2"]
# per strategy: its overrides and its refit steps (online_bimix refits every 2 steps: it needs more
# observations than BiMix's 4 parameters per domain before its first fit)
ONLINE = {"ado": (["mixing.refit_every_n_steps=3", "mixing.min_points=3", "mixing.ignore_initial_steps=0",
                   "mixing.fit_every_n_steps=3"], [3, 6, 9, 12]),
          "odm": (["mixing.refit_every_n_steps=3", "mixing.propose_every_n_steps=1", "mixing.warmup_steps=0"],
                  [3, 6, 9, 12]),
          "doremi": (["mixing.refit_every_n_steps=3"], [3, 6, 9, 12]),
          "online_bimix": (["mixing.refit_every_n_steps=2"], [2, 4, 6, 8, 10, 12])}


def _refits(run_dir) -> list[dict]:
    with open(Path(run_dir) / "refits.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def uniform_run(tiny_data_dir, tmp_path_factory):
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("uniform") / "run"
    train(_cfg(tiny_data_dir, run, "mixing=uniform", *COMMON))
    return run


@pytest.fixture(scope="module")
def online_runs(tiny_data_dir, uniform_run, tmp_path_factory):
    from conftest import train_composed as train

    root = tmp_path_factory.mktemp("online")
    runs = {}
    for name, (extra, _) in ONLINE.items():
        if name == "doremi":
            extra = [*extra, f"mixing.reference_run={uniform_run}"]
        runs[name] = root / name
        summary = train(_cfg(tiny_data_dir, runs[name], f"mixing={name}", *COMMON, *extra))
        assert summary["step"] == 12
    return runs


@pytest.mark.parametrize("name", list(ONLINE))
def test_online_strategy_trains_and_updates_weights(online_runs, name):
    lines = _refits(online_runs[name])
    assert [r["step"] for r in lines] == ONLINE[name][1]
    updated = [r for r in lines if r["status"] == "updated"]
    assert updated, [(r["status"], r["error"], r["fit"]) for r in lines]
    assert all(r["error"] is None for r in lines)
    initial = lines[0]["old_weights"]
    assert any(r["new_weights"] != initial for r in updated)
    for r in updated:
        assert all(math.isfinite(v) and v >= 0 for v in r["new_weights"].values())
        assert sum(r["new_weights"].values()) == pytest.approx(1.0)
        assert isinstance(r["fit"], dict) and r["fit"]["phase"] not in ("skipped",)
    if name == "online_bimix":  # explored first, then fitted the law on its own history
        phases = [(r["fit"]["phase"], r["fit"]["observations"]) for r in updated]
        assert phases[0][0] == "explore" and phases[-1][0] == "fit", phases
        # fits only with more observations than BiMix's 4 parameters per domain (a refit whose
        # interval missed a domain adds none)
        assert all((phase == "fit") == (n >= 5) for phase, n in phases), phases
    with open(Path(online_runs[name]) / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    # the new weights reached the sampler (they govern batches a little after the refit step)
    assert any(abs(float(last[f"mix/{d}"]) - initial[d]) > 1e-6 for d in initial)


def test_resume_between_refits_reproduces_every_refit(online_runs, tiny_data_dir, tmp_path):
    from conftest import train_composed as train

    name = "ado"  # the most stateful: credit EMA, running mean of rho, fitted on all records
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tiny_data_dir, crashed, f"mixing={name}", *COMMON, *ONLINE[name][0]), extra_callbacks=[CrashAt(10)])
    assert [r["step"] for r in _refits(crashed)] == [3, 6, 9]  # refit 9 ran after the step-8 checkpoint
    train(_cfg(tiny_data_dir, crashed, f"mixing={name}", *COMMON, *ONLINE[name][0], "resume=true"))
    full, resumed = _refits(online_runs[name]), _refits(crashed)
    assert [r["step"] for r in resumed] == [3, 6, 9, 12]
    assert any(r["status"] == "updated" for r in full if r["step"] > 8)
    for a, b in zip(full, resumed):
        for key in ("status", "new_weights", "old_weights", "train_loss", "tokens_seen", "fit", "effective_batch"):
            assert a[key] == b[key], (a["step"], key, a[key], b[key])


def test_ranks_apply_identical_refit_weights(tiny_data_dir, tmp_path):
    probe = REPO / "tests" / "scripts" / "refit_probe.py"
    cmd = [sys.executable, str(probe), str(tmp_path / "probe"),
           "experiment=smoke", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.precision=32-true", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'run'}",
           "prepare_if_missing=false", "seq_len=32", "batch_size=4", "val_blocks_per_domain=4",
           "trainer.max_steps=8", "trainer.val_check_interval=8", "checkpoint_every_n_steps=8",
           "table_at_end=false", "trainer.enable_progress_bar=false",
           "mixing=odm", "mixing.refit_every_n_steps=2", "mixing.propose_every_n_steps=1", "mixing.warmup_steps=0",
           # one-batch windows and the smallest lag: each refit takes effect before the next one
           "sampler.window_samples=8", "sampler.weight_lag_batches=2"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = ((tmp_path / "probe" / f"rank{r}.json").read_text() for r in (0, 1))
    assert r0 == r1  # records, sampler schedule, strategy state: byte-identical on both ranks
    dump = json.loads(r0)
    assert [r["step"] for r in dump["records"]] == [2, 4, 6, 8]
    lines = _refits(tmp_path / "run")
    assert [r["new_weights"] for r in lines] == [r["new_weights"] for r in dump["records"]]
    assert sum(r["status"] == "updated" for r in lines) == 4
    assert len(dump["schedule"]) > 1  # the weight changes reached both samplers


def test_every_seeded_mixing_option_follows_the_run_seed():
    """A literal seed in conf/mixing would make runs compared across seeds share their draws."""
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[2] / "conf"
    # (law.yaml's seed is the optimiser's random starts: the optimum of a law file, not a run draw)
    seeded = sorted(p.stem for p in (conf / "mixing").glob("*.yaml")
                    if "\nseed:" in "\n" + p.read_text() and p.stem != "law")
    assert {"entropy", "online_bimix"} <= set(seeded)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for name in seeded:
            seeds = [compose("train", overrides=[f"mixing={name}", f"seed={s}"]).mixing.seed for s in (1, 2)]
            assert seeds == [1, 2], (name, seeds)
