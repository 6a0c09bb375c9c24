"""mixtrain/store/checkpoint_files.py: the checkpoint file layer other stages read (resume plan, export,
init_from) without Lightning; and store/ as a whole stays below every stage."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

from mixtrain.errors import RunDirError

from mixtrain.store.checkpoint_files import (consolidated_checkpoint, load_checkpoint_meta, remove_partial_files,
                                             resume_checkpoint)

STORE = Path(__file__).resolve().parents[2] / "mixtrain" / "store"


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_resume_checkpoint_takes_the_highest_readable_step_and_names_the_rest(tmp_path, capsys):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    assert resume_checkpoint(str(ckpts)) is None and resume_checkpoint(str(tmp_path / "none")) is None
    torch.save({"global_step": 4}, ckpts / "step0000004.ckpt")
    torch.save({"global_step": 4}, ckpts / "last.ckpt")
    (ckpts / "step0000006.ckpt").write_bytes(b"")  # a 0-byte file: skipped, named
    torch.save({"global_step": 5}, tmp_path / "hpc_ckpt_5.ckpt")  # Lightning's SLURM requeue checkpoint
    path, ckpt = resume_checkpoint(str(ckpts), run_dir=str(tmp_path))
    assert path == str(tmp_path / "hpc_ckpt_5.ckpt") and ckpt["global_step"] == 5
    assert "step0000006.ckpt" in capsys.readouterr().out
    os.remove(tmp_path / "hpc_ckpt_5.ckpt")
    assert resume_checkpoint(str(ckpts))[0] == str(ckpts / "last.ckpt")  # last.ckpt wins a tie
    for name in ("last.ckpt", "step0000004.ckpt"):
        os.remove(ckpts / name)
    with pytest.raises(RunDirError, match=r"no readable checkpoint in .*step0000006\.ckpt"):
        resume_checkpoint(str(ckpts))


def test_remove_partial_files_clears_staged_and_half_written_ones(tmp_path):
    (tmp_path / ".staged-step0000002.ckpt").mkdir()  # a sharded checkpoint staged as a folder
    (tmp_path / "last.ckpt.partial").write_bytes(b"half")
    (tmp_path / "last.ckpt").write_bytes(b"kept")
    assert sorted(os.path.basename(p) for p in remove_partial_files(str(tmp_path))) == [
        ".staged-step0000002.ckpt", "last.ckpt.partial"]
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]


def test_a_sharded_folder_is_consolidated_as_lightning_does_it(tmp_path):
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    folder = tmp_path / "last.ckpt"
    state = {"state_dict": {"model.w": torch.randn(4, 3), "model.b": torch.arange(5)},
             "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}]}
    dcp.save(state, checkpoint_id=str(folder))
    torch.save({"global_step": 7, "mixtrain_mixing": {"name": "natural"}}, folder / "meta.pt")
    ours = consolidated_checkpoint(str(folder))
    assert _same(ours, _load_distributed_checkpoint(folder)) and _same(ours["state_dict"], state["state_dict"])
    assert ours["global_step"] == 7 and load_checkpoint_meta(str(folder)) == {
        "global_step": 7, "mixtrain_mixing": {"name": "natural"}}
    assert resume_checkpoint(str(tmp_path))[0] == str(folder)  # planned through its meta.pt
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a sharded checkpoint"):
        consolidated_checkpoint(str(tmp_path / "plain"))
    torch.save({"global_step": 2}, tmp_path / "step0000002.ckpt")
    assert consolidated_checkpoint(str(tmp_path / "step0000002.ckpt")) == {"global_step": 2}  # a file as it is


def test_store_imports_no_stage_and_no_lightning_or_hydra():
    """store/ is below every stage: it imports only itself (and mixtrain/errors.py, below everything)
    among mixtrain's modules, and no Lightning
    or Hydra (function-level imports counted)."""
    found = {}
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad = [n for n in names if n.split(".")[0] in ("lightning", "pytorch_lightning", "hydra", "omegaconf")
                   or (n.startswith("mixtrain") and not n.startswith(("mixtrain.store", "mixtrain.errors")))]
            if bad:
                found.setdefault(path.name, []).extend(bad)
    assert found == {}
