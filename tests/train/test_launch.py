"""Launches the way clusters launch them, on one CPU machine (gloo): every process through torchrun
(launch/smoke_2node.sh -> launch/torchrun.sh) or through srun (launch/slurm.sbatch with the stand-in
tests/scripts/fake_slurm/srun setting SLURM_* per task). A probe on PYTHONPATH
(tests/scripts/launch_probe/sitecustomize.py) records any write a non-zero rank makes in the run
directory and every rank's final weights. Also: SIGTERM / SIGUSR1 preemption and exact resume,
resume=auto, failed starts, and a resume on another world size.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PROBE_PATH = REPO / "tests" / "scripts" / "launch_probe"
FAKE_SLURM = REPO / "tests" / "scripts" / "fake_slurm"
STEPS = 6


def _common(data_dir, *extra):
    return ["experiment=smoke", f"data_dir={data_dir}", "prepare_if_missing=false", "seq_len=32", "batch_size=4",
            "val_blocks_per_domain=4", "trainer.val_check_interval=3", "table_at_end=false", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(probe: Path, run: Path, **extra) -> dict:
    probe.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": f"{PROBE_PATH}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1",
            "WANDB_MODE": "offline", "MIXTRAIN_PROBE_DIR": str(probe), "MIXTRAIN_PROBE_WATCH": str(run),
            "MIXTRAIN_PROBE_WEIGHTS": "1", "MIXTRAIN_RANK0_WAIT_S": "120", "PYTHON": sys.executable, **extra}


def _slurm_env(probe: Path, run: Path, nodes: int, per_node: int, **extra) -> dict:
    env = _env(probe, run, SLURM_NNODES=str(nodes), SLURM_NTASKS_PER_NODE=str(per_node), SLURM_JOB_ID="4242",
               SLURM_JOB_NAME="mixtrain", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), **extra)
    env["PATH"] = f"{FAKE_SLURM}{os.pathsep}{env['PATH']}"
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_RESTART_COUNT"):
        env.pop(key, None) if key not in extra else None
    return env


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_rows(resumed, reference):
    """metrics.csv rows equal but perf/. One known difference, not from the resume: an uninterrupted
    process repeats a domain's last train/<d>/loss in a step whose batch held none of it (Lightning
    keeps the logged key), a resumed process has no earlier value to repeat, so only cells the
    resumed run filled are compared in those columns."""
    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    for a, b in zip(resumed, reference):
        for k in set(a) | set(b):
            if k.startswith("perf/") or (k.startswith("train/") and k != "train/loss" and not a.get(k)):
                continue
            assert a.get(k) == b.get(k), (a["step"], k, a.get(k), b.get(k))


def _check_one_complete_run(run: Path, probe: Path, ranks: int, steps: int, sharded: bool = False) -> None:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == steps
    assert [int(float(r["step"])) for r in _metrics(run) if r["step"]] == list(range(1, steps + 1))
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "config.yaml").is_file()  # FSDP: a folder
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert not list(run.rglob("*.tmp*")), list(run.rglob("*.tmp*"))
    weights = [torch.load(probe / f"weights_rank{r}.pt") for r in range(ranks)]
    for rank, w in enumerate(weights[1:], 1):
        assert w.keys() == weights[0].keys()
        assert all(torch.equal(w[k], weights[0][k]) for k in w), f"rank {rank}'s final weights differ from rank 0's"
    writes = {p.name: [line for line in p.read_text().splitlines() if not (sharded and _own_shard(line, p.name))]
              for p in probe.glob("writes_rank*.txt")}
    assert not any(writes.values()), f"non-zero ranks wrote into the run directory: {writes}"


def _own_shard(line: str, log_name: str) -> bool:
    """FSDP: each rank writes its own shard of a checkpoint folder (by design), nothing else. Making the
    folder's parents is part of that: a rank that reaches the first save before rank 0 creates
    RUN/checkpoints itself (seen once in 6 runs of the 2-node test)."""
    rank = log_name.removeprefix("writes_rank").removesuffix(".txt")
    event, path = line.split(" ", 1)
    if event == "os.mkdir" and path.endswith("/checkpoints"):
        return True
    folder = re.search(r"/checkpoints/\.staged-[^/]+\.ckpt", path)
    return bool(folder) and (event == "os.mkdir" and path.endswith(".ckpt") or
                             event == "open" and path.endswith(f"/__{rank}_0.distcp"))


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(5))
def test_torchrun_two_nodes_one_complete_run(tiny_data_dir, tmp_path, attempt):
    """launch/smoke_2node.sh: 2 torchrun "nodes" x 1 process, rendezvous on localhost."""
    run, probe = tmp_path / "run", tmp_path / "probe"
    proc = subprocess.run(["bash", str(REPO / "launch" / "smoke_2node.sh"), str(run), *_common(tiny_data_dir)[1:]],
                          cwd=REPO, env=_env(probe, run, STEPS=str(STEPS)), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "smoke_2node: OK" in proc.stdout
    _check_one_complete_run(run, probe, ranks=2, steps=STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(5))
def test_srun_four_tasks_one_complete_run(tiny_data_dir, tmp_path, attempt):
    """launch/slurm.sbatch under a stand-in srun: 2 nodes x 2 tasks, Lightning's SLURM environment."""
    run, probe = tmp_path / "run", tmp_path / "probe"
    if attempt % 2:  # a requeue-like start: the folder and Hydra's .hydra/ of a failed start are there
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text("{}\n")
    cmd = ["bash", str(REPO / "launch" / "slurm.sbatch"), *_common(tiny_data_dir, f"out_dir={run}",
           "trainer.accelerator=cpu", "trainer.precision=32-true", f"trainer.max_steps={STEPS}")]
    proc = subprocess.run(cmd, cwd=REPO, env=_slurm_env(probe, run, 2, 2), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    _check_one_complete_run(run, probe, ranks=4, steps=STEPS)


def _wait_for_step(probe: Path, step: int, proc, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        f = probe / "step_rank0.txt"
        if f.is_file() and f.read_text().strip() and int(f.read_text()) >= step:
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"the run never reached step {step}")


@pytest.mark.slow
def test_sigterm_checkpoints_the_current_step_exits_143_and_resumes_exactly(tiny_data_dir, tmp_path):
    steps = 10
    args = _common(tiny_data_dir, f"trainer.max_steps={steps}", "checkpoint_every_n_steps=100")
    ref, run = tmp_path / "ref", tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mixtrain.train", *args, f"out_dir={ref}"], cwd=REPO,
                          env=_env(tmp_path / "p_ref", ref), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = tmp_path / "p_run"
    proc = subprocess.Popen([sys.executable, "-m", "mixtrain.train", *args, f"out_dir={run}"], cwd=REPO,
                            env=_env(probe, run, MIXTRAIN_PROBE_STEP_SLEEP_S="0.5"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_step(probe, 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    stopped = json.loads((run / "summary.json").read_text())["stopped_by"]
    assert stopped["signal"] == "SIGTERM" and 3 <= stopped["step"] < steps
    assert "resume=true" in out and f"stopped at step {stopped['step']}" in out
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == stopped["step"]  # no checkpoint was due: this one is the signal's
    resumed = subprocess.run([sys.executable, "-m", "mixtrain.train", *args, f"out_dir={run}", "resume=true"],
                             cwd=REPO, env=_env(probe, run), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_rows(_metrics(run), _metrics(ref))
    a, b = torch.load(tmp_path / "p_ref" / "weights_rank0.pt"), torch.load(probe / "weights_rank0.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_slurm_sigusr1_requeues_and_restart_continues_exactly(tiny_data_dir, tmp_path):
    steps = 10
    extra = ["trainer.accelerator=cpu", "trainer.precision=32-true", f"trainer.max_steps={steps}",
             "checkpoint_every_n_steps=100"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    sbatch = ["bash", str(REPO / "launch" / "slurm.sbatch")]
    done = subprocess.run([*sbatch, *_common(tiny_data_dir, f"out_dir={ref}", *extra)], cwd=REPO,
                          env=_slurm_env(tmp_path / "p_ref", ref, 1, 2), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = tmp_path / "p_run"
    proc = subprocess.Popen([*sbatch, *_common(tiny_data_dir, f"out_dir={run}", *extra)], cwd=REPO,
                            env=_slurm_env(probe, run, 1, 2, MIXTRAIN_PROBE_STEP_SLEEP_S="0.5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(probe, 3, proc)
    # `sbatch --signal=SIGUSR1@90` signals every task of the step (not the batch shell): the stand-in
    # srun forwards it to each
    os.kill(int((probe / "srun.pid").read_text()), signal.SIGUSR1)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-3000:]
    assert (probe / "scontrol.txt").read_text().split() == ["requeue", "4242"]  # rank 0 requeued the job
    stopped = json.loads((run / "summary.json").read_text())["stopped_by"]
    assert stopped["signal"] == "SIGUSR1" and 3 <= stopped["step"] < steps
    # the requeued job: same command line, SLURM_RESTART_COUNT=1; resume=auto (the sbatch default) continues
    again = subprocess.run([*sbatch, *_common(tiny_data_dir, f"out_dir={run}", *extra)], cwd=REPO,
                           env=_slurm_env(probe, run, 1, 2, SLURM_RESTART_COUNT="1"), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"continuing from {run}/checkpoints/last.ckpt (step {stopped['step']})" in again.stdout
    _assert_same_rows(_metrics(run), _metrics(ref))
    for rank in (0, 1):
        a, b = torch.load(tmp_path / "p_ref" / f"weights_rank{rank}.pt"), torch.load(probe / f"weights_rank{rank}.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (probe / "writes_rank1.txt").exists()


@pytest.mark.parametrize("launcher", ["slurm", "submitit_slurm", "local", "submitit_local"])
def test_submitit_launchers_compose_with_a_sweep(launcher, tmp_path):
    """conf/hydra/launcher/slurm.yaml once listed itself in its defaults (RecursionError)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    kind = "Slurm" if "slurm" in launcher else "Local"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for point in ("uniform", "natural"):  # every point of the sweep mixing=uniform,natural
            cfg = compose("train", overrides=[f"hydra/launcher={launcher}", f"mixing={point}",
                                              f"sweep_dir={tmp_path}"], return_hydra_config=True)
            assert cfg.mixing.name == point
            assert get_class(cfg.hydra.launcher._target_).__name__ == f"{kind}Launcher"
            assert str(tmp_path) in cfg.hydra.launcher.submitit_folder  # the plugin's schema, interpolated
            if launcher == "slurm":  # ours on top of the plugin's schema: one task per GPU, 8 per node
                assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node == 8
                assert cfg.hydra.launcher.signal_delay_s == 120  # a field only the plugin's schema has


@pytest.mark.slow
def test_two_job_sweep_through_submitit_local(tiny_data_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "mixtrain.train", "-m", "hydra/launcher=local", "mixing=uniform,natural",
           *_common(tiny_data_dir, f"sweep_dir={sweep}", "trainer.max_steps=2", "trainer.val_check_interval=2")]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO),
                          "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0-uniform-seed0", "1-natural-seed0"], jobs
    assert len(list((sweep / ".submitit").iterdir())) >= 2  # each point ran as a submitit job
    for job in jobs:
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["step"] == 2 and summary["strategy"] == job.split("-")[1]
        assert (sweep / job / ".hydra" / "overrides.yaml").is_file()


def _cfg(data_dir, out_dir, *extra):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=_common(data_dir, f"out_dir={out_dir}", "logger=csv",
                                                  "checkpoint_every_n_steps=2", *extra))


def test_resume_auto_starts_then_continues_and_failed_starts_do_not_count(tiny_data_dir, tmp_path, capsys):
    from conftest import train_composed as train

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")  # what a start that failed before step 1 left
    (run / "metrics.csv").write_text("step,train/loss\n")
    (run / "train.log").write_text("FileNotFoundError ...\n")
    assert train(_cfg(tiny_data_dir, run, "trainer.max_steps=2", "resume=auto"))["step"] == 2
    assert "resume=auto: no checkpoint" in capsys.readouterr().out
    assert "FileNotFoundError" not in (run / "train.log").read_text()  # the failed start's files are gone
    assert train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", "resume=auto"))["step"] == 4
    assert f"continuing from {run}/checkpoints/last.ckpt (step 2)" in capsys.readouterr().out
    assert [int(float(r["step"])) for r in _metrics(run)] == [1, 2, 3, 4]
    with pytest.raises(FileExistsError, match="resume=auto"):  # a finished run still refuses a new one
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=2"))
    with pytest.raises(ValueError, match="resume=maybe: use false"):
        train(_cfg(tiny_data_dir, tmp_path / "other", "resume=maybe"))


def test_resume_on_another_world_size_keeps_the_global_batch(tiny_data_dir, tmp_path, capsys):
    """A checkpoint of 2 processes x 128 tokens, resumed on 1: accumulation 2 keeps 256 tokens per step."""
    from mixtrain.train.checkpoints import BATCH_KEY
    from conftest import train_composed as train

    run = tmp_path / "run"
    train(_cfg(tiny_data_dir, run, "trainer.max_steps=2"))
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt[BATCH_KEY] == {"world_size": 1, "accumulate_grad_batches": 1, "global_batch_tokens": 4 * 32,
                               "batch_size": 4, "seq_len": 32}
    ckpt[BATCH_KEY] = {"world_size": 2, "accumulate_grad_batches": 1, "global_batch_tokens": 2 * 4 * 32}
    torch.save(ckpt, last)  # as if the run had been on 2 processes
    os.remove(str(last) + ".sha256")  # edited by hand: its digest no longer describes it (unverified, not damaged)
    summary = train(_cfg(tiny_data_dir, run, "trainer.max_steps=4", "resume=true"))
    out = capsys.readouterr().out
    assert "resume on 1 processes (" in out and "accumulation 1 -> 2 keeps the global batch at 256 tokens" in out
    tokens = {int(float(r["step"])): float(r["tokens"]) for r in _metrics(run) if r["tokens"]}
    assert tokens[4] - tokens[3] == 256  # after the resume, a step sees 2 micro-batches of 128 tokens
    assert summary["step"] == 4
    ckpt = torch.load(last, weights_only=True)
    ckpt[BATCH_KEY] = {"world_size": 2, "accumulate_grad_batches": 1, "global_batch_tokens": 2 * 3 * 32}
    torch.save(ckpt, last)  # 2 processes x batch_size 3: 192 tokens, not a multiple of this run's 128
    os.remove(str(last) + ".sha256")
    with pytest.raises(ValueError, match=r"ran on 2 processes with 192 tokens per step.*resume_global_batch=change"):
        train(_cfg(tiny_data_dir, run, "trainer.max_steps=6", "resume=true"))


def test_entry_point_turns_hydra_output_off_on_every_rank(monkeypatch):
    from mixtrain.hydra_app import entry_argv
    from mixtrain.train.launch import hydra_subdir

    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MIXTRAIN_HYDRA_SUBDIR", ".hydra")  # entry_argv sets it: restored after the test
    assert entry_argv(["train", "a=1"]) == ["train", "hydra.output_subdir=null", "a=1"]
    assert hydra_subdir() == ".hydra"
    assert entry_argv(["train", "hydra.output_subdir=meta"])[1:] == ["hydra.output_subdir=null"]
    assert hydra_subdir() == "meta"  # the folder the user asked for: train/run.py writes it on rank 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert entry_argv(["train"])[1:] == ["hydra.output_subdir=null", "hydra.run.dir=."]


def test_torchrun_sh_without_gpus_says_so_and_stops(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH without nvidia-smi: no GPU on this machine
    bin_dir.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "PYTHON": "false"}
    env.pop("GPUS", None)
    proc = subprocess.run(["bash", str(REPO / "launch" / "torchrun.sh"), f"out_dir={tmp_path}/run"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no GPU found" in proc.stderr and "ACCELERATOR=cpu" in proc.stderr
    assert not (tmp_path / "run").exists()


def _fsdp_run(data_dir, probe, run, crash="-", *extra):
    """tests/scripts/ddp_probe.py: train() in-process, Lightning's launcher starts the second rank."""
    cmd = [sys.executable, str(REPO / "tests" / "scripts" / "ddp_probe.py"), str(probe), crash,
           *_common(data_dir, f"out_dir={run}", "trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2",
                    "trainer.precision=32-true", "trainer.max_steps=6", "checkpoint_every_n_steps=2", "logger=csv",
                    *extra)]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _exported(run: Path, out: Path) -> dict:
    from safetensors.torch import load_file

    proc = subprocess.run([sys.executable, "-m", "mixtrain.model.export", str(run), "--out", str(out)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(out / "model.safetensors")


@pytest.mark.slow
def test_fsdp_trains_resumes_exactly_after_a_kill_and_exports(tiny_data_dir, tmp_path):
    full = _fsdp_run(tiny_data_dir, tmp_path / "p_full", tmp_path / "full")
    assert full.returncode == 0, full.stderr[-4000:]
    assert (tmp_path / "full" / "checkpoints" / "last.ckpt" / ".metadata").is_file()  # sharded: a folder
    from mixtrain.store.checkpoint_digest import digest_problem

    assert (tmp_path / "full" / "checkpoints" / "last.ckpt" / "mixtrain.sha256").is_file()  # every shard's digest
    assert digest_problem(str(tmp_path / "full" / "checkpoints" / "last.ckpt")) is None
    crashed = _fsdp_run(tiny_data_dir, tmp_path / "p_crash", tmp_path / "run", "5")
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr + crashed.stdout
    resumed = _fsdp_run(tiny_data_dir, tmp_path / "p_resumed", tmp_path / "run", "-", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    _assert_same_rows(_metrics(tmp_path / "run"), _metrics(tmp_path / "full"))
    a, b = _exported(tmp_path / "full", tmp_path / "hf_full"), _exported(tmp_path / "run", tmp_path / "hf_run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_fsdp_on_two_simulated_nodes_trains_and_continues(tiny_data_dir, tmp_path):
    run, probe = tmp_path / "run", tmp_path / "probe"
    script = ["bash", str(REPO / "launch" / "smoke_2node.sh"), str(run), *_common(tiny_data_dir)[1:]]
    for steps in (4, 6):  # the second launch continues the first (resume=auto, the script's default)
        proc = subprocess.run(script, cwd=REPO, env=_env(probe, run, STEPS=str(steps), TRAINER="fsdp"),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "continuing from" in proc.stdout
    _check_one_complete_run(run, probe, ranks=2, steps=6, sharded=True)
    assert (run / "checkpoints" / "last.ckpt" / ".metadata").is_file()
    exported = _exported(run, tmp_path / "hf")
    assert exported and all(torch.isfinite(t).all() for t in exported.values())


def test_other_ranks_wait_for_rank0_files_with_a_timeout_and_a_clear_error(tmp_path, monkeypatch):
    from mixtrain.train.launch import wait_for

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MIXTRAIN_RANK0_WAIT_S", "0.3")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"rank 1: waited 0 s for rank 0 to write .*config.yaml \(the run.*"
                                           r"MIXTRAIN_RANK0_WAIT_S"):
        wait_for(str(tmp_path / "config.yaml"), "the run's config.yaml")
    assert time.monotonic() - started < 10
    (tmp_path / "config.yaml").write_text("x")
    wait_for(str(tmp_path / "config.yaml"), "the run's config.yaml")  # there: returns at once


def test_a_refused_run_rewrites_nothing_hydra_included(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mixtrain.train", *_common(tiny_data_dir, f"out_dir={run}", "logger=csv",
                                                              "trainer.max_steps=1")]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    assert subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=600).returncode == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert run / ".hydra" / "overrides.yaml" in before
    for extra in (["seed=1"], ["resume=true", "model.n_layer=3"]):  # a new run into it; a resume of another model
        refused = subprocess.run([*cmd, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert refused.returncode != 0, extra
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before, extra
