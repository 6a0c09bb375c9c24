#!/usr/bin/env bash
# Issue 20 item 1 on the demo corpus: does the scaling law (laws/scaling.py) fitted on three small
# model sizes predict the per-domain validation loss of a fourth, larger size that it never saw?
#
#   python -m mixtrain.prepare data=demo data_dir=data/demo
#   bash bench/held_out_size.sh data/demo runs/held_out_size          # ~80 min on one CPU core
#   SIZES="a:8:512:8 b:12:768:12 c:16:1024:16 d:24:1536:16" STEPS=20000 VAL_EVERY=5000 \
#     bash bench/held_out_size.sh DATA OUT trainer=gpu val_blocks_per_domain=256      # GPU scale (sketch)
# SIZES: name:n_layer:d_model:n_head, smallest first, the last one held out (default below); extra
# arguments after OUT are Hydra overrides for every run.
#
# 1. 11 proxy mixtures (mixtrain.fitting.proxy, concentration 3 so that 2k+1 = 11 mixtures identify the law)
# 2. all 11 mixtures at the smallest size s1 (2 layers x d_model 64), and 6 of them (every other) at s2
#    (3 x 96), s3 (4 x 128 = tiny) and the held-out s4 (5 x 192); constant LR, validated at 75/150/225/300
#    steps (4 budgets). The mixture term is shared by every size (additive form), so s1 identifies it and
#    the other sizes need only enough mixtures to separate N from h. A size whose OUT/runs/SIZE/DONE exists
#    is skipped: re-running continues.
# 3. collect -> table.csv (num_params, tokens on every row); fit --law scaling -> law.json, whose report
#    `held_out_size` is the law refitted without the largest size and its per-domain MRE on that size
# 4. bench/held_out_size_report.py prints the markdown table RESULTS.md carries
set -euo pipefail
DATA_DIR="${1:?usage: held_out_size.sh DATA_DIR OUT_DIR}"
OUT="${2:?usage: held_out_size.sh DATA_DIR OUT_DIR}"
shift 2
PYTHON="${PYTHON:-python}"
SIZES="${SIZES:-s1:2:64:2 s2:3:96:3 s3:4:128:4 s4:5:192:6}"
FIRST="${SIZES%% *}"; FIRST="${FIRST%%:*}"
STEPS="${STEPS:-300}"
VAL_EVERY="${VAL_EVERY:-75}"
mkdir -p "$OUT"
[ -f "$OUT/mixtures.txt" ] || "$PYTHON" -m mixtrain.fitting.proxy --data-dir "$DATA_DIR" --num-runs 11 --concentration 3 --out "$OUT/mixtures" > "$OUT/mixtures.txt"
ALL="$(cat "$OUT/mixtures.txt")"
HELD="$(echo "$ALL" | tr ',' '\n' | awk 'NR % 2 == 1' | paste -sd, -)"   # mixtures 0, 2, 4, ... at s4
DIRS=()
for size in $SIZES; do
  IFS=: read -r name n_layer d_model n_head <<< "$size"
  DIRS+=("$OUT/runs/$name")
  if [ -f "$OUT/runs/$name/DONE" ]; then echo "[held_out_size] $name done before, skipped"; continue; fi
  FILES="$ALL"; if [ "$name" != "$FIRST" ]; then FILES="$HELD"; fi
  "$PYTHON" -m mixtrain.train -m experiment=proxy data_dir="$DATA_DIR" sweep_dir="$OUT/runs/$name" \
    mixing=manual "mixing.weights_file=$FILES" model.n_layer="$n_layer" model.d_model="$d_model" model.n_head="$n_head" \
    trainer.max_steps="$STEPS" trainer.val_check_interval="$VAL_EVERY" checkpoint_every_n_steps="$STEPS" "$@"
  touch "$OUT/runs/$name/DONE"
done
"$PYTHON" -m mixtrain.fitting.collect "${DIRS[@]}" --out "$OUT/table.csv"
"$PYTHON" -m mixtrain.fitting.fit --table "$OUT/table.csv" --law scaling --out "$OUT/law.json"
"$PYTHON" bench/held_out_size_report.py "$OUT/law.json" "$OUT/table.csv" --plot "$OUT/held_out_size.png" | tee "$OUT/report.md"
