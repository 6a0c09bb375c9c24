#!/usr/bin/env bash
# One command from a prepared corpus to a fitted mixing law and optimised weights:
#
#   bash launch/proxy_sweep.sh DATA_DIR OUT_DIR [NUM_RUNS=16] [extra Hydra overrides for the proxy runs...]
#   e.g. bash launch/proxy_sweep.sh data/demo runs/proxy 16 trainer.max_steps=200
#        PYTHON=.venv/bin/python LAW=bimix TARGET_STEP=2000 CONCENTRATION=2 bash launch/proxy_sweep.sh ...
#
# Model sizes: MODELS="tiny small medium" sweeps every mixture at every size (conf/model/<name>.yaml;
# or pass e.g. model.n_layer=2,4,8 as an override for sizes between presets); collect writes each
# run's num_params, so LAW=scaling (>= 3 sizes) fits the law across sizes, and TARGET_PARAMS=N
# TARGET_TOKENS=D optimise for a size and budget nobody trained (docs/scaling.md).
# Repetition: the optimiser reads each domain's unique tokens from DATA_DIR and discounts the
# repeats the target budget (TARGET_STEP x the proxies' tokens per step, or TARGET_TOKENS) implies.
# DRY_RUN=1 writes the mixtures and prints the commands instead of running them.
#
# 1. mixtures: uniform, natural, entropy (SE/CE/JE/VNE), Dirichlet draws around natural -> OUT/mixtures/
# 2. a Hydra multirun of short proxy runs (experiment=proxy; on a cluster add hydra/launcher=slurm)
# 3. collect -> OUT/table.csv   4. fit (LAW=ridge by default) -> OUT/law.json + plots
# 5. optimise at TARGET_STEP (default: the proxy runs' max_steps x 10) -> OUT/weights.yaml,
#    usable as: python -m mixtrain.train mixing=manual mixing.weights_file=OUT/weights.yaml ...
#
# LR schedules (SCHEDULE, default constant; README "LR schedules and proxy runs"):
#   SCHEDULE=constant  proxies warm up, then keep a flat LR: the loss at every validation step is
#                      what a constant-LR run of that length reaches, so each proxy gives one
#                      comparable observation per val_check_interval and the law's step term is
#                      the constant-LR curve. Read it at the TARGET's budget: TARGET_STEP = the
#                      target's trainer.max_steps (same global batch). Train the target with
#                      optim.schedule=constant for an exactly like-for-like prediction, or with
#                      optim.schedule=wsd: its loss equals the constant run's until the decay
#                      starts, then drops; the law does not model that drop (it assumes the gain
#                      from decaying is about the same for every mixture, which is not measured here).
#   SCHEDULE=cosine    the old behaviour: each proxy's cosine ends at its own max_steps, so only
#                      its last row is a finished run; earlier rows are mid-decay (higher LR than
#                      a run that ends there) and bias the step term. Use it only with proxies of
#                      several lengths and `collect --final-only` (not automated here).
#   SCHEDULE=wsd       rows before the decay (the last optim.decay_fraction of max_steps) equal a
#                      constant run's; rows inside it are partly decayed and the last is a finished
#                      WSD run: one fit over both kinds is not like for like (use constant instead).
#   WSD with a decay at each observation budget (branch a short decay off the constant run at
#   every budget) gives finished-WSD observations at several budgets; not automated here.
#
# Sequential search (issue 32): ROUNDS=3 PER_ROUND=8 bash launch/proxy_sweep.sh DATA_DIR OUT [FIRST_BATCH] ... trains
# the first batch, then per round collects, fits, proposes the next PER_ROUND mixtures (`mixtrain proxy --next`)
# and trains them; resumable between rounds; OUT/rounds.png (launch/proxy_rounds.sh: every knob).
set -euo pipefail
if [ "${ROUNDS:-0}" != 0 ]; then exec bash "$(dirname "$0")/proxy_rounds.sh" "$@"; fi
DATA_DIR="${1:?usage: proxy_sweep.sh DATA_DIR OUT_DIR [NUM_RUNS] [overrides...]}"
OUT="${2:?usage: proxy_sweep.sh DATA_DIR OUT_DIR [NUM_RUNS] [overrides...]}"
NUM_RUNS="${3:-16}"
shift $(( $# < 3 ? $# : 3 ))
PYTHON="${PYTHON:-python}"
LAW="${LAW:-ridge}"   # mixtrain.fitting.fit's default (README "Choosing a mixture with a law"); bimix needs fewer runs, auto tries all
CONCENTRATION="${CONCENTRATION:-10}"   # Dirichlet spread of the proxy mixtures (lower: more diverse)
SCHEDULE="${SCHEDULE:-constant}"   # LR schedule of the proxy runs: constant | cosine | wsd (see above)
MODELS="${MODELS:-}"   # model sizes to sweep, e.g. "tiny small medium" (default: the proxy experiment's tiny)
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else "$@"; fi; }
mkdir -p "$OUT"
FILES="$("$PYTHON" -m mixtrain.fitting.proxy --data-dir "$DATA_DIR" --num-runs "$NUM_RUNS" --concentration "$CONCENTRATION" --out "$OUT/mixtures")"
SIZES=()
if [ -n "$MODELS" ]; then SIZES=("model=$(echo $MODELS | tr ' ' ',')"); fi
run "$PYTHON" -m mixtrain.train -m experiment=proxy data_dir="$DATA_DIR" sweep_dir="$OUT/runs" \
  mixing=manual "mixing.weights_file=$FILES" "optim.schedule=$SCHEDULE" ${SIZES[@]+"${SIZES[@]}"} "$@"
run "$PYTHON" -m mixtrain.fitting.collect "$OUT/runs" --out "$OUT/table.csv"
run "$PYTHON" -m mixtrain.fitting.fit --table "$OUT/table.csv" --law "$LAW" --out "$OUT/law.json" --plot "$OUT/law_plots"
if [ -z "${TARGET_STEP:-}" ] && [ -z "${TARGET_TOKENS:-}" ] && [ -z "${DRY_RUN:-}" ]; then
  TARGET_STEP=$("$PYTHON" -c "import csv,sys; print(10*max(int(float(r['step'])) for r in csv.DictReader(open(sys.argv[1]))))" "$OUT/table.csv")
fi
TARGET=()
if [ -n "${TARGET_STEP:-}" ]; then TARGET+=(--step "$TARGET_STEP"); fi
if [ -n "${TARGET_TOKENS:-}" ]; then TARGET+=(--tokens "$TARGET_TOKENS"); fi
if [ -n "${TARGET_PARAMS:-}" ]; then TARGET+=(--params "$TARGET_PARAMS"); fi
run "$PYTHON" -m mixtrain.fitting.fit --law-file "$OUT/law.json" --optimize ${TARGET[@]+"${TARGET[@]}"} --data-dir "$DATA_DIR" \
  --out "$OUT/weights.yaml"
if [ -n "${DRY_RUN:-}" ]; then exit 0; fi
echo "proxy sweep done: $OUT/law.json, $OUT/weights.yaml (target ${TARGET[*]}, proxies optim.schedule=$SCHEDULE;" \
     "train the target with trainer.max_steps=${TARGET_STEP:-TARGET_TOKENS/global batch} and the same global batch)"
