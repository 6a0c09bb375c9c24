#!/usr/bin/env bash
# Sequential proxy sweep (issue 32): the first batch, then ROUNDS rounds of collect -> fit -> `proxy --next` -> train.
# Started by launch/proxy_sweep.sh when ROUNDS is set (same arguments and knobs):
#
#   ROUNDS=3 PER_ROUND=8 bash launch/proxy_sweep.sh DATA_DIR OUT_DIR [FIRST_BATCH=16] [Hydra overrides...]
#   e.g. PYTHON=.venv/bin/python ROUNDS=3 PER_ROUND=8 bash launch/proxy_sweep.sh data/demo runs/search 16 trainer.max_steps=100
#
# Knobs: ROUNDS (rounds after the first batch), PER_ROUND (mixtures per round), METHOD (thompson | climb | qei;
# laws/optim/acquisition.py), POOL (a CSV of candidate mixtures: `--next` chooses among its rows; next.csv keeps
# its run column), LAW (fitted each round, default ridge), SEED, TARGET_STEP (default 10 x the proxies' last
# step), CONCENTRATION and SCHEDULE as in proxy_sweep.sh.
# Layout: OUT/runs/round-R/ (the runs of round R), OUT/round-R/{law.json, weights.yaml} (fit and proposal after
# round R's runs), OUT/round-R/next/ (the mixtures of round R, R >= 1), OUT/table.csv (every round's runs),
# OUT/rounds.png (predicted best and its interval per round: python -m mixtrain.fitting.search_rounds OUT),
# OUT/weights.yaml (the last round's proposal).
# Sizes too (issue 32): POOL with `num_params` and `model` columns (model: a conf/model preset, optionally with
# ;key=value overrides, e.g. tiny;model.n_layer=8; mixtrain.fitting.search_loop) makes round 0 a
# random draw of the pool's rows (a fifth at the largest size, the rest at the cheapest), each round's chosen
# rows train at the size they name (one sweep per model preset: OUT/runs/round-R/<model>/), and each round's
# weights.yaml is the multi-fidelity GP's recommendation for the largest size (not `fit --optimize`).
# Resumable: a round's runs are marked done (OUT/runs/round-R/.done) only after its sweep finished; rerun the
# same command after a crash and finished rounds are skipped; an unfinished round's runs are moved aside to
# OUT/runs/.incomplete-round-R-<time> (dot folders are not collected) and the round is trained again with the
# same mixtures (OUT/round-R/next is kept: --next is seeded).
set -euo pipefail
DATA_DIR="${1:?usage: ROUNDS=3 PER_ROUND=8 proxy_sweep.sh DATA_DIR OUT_DIR [FIRST_BATCH] [overrides...]}"
OUT="${2:?usage: ROUNDS=3 PER_ROUND=8 proxy_sweep.sh DATA_DIR OUT_DIR [FIRST_BATCH] [overrides...]}"
FIRST="${3:-16}"
shift $(( $# < 3 ? $# : 3 ))
PYTHON="${PYTHON:-python}"
ROUNDS="${ROUNDS:?ROUNDS: rounds after the first batch}"
PER_ROUND="${PER_ROUND:-8}"
METHOD="${METHOD:-thompson}"
LAW="${LAW:-ridge}"
SEED="${SEED:-0}"
CONCENTRATION="${CONCENTRATION:-10}"
SCHEDULE="${SCHEDULE:-constant}"
POOL_ARGS=()
if [ -n "${POOL:-}" ]; then POOL_ARGS=(--pool "$POOL"); fi
mkdir -p "$OUT/runs"

train_round() {  # train_round R FILES: the sweep of round R, skipped when done, restarted clean when not
  local r="$1" files="$2" dir="$OUT/runs/round-$1"
  shift 2  # the rest: the Hydra overrides of the proxy runs
  if [ -f "$dir/.done" ]; then echo "[proxy rounds] round $r: runs done, skipped"; return; fi
  if [ -d "$dir" ]; then mv "$dir" "$OUT/runs/.incomplete-round-$r-$(date +%s)"; fi
  if [ "$KIND" = multi ]; then  # one sweep per model preset the chosen rows name (search_loop groups)
    local model mfiles size
    while read -r model mfiles; do  # model: a preset, optionally ;key=value overrides (tiny;model.n_layer=8)
      IFS=';' read -r -a size <<< "$model"
      echo "[proxy rounds] round $r: training $(echo "$mfiles" | tr ',' '\n' | wc -l) proxy runs at model=$model -> $dir/${model//[;=]/_}"
      "$PYTHON" -m mixtrain.train -m experiment=proxy data_dir="$DATA_DIR" sweep_dir="$dir/${model//[;=]/_}" \
        "model=${size[0]}" "${size[@]:1}" mixing=manual "mixing.weights_file=$mfiles" "optim.schedule=$SCHEDULE" "$@" < /dev/null
    done < <("$PYTHON" -m mixtrain.fitting.search_loop groups "$files")
  else
    echo "[proxy rounds] round $r: training $(echo "$files" | tr ',' '\n' | wc -l) proxy runs -> $dir"
    "$PYTHON" -m mixtrain.train -m experiment=proxy data_dir="$DATA_DIR" sweep_dir="$dir" \
      mixing=manual "mixing.weights_file=$files" "optim.schedule=$SCHEDULE" "$@"
  fi
  touch "$dir/.done"
}

fit_round() {  # fit_round R: collect every finished round, fit, optimise -> OUT/round-R/
  local r="$1" dir="$OUT/round-$1"
  mkdir -p "$dir"
  "$PYTHON" -m mixtrain.fitting.collect "$OUT/runs" --out "$OUT/table.csv"
  if [ "$KIND" = multi ]; then  # sizes mixed in one table: the multi-fidelity GP recommends for the largest size
    "$PYTHON" -m mixtrain.fitting.search_loop recommend --table "$OUT/table.csv" --pool "$POOL" --out "$dir/weights.yaml"
    return
  fi
  "$PYTHON" -m mixtrain.fitting.fit --table "$OUT/table.csv" --law "$LAW" --out "$dir/law.json"
  local step="${TARGET_STEP:-}"
  if [ -z "$step" ]; then
    step=$("$PYTHON" -c "import csv,sys; print(10*max(int(float(r['step'])) for r in csv.DictReader(open(sys.argv[1]))))" "$OUT/table.csv")
  fi
  "$PYTHON" -m mixtrain.fitting.fit --law-file "$dir/law.json" --optimize --step "$step" --data-dir "$DATA_DIR" \
    --prefer-best-run --out "$dir/weights.yaml"
}

KIND=single
if [ -n "${POOL:-}" ]; then KIND=$("$PYTHON" -m mixtrain.fitting.search_loop kind "$POOL"); fi
if [ "$KIND" = multi ] && [ ! -f "$OUT/round-0/mixtures.txt" ]; then  # round 0 from the pool: cheap rows + a few large
  mkdir -p "$OUT/round-0"
  "$PYTHON" -m mixtrain.fitting.search_loop first "$POOL" --num-runs "$FIRST" --seed "$SEED" --out "$OUT/round-0/next" \
    > /dev/null
  echo "$OUT/round-0/next" > "$OUT/round-0/mixtures.txt"
fi
if [ ! -f "$OUT/round-0/mixtures.txt" ]; then
  mkdir -p "$OUT/round-0"
  "$PYTHON" -m mixtrain.fitting.proxy --data-dir "$DATA_DIR" --num-runs "$FIRST" --concentration "$CONCENTRATION" \
    --seed "$SEED" --out "$OUT/round-0/mixtures" > "$OUT/round-0/mixtures.txt.tmp"
  mv "$OUT/round-0/mixtures.txt.tmp" "$OUT/round-0/mixtures.txt"
fi
train_round 0 "$(cat "$OUT/round-0/mixtures.txt")" "$@"
fit_round 0
for r in $(seq 1 "$ROUNDS"); do
  if [ ! -f "$OUT/round-$r/next/files.txt" ]; then
    mkdir -p "$OUT/round-$r/next"
    "$PYTHON" -m mixtrain.fitting.proxy --next "$PER_ROUND" --table "$OUT/table.csv" --out "$OUT/round-$r/next" \
      --method "$METHOD" --law "$LAW" --seed "$((SEED + r))" ${POOL_ARGS[@]+"${POOL_ARGS[@]}"} > "$OUT/round-$r/next/files.tmp"
    mv "$OUT/round-$r/next/files.tmp" "$OUT/round-$r/next/files.txt"
  fi
  if [ "$KIND" = multi ]; then files="$OUT/round-$r/next"; else files="$(cat "$OUT/round-$r/next/files.txt")"; fi
  train_round "$r" "$files" "$@"
  fit_round "$r"
done
cp "$OUT/round-$ROUNDS/weights.yaml" "$OUT/weights.yaml"
"$PYTHON" -m mixtrain.fitting.search_rounds "$OUT" --out "$OUT/rounds.png"
echo "proxy rounds done: $OUT/weights.yaml (the last round's proposal), $OUT/rounds.png, $OUT/table.csv"
