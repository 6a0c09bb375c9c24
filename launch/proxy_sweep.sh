#!/usr/bin/env bash
# One command from a prepared corpus to a fitted mixing law and optimised weights:
#
#   bash launch/proxy_sweep.sh DATA_DIR OUT_DIR [NUM_RUNS=16] [extra Hydra overrides for the proxy runs...]
#   e.g. bash launch/proxy_sweep.sh data/demo runs/proxy 16 trainer.max_steps=200
#        PYTHON=.venv/bin/python LAW=bimix TARGET_STEP=2000 CONCENTRATION=2 bash launch/proxy_sweep.sh ...
#
# 1. mixtures: uniform, natural, entropy (SE/CE/JE/VNE), Dirichlet draws around natural -> OUT/mixtures/
# 2. a Hydra multirun of short proxy runs (experiment=proxy; on a cluster add hydra/launcher=submitit_slurm)
# 3. collect -> OUT/table.csv   4. fit (LAW=bimix by default) -> OUT/law.json + plots
# 5. optimise at TARGET_STEP (default: the proxy runs' max_steps x 10) -> OUT/weights.yaml,
#    usable as: python -m mixtrain.train mixing=manual mixing.weights_file=OUT/weights.yaml ...
set -euo pipefail
DATA_DIR="${1:?usage: proxy_sweep.sh DATA_DIR OUT_DIR [NUM_RUNS] [overrides...]}"
OUT="${2:?usage: proxy_sweep.sh DATA_DIR OUT_DIR [NUM_RUNS] [overrides...]}"
NUM_RUNS="${3:-16}"
shift $(( $# < 3 ? $# : 3 ))
PYTHON="${PYTHON:-python}"
LAW="${LAW:-bimix}"   # or auto (RESULTS.md: why bimix is the default)
CONCENTRATION="${CONCENTRATION:-10}"   # Dirichlet spread of the proxy mixtures (lower: more diverse)
mkdir -p "$OUT"
FILES="$("$PYTHON" -m mixtrain.proxy --data-dir "$DATA_DIR" --num-runs "$NUM_RUNS" --concentration "$CONCENTRATION" --out "$OUT/mixtures")"
"$PYTHON" -m mixtrain.train -m experiment=proxy data_dir="$DATA_DIR" sweep_dir="$OUT/runs" \
  mixing=manual "mixing.weights_file=$FILES" "$@"
"$PYTHON" -m mixtrain.collect "$OUT/runs" --out "$OUT/table.csv"
"$PYTHON" -m mixtrain.fit --table "$OUT/table.csv" --law "$LAW" --out "$OUT/law.json" --plot "$OUT/law_plots"
if [ -z "${TARGET_STEP:-}" ]; then
  TARGET_STEP=$("$PYTHON" -c "import csv,sys; print(10*max(int(float(r['step'])) for r in csv.DictReader(open(sys.argv[1]))))" "$OUT/table.csv")
fi
"$PYTHON" -m mixtrain.fit --law-file "$OUT/law.json" --optimize --step "$TARGET_STEP" --out "$OUT/weights.yaml"
echo "proxy sweep done: $OUT/law.json, $OUT/weights.yaml (target step $TARGET_STEP)"
