#!/usr/bin/env bash
# CI, after the main suite: the litdata-dependent tests again, on the LOWEST litdata release of the
# range pinned in pyproject.toml (mixtrain/store/litdata_range.py says why the range is what it is). The
# main suite has already run on the HIGHEST: a fresh `bash install.sh` resolves the newest release
# inside the range.
#
#   bash .ci/litdata_range.sh             # after `bash install.sh`; VENV=path for another venv
#
# How: the low release goes into a temporary folder put first on PYTHONPATH (`pip install --target
# --no-deps`), so the venv and the litdata it resolved stay as they are (running .ci/run never
# downgrades a developer's .venv), and test subprocesses see the same litdata. That is sound while
# the low release needs nothing the venv lacks: checked below (litdata 0.2.70..0.2.76 declare the
# same unpinned dependencies). Cost: about 1.5 min on 2 cores (one small wheel + ~90 tests).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
LOW="$("$PY" -c 'from mixtrain.store.litdata_range import LITDATA_MIN; print(LITDATA_MIN)')"
HIGH="$("$PY" -c 'import litdata; print(litdata.__version__)')"
echo "litdata range: the main suite ran on litdata $HIGH (the newest release in range); now the litdata tests on $LOW"

OVERLAY="$(mktemp -d)"
trap 'rm -rf "$OVERLAY"' EXIT
"$PY" -m pip install --quiet --no-deps --target "$OVERLAY" "litdata==$LOW"
export PYTHONPATH="$OVERLAY${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - "$LOW" <<'EOF'
import re
import sys
from importlib import metadata

import litdata

low = sys.argv[1]
if litdata.__version__ != low:
    sys.exit(f"litdata_range.sh: the PYTHONPATH overlay imports litdata {litdata.__version__}, expected {low}")
missing = []
for req in metadata.requires("litdata") or []:
    name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
    if "extra ==" in req or name == "torchvision":  # torchvision: removed on purpose by install.sh
        continue
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        missing.append(req)
if missing:
    sys.exit(f"litdata_range.sh: litdata {low} needs {missing}, which the venv lacks; install them "
             "into the overlay (drop --no-deps) or use a second venv")
print(f"litdata {low} from {litdata.__file__}")
EOF

export WANDB_MODE="${WANDB_MODE:-offline}"
"$PY" -m pytest -q tests/store/test_litdata_range.py tests/sampler/test_sampler.py tests/prepare/test_shards.py tests/prepare/test_entropy.py \
  tests/prepare/test_faults_prepare.py tests/train/test_train.py
