#!/bin/bash
# 5-seed comparison on the demo (issue 31 evidence, item 5b): chameleon with the paper's embedder (its own
# uniform proxy run, mixing.proxy_steps=150 at the runs' model size, 2048 random training windows per domain
# embedded by the proxy's middle layer) vs chameleon with the hashing embedder (mixing.embeddings=demoE) vs uniform.
# The proxy is trained by the first chameleon-run run and reused by the other four (the log says so).
cd /work/wt/i31b
export PYTHONPATH=/work/wt/i31b WANDB_MODE=offline OMP_NUM_THREADS=1
PY=/work/main/.venv/bin/python
D=/tmp/i31b
mkdir -p $D/runemb/logs
# strategy-major order: every chameleon-run seed first (the point of the comparison), then the baselines
for m in chameleon-run uniform chameleon-hash; do
  for seed in 0 1 2 3 4; do
    case $m in
      chameleon-run) extra=(mixing=chameleon mixing.name=chameleon-run mixing.proxy_steps=150 mixing.proxy_dir=$D/proxies) ;;
      chameleon-hash) extra=(mixing=chameleon mixing.name=chameleon-hash mixing.embeddings=$D/demoE) ;;
      uniform) extra=(mixing=uniform) ;;
    esac
    out=$D/runemb/runs/$m-seed$seed
    [ -f $out/summary.json ] && continue
    rm -rf $out
    nice -n 19 timeout 900 $PY -m mixtrain.train experiment=compare data_dir=$D/demo out_dir=$out prepare_if_missing=false \
      seed=$seed seq_len=64 batch_size=8 model.n_layer=2 model.d_model=64 model.n_head=2 \
      trainer.max_steps=150 trainer.val_check_interval=50 checkpoint_every_n_steps=150 trainer.enable_progress_bar=false "${extra[@]}" \
      > $D/runemb/logs/$m-seed$seed.log 2>&1
    echo "$(date -u +%T) $m seed$seed rc=$?" >> $D/runemb/progress.log
  done
done
