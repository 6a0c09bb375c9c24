"""Tests for mixtrain.cli, the `mixtrain` command (the Docker image's ENTRYPOINT): every
subcommand runs its module, Hydra overrides alone run train, MIXTRAIN_UMASK reaches the files."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixtrain.cli import COMMANDS, command_line, main

REPO = Path(__file__).resolve().parents[1]
ISSUE_COMMANDS = ("train", "prepare", "fit", "collect", "export", "generate", "evaluate", "report")


def test_every_subcommand_runs_its_module():
    assert set(ISSUE_COMMANDS) <= set(COMMANDS)
    for name, (module, _) in COMMANDS.items():
        assert command_line([name, "--x", "a b"]) == [sys.executable, "-m", module, "--x", "a b"]
        spec = importlib.util.find_spec(module)
        assert spec is not None, module
        if spec.submodule_search_locations:  # a package: python -m needs its __main__
            assert importlib.util.find_spec(module + ".__main__") is not None, module
    # the image's default and launch/docker.sh pass Hydra overrides only: that is train
    assert command_line(["data_dir=/data", "out_dir=/runs/x"])[1:] == ["-m", "mixtrain.train", "data_dir=/data",
                                                                       "out_dir=/runs/x"]
    assert command_line(["-m", "mixing=uniform,natural"])[2] == "mixtrain.train"
    with pytest.raises(ValueError, match=r"(?s)unknown command .trian.*commands:.*train"):
        command_line(["trian"])


def test_help_and_unknown_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and all(f"  {name} " in out for name in ISSUE_COMMANDS)
    with pytest.raises(SystemExit) as exit_:
        main(["trian", "x"])
    assert exit_.value.code == 2 and "unknown command 'trian'" in capsys.readouterr().err


def _mixtrain(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixtrain.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_mixtrain_umask_makes_the_written_files_group_readable(tiny_data_dir, tmp_path):
    """A real subcommand through exec: `mixtrain proxy` writes its mixture files under the umask."""
    for umask, mode in (("0002", 0o664), ("0077", 0o600)):
        out = tmp_path / umask
        proc = _mixtrain("proxy", "--data-dir", str(tiny_data_dir), "--num-runs", "2", "--out", str(out),
                         env={"MIXTRAIN_UMASK": umask})
        assert proc.returncode == 0, proc.stderr[-2000:]
        files = sorted(out.glob("*.yaml"))
        assert files and all(f.stat().st_mode & 0o777 == mode for f in files), (umask, files)
    proc = _mixtrain("proxy", "--help", env={"MIXTRAIN_UMASK": "rw-r--r--"})
    assert proc.returncode == 2 and "MIXTRAIN_UMASK='rw-r--r--' is not an octal umask" in proc.stderr


def test_every_argparse_command_shows_its_mixtrain_form_in_help(capsys):
    """`mixtrain X --help` says `usage: mixtrain X`, not `python -m mixtrain.<module>` or `fit.py`."""
    hydra_commands = {"train", "prepare", "entropy"}  # Hydra's own --help
    for name, (module, _) in COMMANDS.items():
        if name in hydra_commands:
            continue
        main_of = importlib.import_module(module + (".cli" if module == "mixtrain.report" else "")).main
        with pytest.raises(SystemExit) as exit_:
            main_of(["--help"])
        assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: mixtrain {name} "), name
