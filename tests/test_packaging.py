"""Tests for the install and the Docker image's files: pyproject builds without warnings and
declares the `mixtrain` command; install.sh installs numpy with torch; the Dockerfile runs every
command as a non-root user with the hf/eval/slurm extras; .dockerignore keeps runs and data out.
(No image is built here: the CUDA base image needs a registry the test machines cannot reach.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_metadata_builds_without_warnings_and_declares_the_command(tmp_path):
    src = tmp_path / "src"
    (src / "mixtrain").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    (src / "mixtrain" / "__init__.py").write_text("")
    (tmp_path / "meta").mkdir()
    proc = subprocess.run([sys.executable, "-W", "always", "-c",
                           "import sys; from setuptools import build_meta; "
                           "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))", str(tmp_path / "meta")],
                          cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr and "deprecated" not in proc.stderr, proc.stderr[-3000:]
    dist_info = tmp_path / "meta" / proc.stdout.strip().splitlines()[-1]
    assert "License-Expression: Apache-2.0" in (dist_info / "METADATA").read_text()
    assert re.search(r"^mixtrain = mixtrain\.cli:main$", (dist_info / "entry_points.txt").read_text(), re.M)


def test_install_sh_installs_numpy_with_torch_before_importing_it():
    lines = (REPO / "install.sh").read_text().splitlines()
    torch_install = next(i for i, line in enumerate(lines) if "pip install" in line and "$TORCH_SPEC" in line)
    first_import = next(i for i, line in enumerate(lines) if "import torch" in line)
    assert "numpy" in lines[torch_install] and torch_install < first_import


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_runs_every_command_as_a_non_root_user():
    steps = _instructions((REPO / "Dockerfile").read_text())
    last = {op: arg for op, arg in steps}
    assert json.loads(last["ENTRYPOINT"]) == ["mixtrain"]
    assert json.loads(last["CMD"])[0] == "train"
    user = last["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric: Kubernetes' runAsNonRoot can check it
    ops = [op for op, _ in steps]
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op == "RUN")  # nothing runs as root after
    install = next(arg for op, arg in steps if op == "RUN" and "install.sh" in arg)
    extras = re.search(r"EXTRAS=(\S+)", install).group(1).split(",")
    assert {"hf", "eval", "slurm"} <= set(extras)
    assert re.search(r"MIXTRAIN_UMASK=00[02]2", last["ENV"])  # group-readable files in the volumes
    copied = {arg.split()[0] for op, arg in steps if op == "COPY"}
    assert {"mixtrain", "conf", "examples"} <= copied  # examples: the local eval task


def test_dockerignore_keeps_runs_data_and_environments_out_of_the_context():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"runs", "data", ".venv", ".git", "outputs", "multirun", "wandb"} <= ignored
