#!/usr/bin/env bash
# Run the mixtrain image on one node with all its GPUs, mounting data and runs:
#
#   docker build -t mixtrain .
#   DATA=/data/mix RUNS=/runs bash launch/docker.sh data_dir=/data out_dir=/runs/exp1 trainer=ddp
#
# Volumes: $DATA -> /data (prepared data_dir), $RUNS -> /runs (run directories).
# Multi-GPU inside one container uses Lightning's launcher (trainer=ddp trainer.devices=N).
set -euo pipefail
IMAGE="${IMAGE:-mixtrain}"
DATA="${DATA:?set DATA to the host folder holding the prepared data_dir}"
RUNS="${RUNS:?set RUNS to the host folder for run directories}"
exec docker run --rm --gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864 \
  -e WANDB_MODE="${WANDB_MODE:-offline}" ${WANDB_API_KEY:+-e WANDB_API_KEY} \
  -v "$DATA":/data -v "$RUNS":/runs "$IMAGE" "$@"
