#!/usr/bin/env bash
# The mixture comparison behind RESULTS.md: same model, same token budget, same validation
# blocks, every strategy, several seeds; then the report.
#
#   bash launch/compare.sh OUT_DIR [extra Hydra overrides for every run...]
#   e.g. PYTHON=.venv/bin/python bash launch/compare.sh runs/compare
#        STEPS=20000 REFIT_EVERY=500 bash launch/compare.sh runs/cmp model=small trainer=gpu   # GPU scale
#
# Environment knobs (defaults = the 2-core CPU scale of RESULTS.md):
#   DATA=data/demo  STEPS=200  SEEDS=0,1,2  REFIT_EVERY=20 (online strategies)
#   PROXY_RUNS=8  PROXY_STEPS=100 (the sweep the BiMix law is fitted on)  LAW=auto
#   PARTS="static entropy law online"   (a part-seed whose OUT/runs/<part>-seed<N>/DONE exists is skipped,
#   so re-running the command resumes; shards of it may run in parallel, e.g. SEEDS=0 and SEEDS=1,2)
# Steps: 1 prepare DATA if needed; 2 static: uniform, natural, temperature; 3 entropy: se, ce, je,
# vne x proportional, softmax; 4 law: proxy sweep -> fit (LAW, and bimix) -> optimum at STEPS -> mixing=law
# (strategy names `law` and `law-bimix`);
# 5 online: online_bimix, ado, odm, and doremi against the uniform run of the same seed;
# 6 python -m mixtrain.report OUT/runs --out OUT/report (with the law's fit plots).
set -euo pipefail
OUT="${1:?usage: compare.sh OUT_DIR [overrides...]}"
shift
PYTHON="${PYTHON:-python}"
DATA="${DATA:-data/demo}"
STEPS="${STEPS:-200}"
SEEDS="${SEEDS:-0,1,2}"
REFIT_EVERY="${REFIT_EVERY:-20}"
PROXY_RUNS="${PROXY_RUNS:-8}"
PROXY_STEPS="${PROXY_STEPS:-100}"
LAW="${LAW:-auto}"
PARTS="${PARTS:-static entropy law online}"
export WANDB_MODE="${WANDB_MODE:-offline}"
mkdir -p "$OUT/runs"
[ -f "$DATA/manifest.json" ] || "$PYTHON" -m mixtrain.prepare data=demo data_dir="$DATA"

run_group() {  # run_group NAME SEED overrides...: one Hydra multirun into OUT/runs/NAME-seedSEED
  local name="$1-seed$2" seed="$2"; shift 2
  if [ -f "$OUT/runs/$name/DONE" ]; then echo "[compare] $name: done before, skipped"; return; fi
  echo "[compare] $name"
  "$PYTHON" -m mixtrain.train -m experiment=compare data_dir="$DATA" prepare_if_missing=false \
    trainer.max_steps="$STEPS" seed="$seed" sweep_dir="$OUT/runs/$name" "$@" "${EXTRA[@]}"
  touch "$OUT/runs/$name/DONE"
}
EXTRA=("$@")

# seed-major order: an interrupted comparison resumes at the first unfinished (group, seed)
for seed in ${SEEDS//,/ }; do
  for group in $PARTS; do
    case "$group" in
      static)  run_group static "$seed" mixing=uniform,natural,temperature ;;
      entropy) run_group entropy "$seed" mixing=entropy mixing.measure=se,ce,je,vne \
                 mixing.normalization=proportional,softmax ;;
      law)
        if [ ! -f "$OUT/proxy/weights.yaml" ]; then
          PYTHON="$PYTHON" LAW="$LAW" TARGET_STEP="$STEPS" bash "$(dirname "$0")/proxy_sweep.sh" "$DATA" "$OUT/proxy" \
            "$PROXY_RUNS" prepare_if_missing=false trainer.max_steps="$PROXY_STEPS" "${EXTRA[@]}"
        fi
        run_group law "$seed" mixing=law mixing.law_file="$OUT/proxy/law.json" mixing.step="$STEPS"
        # the BiMix law itself, whatever LAW=auto chose (the paper's claim is about this one)
        [ -f "$OUT/proxy/law_bimix.json" ] || "$PYTHON" -m mixtrain.fit --table "$OUT/proxy/table.csv" --law bimix \
          --out "$OUT/proxy/law_bimix.json"
        run_group law-bimix "$seed" mixing=law mixing.name=law-bimix mixing.law_file="$OUT/proxy/law_bimix.json" \
          mixing.step="$STEPS" ;;
      online)
        # one group per strategy: a sweep over mixing= cannot take a key only the online options have
        for m in online_bimix ado odm; do
          run_group "$m" "$seed" mixing="$m" mixing.refit_every_n_steps="$REFIT_EVERY"
        done
        # DoReMi's reference model: the uniform run of the same seed (as in the paper)
        ref=$(ls -d "$OUT/runs/static-seed$seed"/*-uniform-seed"$seed" 2>/dev/null | head -1)
        [ -n "$ref" ] || { echo "doremi needs the static part's uniform run: $OUT/runs/static-seed$seed" >&2; exit 2; }
        run_group doremi "$seed" mixing=doremi mixing.reference_run="$ref" mixing.refit_every_n_steps="$REFIT_EVERY" ;;
      *) echo "unknown part $group (static entropy law online)" >&2; exit 2 ;;
    esac
  done
done

law_args=()
[ -f "$OUT/proxy/law.json" ] && law_args=(--law "$OUT/proxy/law.json" --table "$OUT/proxy/table.csv")
"$PYTHON" -m mixtrain.report "$OUT/runs" --out "$OUT/report" "${law_args[@]}"
echo "[compare] report: $OUT/report/report.md"
