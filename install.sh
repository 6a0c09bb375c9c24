#!/usr/bin/env bash
# Install mixtrain into a fresh virtual environment: the one install path the README, CI and Docker use.
#
#   bash install.sh                              # CPU: .venv with torch 2.13.0 (CPU wheel)
#   TORCH_SPEC="torch==2.13.0" VENV=/opt/venv bash install.sh   # CUDA box: the default PyPI torch is a CUDA build
#
# Why a script and not a bare `pip install -e .`: litdata declares an unpinned torchvision, and
# PyPI has no CPU build of it. Unpinned, pip swaps our CPU torch for a multi-GB CUDA torch;
# pinned, it installs a CUDA-only torchvision whose import breaks `import lightning` (through
# torchmetrics). mixtrain and litdata's token shards never use torchvision, so where it cannot
# import against the installed torch we remove it, and then prove the stack imports.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-dev}"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
# numpy with torch: torch imported without it (the version probe below) warns "Failed to initialize NumPy"
"$PY" -m pip install --quiet $TORCH_SPEC "numpy>=1.26"
# Constrain torch to what is installed now, so nothing below can replace it.
TORCH_NOW="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
echo "torch==$TORCH_NOW" > "$VENV/torch-constraint.txt"
"$PY" -m pip install --quiet -c "$VENV/torch-constraint.txt" -e ".[${EXTRAS}]"
if ! "$PY" -c "import torchvision" >/dev/null 2>&1; then
  echo "install.sh: torchvision cannot import against torch $TORCH_NOW (no matching build on PyPI); removing it (unused by mixtrain)."
  "$PY" -m pip uninstall --quiet -y torchvision
fi
"$PY" -c "import torch, lightning, litdata, sentencepiece, hydra; print(f'mixtrain env ok: torch {torch.__version__}, lightning {lightning.__version__}, litdata {litdata.__version__}, cuda={torch.cuda.is_available()}')"
