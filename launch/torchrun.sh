#!/usr/bin/env bash
# Multi-node, multi-GPU training on a cluster WITHOUT SLURM (torchrun, c10d rendezvous).
# Run the same command on every node; only NODE_RANK differs:
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0.example MASTER_PORT=29500 GPUS=8 \
#     bash launch/torchrun.sh data_dir=/data/mix out_dir=/runs/exp1 model=small mixing=entropy
#
# Every argument is passed to `python -m mixtrain.train` as a Hydra override. The run directory
# (out_dir) must be on storage all nodes share and must be given explicitly: every rank uses the
# same place (never a per-process timestamp); only global rank 0 writes the run's files.
# resume=auto is the default: a relaunch continues from the run's checkpoint, a first launch starts.
# TRAINER=fsdp for FSDP2 (default ddp).
# ACCELERATOR=cpu runs GPUS processes per node on CPU with gloo (launch/smoke_2node.sh: the check
# to run before spending GPU hours); otherwise GPUS defaults to the GPUs nvidia-smi lists.
set -euo pipefail
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
ACCELERATOR="${ACCELERATOR:-gpu}"
if [ "$ACCELERATOR" = cpu ]; then
  GPUS="${GPUS:-1}"
  DEVICE_ARGS=(trainer.accelerator=cpu trainer.precision=32-true)
else
  GPUS="${GPUS:-$( (nvidia-smi -L 2>/dev/null || true) | wc -l)}"
  DEVICE_ARGS=()
fi
if [ "$GPUS" -lt 1 ]; then
  echo "launch/torchrun.sh: no GPU found (nvidia-smi lists none) and GPUS is not set; set GPUS=N on a GPU node," \
       "or ACCELERATOR=cpu GPUS=N for N CPU processes per node (gloo)" >&2
  exit 2
fi
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
PYTHON="${PYTHON:-python}"
case " $* " in *" out_dir="*) ;; *) echo "launch/torchrun.sh: give out_dir=... (shared by all nodes)" >&2; exit 2;; esac
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="$NNODES" --nproc-per-node="$GPUS" --node-rank="$NODE_RANK" \
  --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="${RDZV_ID:-mixtrain}" \
  -m mixtrain.train trainer="${TRAINER:-ddp}" trainer.devices="$GPUS" trainer.num_nodes="$NNODES" resume=auto "${DEVICE_ARGS[@]}" "$@"
