"""DoReMi with a frozen reference model (mixtrain/train/module.py + train/mixing_controller.py + mixing/doremi.py):
the per-token clipped excess of the training path.

A real 3-step run is the reference model; a doremi run with `mixing.reference_model=<run>`
trains a few real CPU steps, refits on the per-token excess (refits.jsonl), never changes or
checkpoints the reference, and a crash + resume=true ends with the same weights; a reference
of another vocabulary or architecture is refused naming the field, before the run dir is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from crash import CrashAt
from conftest import smoke_cfg

from mixtrain.model.init_weights import read_initial_weights
from mixtrain.mixing.doremi import per_token_excess
from mixtrain.model.gpt import GPTConfig
from mixtrain.train.config import OptimConfig
from mixtrain.train.module import MixtureLM, domain_excess

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[2]
# 8 steps, refit every 2, checkpoint every 3: the crash at 5 resumes from step 3, mid refit interval
# (step 3's excess sums come back from the checkpoint)
COMMON = ["trainer.max_steps=8", "trainer.val_check_interval=8", "checkpoint_every_n_steps=3",
          "trainer.log_every_n_steps=1", "sampler.window_samples=4", "sampler.weight_lag_batches=2",
          "mixing.refit_every_n_steps=2"]


def _cfg(data_dir, out_dir, *overrides):
    return smoke_cfg(data_dir, out_dir, "trainer.enable_progress_bar=false", *overrides)


def _refits(run) -> list[dict]:
    return [json.loads(line) for line in (Path(run) / "refits.jsonl").read_text().splitlines() if line.strip()]


class KeepModule(pl.Callback):
    """Hands the test the trained LightningModule and its optimizer after fit."""

    def on_train_end(self, trainer, pl_module):
        self.module, self.optimizer = pl_module, trainer.optimizers[0]


@pytest.fixture(scope="module")
def reference_run(tiny_data_dir, tmp_path_factory):
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("reference") / "run"
    train(_cfg(tiny_data_dir, run, "mixing=uniform", "trainer.max_steps=3", "trainer.val_check_interval=3"))
    return run


@pytest.fixture(scope="module")
def doremi_run(tiny_data_dir, reference_run, tmp_path_factory):
    from conftest import train_composed as train

    run = tmp_path_factory.mktemp("doremi") / "run"
    keep = KeepModule()
    summary = train(_cfg(tiny_data_dir, run, "mixing=doremi", f"mixing.reference_model={reference_run}", *COMMON),
                    extra_callbacks=[keep])
    assert summary["step"] == 8
    return run, keep


def test_domain_excess_sums_per_token_clipped_excess_per_domain():
    g = torch.Generator().manual_seed(0)
    loss, ref = torch.rand(6, 5, generator=g) * 4, torch.rand(6, 5, generator=g) * 4
    domain = torch.tensor([0, 2, 0, 2, 2, 0])
    sums, tokens = domain_excess(loss, ref, domain, 3)
    assert tokens.tolist() == [15.0, 0.0, 15.0]
    for d in range(3):
        rows = domain == d
        expect = per_token_excess(loss[rows].numpy().ravel(), ref[rows].numpy().ravel())
        if rows.any():
            assert float(sums[d] / tokens[d]) == pytest.approx(expect, rel=1e-6)
        else:
            assert sums[d] == 0 and math.isnan(expect)
    # the clipping is per token: the excess of the domain's mean loss is smaller
    d0 = domain == 0
    assert float(sums[0] / tokens[0]) > max(float(loss[d0].mean() - ref[d0].mean()), 0.0)


def test_doremi_with_reference_model_refits_on_per_token_excess(doremi_run, tiny_data_dir):
    run, _ = doremi_run
    lines = _refits(run)
    assert [r["step"] for r in lines] == [2, 4, 6, 8]
    assert all(r["error"] is None and r["status"] in ("updated", "replaced") for r in lines), lines
    domains = json.loads((Path(tiny_data_dir) / "manifest.json").read_text())["domains"]
    for r in lines:
        assert r["fit"]["kind"] == "token" and set(r["excess_loss"]) == set(domains)
        sampled = [d for d in domains if not math.isnan(r["excess_loss"][d])]
        assert sampled and all(r["excess_loss"][d] >= 0 for d in sampled)
        assert r["fit"]["excess"] == {d: round(r["excess_loss"][d] if d in sampled else 0.0, 5) for d in domains}
    # a 3-step reference is better than a fresh model on some tokens, worse on others: weights move
    assert any(v > 0 for r in lines for v in r["excess_loss"].values() if not math.isnan(v))
    initial = lines[0]["old_weights"]
    assert any(abs(r["new_weights"][d] - initial[d]) > 1e-3 for r in lines for d in domains)


def test_reference_model_is_frozen_and_never_checkpointed(doremi_run, reference_run):
    run, keep = doremi_run
    module = keep.module
    ref = module._reference[0]
    original, _, _ = read_initial_weights(reference_run)
    assert not ref.training and not any(p.requires_grad for p in ref.parameters())
    for name, p in ref.state_dict().items():
        if not name.startswith("rope_"):
            assert torch.equal(p, original[name]), name  # unchanged by 8 training steps
    ref_ids = {id(p) for p in ref.parameters()}
    optimised = [p for g in keep.optimizer.param_groups for p in g["params"]]
    assert not ref_ids & {id(p) for p in optimised}
    assert len(optimised) == len(list(module.model.parameters()))
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert set(state) == {f"model.{k}" for k in module.model.state_dict()}  # no reference weights in it
    # the trained model did move away from the reference (a DoReMi run trains from scratch)
    assert not torch.equal(state["model.embed.weight"], original["embed.weight"])


def test_resume_reloads_reference_and_continues_exactly(doremi_run, reference_run, tiny_data_dir, tmp_path):
    from conftest import train_composed as train

    full, _ = doremi_run
    crashed = tmp_path / "crashed"
    args = ["mixing=doremi", f"mixing.reference_model={reference_run}", *COMMON]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tiny_data_dir, crashed, *args), extra_callbacks=[CrashAt(5)])
    train(_cfg(tiny_data_dir, crashed, *args, "resume=true"))
    a, b = _refits(full), _refits(crashed)
    assert [r["step"] for r in b] == [2, 4, 6, 8]
    for ra, rb in zip(a, b):
        for key in ("status", "new_weights", "excess_loss", "train_loss", "fit"):
            assert json.dumps(ra[key]) == json.dumps(rb[key]), (ra["step"], key)
    wa = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_reference_model_of_another_config_is_refused_naming_the_field(reference_run, tiny_data_dir, tmp_path):
    from conftest import train_composed as train

    ckpt = torch.load(Path(reference_run) / "checkpoints" / "last.ckpt", weights_only=True, mmap=True)
    model = dict(ckpt["hyper_parameters"]["model"])
    with pytest.raises(ValueError, match=r"mixing\.reference_model=.*vocab_size \d+ .* 999"):
        MixtureLM(GPTConfig(**{**model, "vocab_size": 999}), OptimConfig(), ["code", "prose", "tables"], max_steps=4,
                  reference_model=str(reference_run))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"mixing\.reference_model=.*n_layer"):
        train(_cfg(tiny_data_dir, out, "mixing=doremi", f"mixing.reference_model={reference_run}",
                   f"model.n_layer={model['n_layer'] + 1}"))
    assert not (out / "config.yaml").exists()  # refused before anything was written
    with pytest.raises(FileNotFoundError, match=r"mixing\.reference_model="):
        MixtureLM(GPTConfig(**model), OptimConfig(), ["code", "prose", "tables"], max_steps=4,
                  reference_model=str(tmp_path / "missing"))
