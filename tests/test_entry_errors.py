"""Every entry point on a bad input, as a user runs it (a subprocess): exit status 2, one line on stderr
naming the key or file and the fix, no traceback, no Hydra "Error executing job", and nothing written
(no out_dir, no .hydra/, no Hydra output folder) in the working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["experiment=smoke", "seq_len=32", "batch_size=4", "val_blocks_per_domain=4", "prepare_if_missing=false"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MIXTRAIN_DEBUG", "HYDRA_FULL_ERROR")}
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "WANDB_MODE": "offline", **extra}


def _start(cwd: Path, module: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=_env(**env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _cases(data: Path, raw: Path, cwd: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (python -m command, what the one line must contain)."""
    (cwd / "a_file").write_text("")
    (cwd / "list.yaml").write_text("- 0.5\n- 0.5\n")
    train = ["mixtrain.train", *SMOKE]
    return {
        "train: misspelt data_dir": ([*train, "data_dir=prepraed", "out_dir=runs/a"], "data_dir=prepraed holds no"),
        "train: mixing.measure=cee": ([*train, f"data_dir={data}", "out_dir=runs/b", "mixing=entropy",
                                       "mixing.measure=cee"], "mixing.measure='cee' is not a measure"),
        "train: missing weights file": ([*train, f"data_dir={data}", "out_dir=runs/c", "mixing=manual",
                                         "mixing.weights_file=nope.yaml"], "mixing.weights_file=nope.yaml does not exist"),
        "train: weights file of another shape": ([*train, f"data_dir={data}", "out_dir=runs/d", "mixing=manual",
                                                  "mixing.weights_file=list.yaml"], "plain `{domain: weight, ...}`"),
        "train: out_dir is a file": ([*train, f"data_dir={data}", "out_dir=a_file/run"], "out_dir=a_file/run: "),
        "prepare: data_dir is a file": (["mixtrain.prepare", "data=dir", f"data.root={raw}", "data_dir=a_file"],
                                        "data_dir=a_file: "),
        "entropy: no data_dir": (["mixtrain.prepare.entropy_cli", "data_dir=nope"], "no manifest.json in nope"),
        "proxy": (["mixtrain.fitting.proxy", "--data-dir", "nope", "--out", "mixes"], "no manifest.json in nope"),
        "proxy --next": (["mixtrain.fitting.proxy", "--next", "2", "--table", "nope.csv", "--out", "next"],
                         "--table nope.csv: no such file"),
        "fit-meta": (["mixtrain.fitting.meta_fit", "--table", "t.csv", "--domain-vectors", "nope.json", "--out", "m.json"],
                     "--domain-vectors nope.json: cannot read it"),
        "search_loop": (["mixtrain.fitting.search_loop", "recommend", "--table", "nope.csv", "--pool", "p.csv", "--out",
                         "w.yaml"], "--table nope.csv: no such file"),
        "search_rounds": (["mixtrain.fitting.search_rounds", "nope"], "nope: no round-*/weights.yaml"),
        "collect": (["mixtrain.fitting.collect", "nope", "--out", "t.csv"], "nope: not a directory"),
        "fit": (["mixtrain.fitting.fit", "--table", "nope.csv", "--out", "law.json"], "nope.csv"),
        "export": (["mixtrain.model.export", "nope", "--out", "hf"], "nope is not a mixtrain run directory"),
        "generate": (["mixtrain.model.generate", "nope", "--prompt", "hi"], "init_from=nope does not exist"),
        "evaluate": (["mixtrain.model.harness_eval", "nope", "--tasks", "x"], "nope is not a mixtrain run directory"),
        "report": (["mixtrain.report", "nope", "--out", "rep"], "nope: not a directory"),
        "the mixtrain command": (["mixtrain.cli", "fit", "--table", "nope.csv", "--out", "law.json"], "nope.csv"),
    }


FAST = ("train: misspelt data_dir", "proxy", "proxy --next", "fit-meta", "search_loop", "search_rounds", "collect",
        "fit", "report", "the mixtrain command")  # no torch import
# but train's; the rest import torch (+ Lightning) before they refuse: ~15 s each on a shared 2-core machine


def _check_refusals(cases: dict, names, cwd: Path) -> None:
    before = sorted(p.name for p in cwd.iterdir())
    procs = {name: _start(cwd, *cases[name][0]) for name in names}  # all at once
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, (name, proc.returncode, err[-3000:])
        assert "Traceback" not in err and "Error executing job" not in err, (name, err[-3000:])
        assert len(lines) == 1 and cases[name][1] in lines[0], (name, err)
        assert lines[0].startswith(("mixtrain ", "[export] error: ", "[generate] error: ", "[evaluate] error: ")), lines
    assert sorted(p.name for p in cwd.iterdir()) == before  # no runs/, out_dir, .hydra/, outputs/, mixes/


def test_entry_points_refuse_a_bad_input_in_one_line(tiny_data_dir, tiny_raw_dir, tmp_path):
    _check_refusals(_cases(tiny_data_dir, tiny_raw_dir, tmp_path), FAST, tmp_path)


@pytest.mark.slow
def test_every_entry_point_refuses_a_bad_input_in_one_line(tiny_data_dir, tiny_raw_dir, tmp_path):
    cases = _cases(tiny_data_dir, tiny_raw_dir, tmp_path)
    _check_refusals(cases, [name for name in cases if name not in FAST], tmp_path)


@pytest.mark.slow
def test_debug_shows_the_traceback_of_a_user_error(tiny_data_dir, tmp_path):
    proc = _start(tmp_path, "mixtrain.train", *SMOKE, "data_dir=prepraed", "out_dir=runs/a", MIXTRAIN_DEBUG="1")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0 and "Traceback" in err and "data_dir=prepraed holds no prepared data" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_wandb_without_network_is_one_line_and_its_failed_start_leaves_no_run_dir(tiny_data_dir, tmp_path):
    """logger=wandb, WANDB_MODE=online and no server: the start fails after the run directory was claimed
    (config.yaml, .hydra/, train.log): one line with the WANDB_MODE=offline hint, and out_dir is gone."""
    pytest.importorskip("wandb")
    proc = _start(tmp_path, "mixtrain.train", *SMOKE, f"data_dir={tiny_data_dir}", "out_dir=runs/wb", "logger=wandb",
                  WANDB_MODE="online", WANDB_BASE_URL="http://127.0.0.1:9", WANDB_API_KEY="x" * 40,
                  WANDB_INIT_TIMEOUT="10")
    _, err = proc.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("train ")]
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and "logger=wandb could not start" in lines[0] and "WANDB_MODE=offline" in lines[0], lines
    assert not (tmp_path / "runs").exists()
