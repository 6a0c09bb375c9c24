#!/bin/bash
# 5-seed comparison on the demo: uniform, natural, chameleon, domain2vec (issue 31 evidence)
cd /work/wt/i31
export PYTHONPATH=/work/wt/i31 WANDB_MODE=offline OMP_NUM_THREADS=1
PY=/tmp/i30_venv/bin/python
for seed in 0 1 2 3 4; do
  for m in uniform natural chameleon domain2vec; do
    extra=()
    [ $m = chameleon ] && extra=(mixing.embeddings=/tmp/i31/demoE)
    [ $m = domain2vec ] && extra=(mixing.embeddings=/tmp/i31/demoE 'mixing.target={code: 1, cpp: 1, prose: 1, legal: 1, data: 1}' mixing.meta_domains=16)
    out=/tmp/i31/cmp/runs/$m-seed$seed
    [ -f $out/summary.json ] && continue
    timeout 600 $PY -m mixtrain.train experiment=compare data_dir=/tmp/i31/demo out_dir=$out prepare_if_missing=false \
      seed=$seed mixing=$m seq_len=64 batch_size=8 model.n_layer=2 model.d_model=64 model.n_head=2 \
      trainer.max_steps=150 trainer.val_check_interval=50 checkpoint_every_n_steps=150 trainer.enable_progress_bar=false "${extra[@]}" \
      > /tmp/i31/cmp/$m-seed$seed.log 2>&1
    echo "$(date -u +%T) $m seed$seed rc=$?"
  done
done
