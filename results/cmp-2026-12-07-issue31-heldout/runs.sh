#!/bin/bash
# 5-seed comparison on the demo with `legal` held out as an eval-only target (issue 31 evidence, item 5):
# uniform and natural over the 4 training domains vs domain2vec aimed at legal's meta-domain vector;
# every run is scored on legal's validation loss (val/target, target.importance={legal: 1}).
# Data: the demo prepared dir and its hashing embeddings (mixtrain embed data/demo/raw --out demoE).
cd /work/wt/i31b
export PYTHONPATH=/work/wt/i31b WANDB_MODE=offline OMP_NUM_THREADS=1
PY=/work/main/.venv/bin/python
D=/tmp/i31b
mkdir -p $D/heldout/logs
for seed in 0 1 2 3 4; do
  for m in uniform natural domain2vec; do
    extra=()
    [ $m = domain2vec ] && extra=(mixing.embeddings=$D/demoE 'mixing.target=[legal]' mixing.meta_domains=16)
    out=$D/heldout/runs/$m-seed$seed
    [ -f $out/summary.json ] && continue
    rm -rf $out
    nice -n 19 timeout 900 $PY -m mixtrain.train experiment=compare data_dir=$D/demo out_dir=$out prepare_if_missing=false \
      seed=$seed mixing=$m seq_len=64 batch_size=8 model.n_layer=2 model.d_model=64 model.n_head=2 \
      'eval_only_domains=[legal]' 'target.importance={legal: 1}' \
      trainer.max_steps=150 trainer.val_check_interval=50 checkpoint_every_n_steps=150 trainer.enable_progress_bar=false "${extra[@]}" \
      > $D/heldout/logs/$m-seed$seed.log 2>&1
    echo "$(date -u +%T) $m seed$seed rc=$?" >> $D/heldout/progress.log
  done
done
