#!/usr/bin/env bash
# Issue 12's benchmark goal at MATCHED length: is the law's optimum at least as good as the best
# of the proxies it was fitted on, when the candidates are trained exactly like the proxies?
#
#   bash launch/matched_regret.sh [DATA_DIR=/tmp/h6/demo] [OUT=/tmp/h6] [S=100] [SEEDS=1,2,3]
#   e.g. OMP_NUM_THREADS=1 PYTHON=.venv/bin/python PARALLEL=2 bash launch/matched_regret.sh /tmp/h6/demo /tmp/h6 100 1,2,3
#
# 1. DATA_DIR: the demo corpus, prepared if DATA_DIR/manifest.json is missing.
# 2. Proxies: launch/proxy_sweep.sh with NUM_PROXIES (16) runs of experiment=proxy (constant LR), S
#    steps, seed 0, and TARGET_STEP=S: the law is read at exactly the proxies' length, schedule and
#    batch -> OUT/proxy/{table.csv,law.json,weights.yaml}. Skipped if OUT/proxy/weights.yaml exists.
#    Also `fit --law auto` on the same table -> OUT/proxy/{law_auto.json,weights_auto.yaml}.
# 3. Candidates, each trained with the proxies' settings (experiment=proxy, optim.schedule=constant,
#    trainer.max_steps=S) and mixing=manual for every seed in SEEDS (fresh draws: the proxies used
#    seed 0): law (OUT/proxy/weights.yaml), law_auto (OUT/proxy/weights_auto.yaml; AUTO=0 skips it),
#    best_proxy (the proxy mixture with the lowest final mean val loss in table.csv, re-run so the
#    pick on seed 0 carries no winner's curse), uniform and natural (the sweep's own mixture files).
#    -> OUT/runs/<candidate>-seed<k>/ ; a run with a DONE file is skipped (re-running resumes).
#    PARALLEL (default 1) runs that many candidate runs at once. LAW_SEED0=1 (default) also trains
#    law (and law_auto) on seed 0, the proxies' own seed: the literal goal "<= the best of the proxies"
#    on the seed the proxies were picked on (biased towards the best proxy: it is a minimum of 16).
# 4. python bench/matched_regret.py OUT: per-seed mean val loss, paired differences law - X with a
#    95% t-interval, the law's predicted loss of its optimum vs observed, TV to the nearest proxy.
# Extra arguments after the four positional ones are Hydra overrides for every run (proxies too).
set -euo pipefail
DATA_DIR="${1:-/tmp/h6/demo}"
OUT="${2:-/tmp/h6}"
S="${3:-100}"
SEEDS="${4:-1,2,3}"
shift $(( $# < 4 ? $# : 4 ))
PYTHON="${PYTHON:-python}"
NUM_PROXIES="${NUM_PROXIES:-16}"
PARALLEL="${PARALLEL:-1}"
AUTO="${AUTO:-1}"
LAW_SEED0="${LAW_SEED0:-1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
PROXY="$OUT/proxy"

if [ ! -f "$DATA_DIR/manifest.json" ]; then
  "$PYTHON" -m mixtrain.prepare data=demo data_dir="$DATA_DIR"
fi

if [ ! -f "$PROXY/weights.yaml" ]; then
  PYTHON="$PYTHON" TARGET_STEP="$S" bash "$HERE/proxy_sweep.sh" "$DATA_DIR" "$PROXY" "$NUM_PROXIES" \
    trainer.max_steps="$S" "$@"
fi
if [ "$AUTO" = 1 ] && [ ! -f "$PROXY/weights_auto.yaml" ]; then
  "$PYTHON" -m mixtrain.fitting.fit --table "$PROXY/table.csv" --law auto --out "$PROXY/law_auto.json"
  "$PYTHON" -m mixtrain.fitting.fit --law-file "$PROXY/law_auto.json" --optimize --step "$S" --out "$PROXY/weights_auto.yaml"
fi

# the best proxy by its final mean val loss in table.csv -> the mixture file that run trained on
BEST="$("$PYTHON" "$ROOT/bench/matched_regret.py" "$OUT" --best-proxy-file)"
echo "[matched_regret] best proxy mixture: $BEST"

declare -A FILES=(
  [law]="$PROXY/weights.yaml"
  [best_proxy]="$BEST"
  [uniform]="$(ls "$PROXY"/mixtures/mix-*-uniform.yaml)"
  [natural]="$(ls "$PROXY"/mixtures/mix-*-natural.yaml)"
)
NAMES="law best_proxy uniform natural"
if [ "$AUTO" = 1 ]; then FILES[law_auto]="$PROXY/weights_auto.yaml"; NAMES="law law_auto best_proxy uniform natural"; fi

run_one() {  # candidate seed
  local dir="$OUT/runs/$1-seed$2"
  if [ -f "$dir/DONE" ]; then echo "[matched_regret] $dir: done before, skipped"; return; fi
  mkdir -p "$OUT/runs"
  # overwrite=true: a run without DONE was interrupted; start it over rather than mix two runs
  "$PYTHON" -m mixtrain.train experiment=proxy data_dir="$DATA_DIR" optim.schedule=constant \
    trainer.max_steps="$S" mixing=manual "mixing.weights_file=${FILES[$1]}" seed="$2" \
    out_dir="$dir" overwrite=true "${@:3}" > "$dir.log" 2>&1
  touch "$dir/DONE"
  echo "[matched_regret] $dir: $(grep -o '"val/loss": [0-9.]*' "$dir/summary.json")"
}

PAIRS=""
for seed in ${SEEDS//,/ }; do for name in $NAMES; do PAIRS="$PAIRS $name:$seed"; done; done
if [ "$LAW_SEED0" = 1 ]; then  # the law's optimum on the proxies' own seed too: compared with every proxy
  for name in $NAMES; do case "$name" in law*) PAIRS="$PAIRS $name:0";; esac; done
fi
for pair in $PAIRS; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
  run_one "${pair%%:*}" "${pair##*:}" "$@" &
done
wait

"$PYTHON" "$ROOT/bench/matched_regret.py" "$OUT"
