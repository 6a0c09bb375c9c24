#!/usr/bin/env bash
# The check to run before spending GPU hours: the simulated 2-node job on this one machine, through
# the same launcher a cluster uses (launch/torchrun.sh, 2 "nodes" x GPUS processes, CPU + gloo):
#
#   bash launch/smoke_2node.sh [OUT_DIR=runs/smoke_2node] [extra Hydra overrides...]
#   e.g. PYTHON=.venv/bin/python bash launch/smoke_2node.sh runs/smoke2 data_dir=data/demo
#
# Both "nodes" start the same command (only NODE_RANK differs) and must both exit 0; OUT_DIR must
# then hold one complete run (summary.json at the last step). STEPS (default 20) and GPUS (processes
# per node, default 1) set the size.
set -euo pipefail
OUT="${1:-runs/smoke_2node}"
shift $(( $# > 0 ? 1 : 0 ))
PYTHON="${PYTHON:-python}"
HERE="$(cd "$(dirname "$0")" && pwd)"
STEPS="${STEPS:-20}"
PORT="${MASTER_PORT:-$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
PIDS=()
for node in 0 1; do
  NNODES=2 NODE_RANK=$node MASTER_ADDR=127.0.0.1 MASTER_PORT="$PORT" ACCELERATOR=cpu GPUS="${GPUS:-1}" \
    RDZV_ID="smoke-$$" PYTHON="$PYTHON" bash "$HERE/torchrun.sh" experiment=smoke out_dir="$OUT" \
    trainer.max_steps="$STEPS" checkpoint_every_n_steps="$STEPS" table_at_end=false "$@" &
  PIDS+=($!)
done
STATUS=0
for pid in "${PIDS[@]}"; do wait "$pid" || STATUS=$?; done
if [ "$STATUS" != 0 ]; then echo "smoke_2node: a node exited with status $STATUS (see above)" >&2; exit "$STATUS"; fi
"$PYTHON" - "$OUT" "$STEPS" <<'PY'
import json, sys
summary = json.load(open(f"{sys.argv[1]}/summary.json"))
assert summary["step"] == int(sys.argv[2]), f"summary.json step {summary['step']} != {sys.argv[2]}"
print(f"smoke_2node: OK, 2 nodes trained {summary['step']} steps into {sys.argv[1]}")
PY
