#!/bin/bash
# Check: chameleon training its own proxy (mixing.proxy_steps=150, the comparison's settings) gives the same
# weights as mixing.embed_run=<the comparison's uniform seed-0 run> used by runs.sh (1 training step after).
cd /work/wt/i31b
export PYTHONPATH=/work/wt/i31b WANDB_MODE=offline OMP_NUM_THREADS=1
D=/tmp/i31b
rm -rf $D/ownproxy
nice -n 19 timeout 1800 /work/main/.venv/bin/python -m mixtrain.train experiment=compare data_dir=$D/demo out_dir=$D/ownproxy/runs/chameleon-own prepare_if_missing=false \
  seed=0 seq_len=64 batch_size=8 model.n_layer=2 model.d_model=64 model.n_head=2 \
  trainer.max_steps=150 trainer.val_check_interval=50 checkpoint_every_n_steps=150 trainer.enable_progress_bar=false \
  mixing=chameleon mixing.name=chameleon-own mixing.proxy_steps=150 > $D/ownproxy.log 2>&1
echo "rc=$?"
