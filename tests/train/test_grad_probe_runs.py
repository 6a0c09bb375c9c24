"""Slow end-to-end tests of the gradient strategies (mixtrain.train.grad_probe + mixing/doge.py,
mixing/tikmix.py): a kill -9 after a refit, then a resume, repeats every refit exactly; 2-process DDP
measures the same Gram on both ranks; DoGE lowers a domain of uniform random tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, smoke_cfg, train_composed, write_raw_corpus

pytestmark = pytest.mark.slow
COMMON = ["trainer.enable_progress_bar=false", "trainer.max_steps=12", "trainer.val_check_interval=12",
          "checkpoint_every_n_steps=4", "sampler.window_samples=4", "sampler.weight_lag_batches=2",
          "mixing.refit_every_n_steps=3", "mixing.lr_scale=none", "mixing.mu=0.5"]


def _env():
    path = os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _refits(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "refits.jsonl").read_text().splitlines() if line.strip()]


def test_kill_after_refit_then_resume_matches_refit_by_refit(tiny_data_dir, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    train_composed(smoke_cfg(tiny_data_dir, full, "mixing=doge", *COMMON))
    from conftest import smoke_overrides

    overrides = smoke_overrides(tiny_data_dir, killed, "mixing=doge", *COMMON)
    script = ("import torch; torch.set_num_threads(1)\n"
              "from mixtrain.hydra_app import compose; from crash import KillAt; from mixtrain.train.run import train\n"
              f"train(compose('train', overrides={overrides!r}), extra_callbacks=[KillAt(10)])\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 9, proc.stderr[-3000:]  # died hard after refit 9 (its checkpoint is step 8)
    assert [r["step"] for r in _refits(killed)] == [3, 6, 9]
    train_composed(smoke_cfg(tiny_data_dir, killed, "mixing=doge", *COMMON, "resume=true"))
    a, b = _refits(full), _refits(killed)
    assert [r["step"] for r in b] == [3, 6, 9, 12]
    for x, y in zip(a, b):
        for key in ("status", "old_weights", "new_weights", "effective_batch", "fit"):
            assert x[key] == y[key], (x["step"], key)
        assert x["probe"]["grad_norm"] == y["probe"]["grad_norm"]  # the same probe blocks and projection
    assert (full / "weights.yaml").read_text() == (killed / "weights.yaml").read_text()


def test_two_ddp_ranks_measure_the_same_gram(tiny_data_dir, tmp_path):
    cmd = [sys.executable, str(REPO / "tests" / "scripts" / "probe_ddp.py"), str(tmp_path / "probe"),
           "experiment=smoke", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.precision=32-true", f"data_dir={tiny_data_dir}", f"out_dir={tmp_path / 'run'}",
           "prepare_if_missing=false", "seq_len=32", "batch_size=4", "val_blocks_per_domain=4",
           "trainer.max_steps=6", "trainer.val_check_interval=6", "checkpoint_every_n_steps=6",
           "table_at_end=false", "trainer.enable_progress_bar=false", "mixing=doge", "mixing.target=ood",
           "mixing.refit_every_n_steps=3", "sampler.window_samples=8", "sampler.weight_lag_batches=2"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = ((tmp_path / "probe" / f"rank{r}.json").read_text() for r in (0, 1))
    assert r0 == r1  # Gram, target inner products, records and strategy state: byte-identical on both ranks
    dump = json.loads(r0)
    assert dump["step"] == 6 and np.all(np.diag(dump["gram"]) > 0)
    assert [r["status"] for r in _refits(tmp_path / "run")] == ["updated", "updated"]


def test_doge_lowers_a_domain_of_uniform_random_tokens(tmp_path):
    from conftest import prepare_corpus_for_test

    data = prepare_corpus_for_test(tmp_path)
    run = tmp_path / "run"
    train_composed(smoke_cfg(data, run, "mixing=doge", "trainer.enable_progress_bar=false", "trainer.max_steps=30",
                             "trainer.val_check_interval=30", "mixing.refit_every_n_steps=3", "mixing.lr_scale=none",
                             "mixing.mu=0.5", "sampler.window_samples=4", "sampler.weight_lag_batches=2",
                             "optim.lr=3e-3"))
    from mixtrain.mixing.static import read_weights_file

    avg = read_weights_file(run / "weights.yaml")
    # calibrated once (our design notes: mean w_noise < 0.2 from 0.25; measured 0.072 and 0.076 in two runs): the
    # average (DoGE's output) is the robust quantity; single refits swing with mu=0.5 and 8 probe blocks, so the
    # final weight is only asserted below its uniform start; prose (repetitive words) swings too, not asserted
    assert avg["noise"] < 0.2, avg
    final = [json.loads(line) for line in (run / "refits.jsonl").read_text().splitlines()][-1]["new_weights"]
    assert final["noise"] < 0.25, final
