#!/usr/bin/env bash
# The mixture comparison behind RESULTS.md: same model, same token budget, same validation
# blocks, every strategy, several seeds; then the report (paired 95% CIs vs uniform and natural).
#
#   bash launch/compare.sh OUT_DIR [extra Hydra overrides for every run...]
#   e.g. PYTHON=.venv/bin/python bash launch/compare.sh runs/compare
#        # a separate target domain (launch/make_settings.py builds DIR with an extra `pkgdocs` domain):
#        DATA=DIR PROXY_DATA=DIR-train bash launch/compare.sh runs/cmp 'eval_only_domains=[pkgdocs]' \
#          'target.importance={pkgdocs: 1}'
#        STEPS=20000 REFIT_EVERY=500 bash launch/compare.sh runs/cmp model=small trainer=gpu   # GPU scale
#
# Environment knobs (defaults = the 2-core CPU scale of RESULTS.md):
#   DATA=data/demo  STEPS=200  SEEDS=0,1,2,3,4  REFIT_EVERY=20 (online strategies)
#   PROXY_RUNS=16  PROXY_STEPS=100 (the sweep the BiMix law is fitted on)  PROXY_FINAL_ONLY=0 (1: fit on
#     each proxy's last validation row only: bimix's mixture-only form, for proxies with < 3 validations)
#   PROXY_DATA=$DATA (the data_dir whose domains the proxy mixtures cover: with eval_only_domains,
#     a view of the training domains only, e.g. make_settings.py's DIR-train)
#   PARTS="static entropy law online" (+ target)   STATIC="uniform natural temperature"
#   TARGET_IMPORTANCE='{code: 0, ..., pkgdocs: 1}' TARGET_LAW=loglinear: part `target` = strategy `law-target`, the
#     optimum of TARGET_LAW fitted on the proxies' losses of every eval domain (eval-only ones included) for that importance
#   ENTROPY="se ce je vne" x NORMS="proportional softmax"   ONLINE="online_bimix ado odm doremi"
#     (+ doremi_token: DoReMi with the uniform run as a frozen reference model, per-token excess)
#   ODM_WARMUP (odm's uniform warm-up steps; default conf/mixing/odm.yaml's 100)
# Order: part-major (every seed of a part before the next part), so the law and online parts run
# last, under the newest code. A (strategy, seed) whose OUT/runs/<strategy>-seed<N>/DONE exists is
# skipped: re-running resumes, and shards of it may run in parallel (e.g. SEEDS=0,1 and SEEDS=2,3,4).
# Law: proxy sweep (PROXY_RUNS mixtures of mixtrain.fitting.proxy, experiment=proxy) -> collect
# (training domains' losses only) -> fit LAW (default ridge, the fit default; LAW=bimix: the earlier pipeline) ->
# mixing=law optimised for STEPS by the sampled optimiser (strategy `law-$LAW`).
# DoReMi's reference: the uniform run of the same seed (its loss curve; doremi_token: its model). Last: python -m mixtrain.report OUT/runs.
set -euo pipefail
OUT="${1:?usage: compare.sh OUT_DIR [overrides...]}"
shift
PYTHON="${PYTHON:-python}"
DATA="${DATA:-data/demo}"
PROXY_DATA="${PROXY_DATA:-$DATA}"
STEPS="${STEPS:-200}"
SEEDS="${SEEDS:-0,1,2,3,4}"
REFIT_EVERY="${REFIT_EVERY:-20}"
PROXY_RUNS="${PROXY_RUNS:-16}"
PROXY_STEPS="${PROXY_STEPS:-100}"
LAW="${LAW:-ridge}"   # the law part's law (mixtrain.fitting.fit's default); strategy law-$LAW, file OUT/proxy/law_$LAW.json
PARTS="${PARTS:-static entropy law online}"
STATIC="${STATIC:-uniform natural temperature}"
ENTROPY="${ENTROPY:-se ce je vne}"
NORMS="${NORMS:-proportional softmax}"
ONLINE="${ONLINE:-online_bimix ado odm doremi}"
export WANDB_MODE="${WANDB_MODE:-offline}"
EXTRA=("$@")
mkdir -p "$OUT/runs"
[ -f "$DATA/manifest.json" ] || "$PYTHON" -m mixtrain.prepare data=demo data_dir="$DATA"

run_one() {  # run_one NAME SEED overrides...: one run into OUT/runs/NAME-seedSEED
  local dir="$OUT/runs/$1-seed$2" seed="$2"; shift 2
  if [ -f "$dir/DONE" ]; then echo "[compare] $dir: done before, skipped"; return; fi
  echo "[compare] $dir ($(date -u +%H:%M:%S))"
  rm -rf "$dir"  # an interrupted run starts over (it is short; resume=true would also do)
  "$PYTHON" -m mixtrain.train experiment=compare data_dir="$DATA" prepare_if_missing=false \
    trainer.max_steps="$STEPS" seed="$seed" out_dir="$dir" "$@" "${EXTRA[@]}"
  touch "$dir/DONE"
}

proxy_law() {  # OUT/proxy/law_$LAW.json from a proxy sweep (the sweep is skipped once OUT/proxy/table.csv exists)
  [ -f "$OUT/proxy/law_$LAW.json" ] && return
  if [ ! -f "$OUT/proxy/table.csv" ]; then
    local files
    files="$("$PYTHON" -m mixtrain.fitting.proxy --data-dir "$PROXY_DATA" --num-runs "$PROXY_RUNS" --out "$OUT/proxy/mixtures")"
    "$PYTHON" -m mixtrain.train -m experiment=proxy data_dir="$DATA" prepare_if_missing=false sweep_dir="$OUT/proxy/runs" \
      mixing=manual "mixing.weights_file=$files" trainer.max_steps="$PROXY_STEPS" "${EXTRA[@]}"
    "$PYTHON" -m mixtrain.fitting.collect "$OUT/proxy/runs" --out "$OUT/proxy/table.csv"
  fi
  # bimix's step terms need >= 3 validation steps per proxy; PROXY_FINAL_ONLY=1 fits the mixture-only
  # form on each proxy's last row instead (e.g. PROXY_STEPS=50 with experiment=proxy's validation every 25)
  local only=()
  [ "${PROXY_FINAL_ONLY:-0}" = 1 ] && only=(--final-only)
  "$PYTHON" -m mixtrain.fitting.collect "$OUT/proxy/runs" --training-domains-only "${only[@]}" --out "$OUT/proxy/table_train.csv"
  "$PYTHON" -m mixtrain.fitting.fit --table "$OUT/proxy/table_train.csv" --law "$LAW" --out "$OUT/proxy/law_$LAW.json"
}

target_law() {  # OUT/proxy/law_target.json: TARGET_LAW fitted on every eval domain (eval-only ones included)
  [ -f "$OUT/proxy/law_target.json" ] && return
  local only=()
  [ "${PROXY_FINAL_ONLY:-0}" = 1 ] && only=(--final-only)
  "$PYTHON" -m mixtrain.fitting.collect "$OUT/proxy/runs" "${only[@]}" --out "$OUT/proxy/table_target.csv"
  "$PYTHON" -m mixtrain.fitting.fit --table "$OUT/proxy/table_target.csv" --law "${TARGET_LAW:-loglinear}" --out "$OUT/proxy/law_target.json"
}

for part in $PARTS; do
  for seed in ${SEEDS//,/ }; do
    case "$part" in
      static)  for m in $STATIC; do run_one "$m" "$seed" mixing="$m"; done ;;
      entropy)
        for measure in $ENTROPY; do for norm in $NORMS; do
          run_one "entropy-$measure-$norm" "$seed" mixing=entropy mixing.measure="$measure" mixing.normalization="$norm"
        done; done ;;
      law)
        proxy_law
        run_one "law-$LAW" "$seed" mixing=law mixing.name="law-$LAW" mixing.law_file="$OUT/proxy/law_$LAW.json" \
          mixing.step="$STEPS" ;;
      target)  # the law's optimum for the target: needs TARGET_IMPORTANCE, a Hydra dict over the eval domains
        [ -n "${TARGET_IMPORTANCE:-}" ] || { echo "PARTS=target needs TARGET_IMPORTANCE='{d: w, ...}' (every eval domain; laws count an unnamed one as 1)" >&2; exit 2; }
        proxy_law
        target_law
        run_one law-target "$seed" mixing=law mixing.name=law-target mixing.law_file="$OUT/proxy/law_target.json" \
          mixing.step="$STEPS" "mixing.importance=$TARGET_IMPORTANCE" ;;
      online)
        for m in $ONLINE; do
          if [ "$m" = doremi ] || [ "$m" = doremi_token ]; then  # reference: the uniform run of the same seed (as in the paper)
            ref="$OUT/runs/uniform-seed$seed"
            [ -f "$ref/DONE" ] || { echo "$m needs the static part's uniform run $ref" >&2; exit 2; }
            if [ "$m" = doremi ]; then  # its loss curve: per-domain-mean excess
              run_one doremi "$seed" mixing=doremi mixing.reference_run="$ref" mixing.refit_every_n_steps="$REFIT_EVERY"
            else  # the same run as a frozen model: per-token clipped excess (the paper's)
              run_one doremi-token "$seed" mixing=doremi mixing.name=doremi-token mixing.reference_model="$ref" \
                mixing.refit_every_n_steps="$REFIT_EVERY"
            fi
          elif [ "$m" = odm ] && [ -n "${ODM_WARMUP:-}" ]; then  # uniform warm-up steps (conf: 100)
            run_one odm "$seed" mixing=odm mixing.refit_every_n_steps="$REFIT_EVERY" mixing.warmup_steps="$ODM_WARMUP"
          else
            run_one "$m" "$seed" mixing="$m" mixing.refit_every_n_steps="$REFIT_EVERY"
          fi
        done ;;
      *) echo "unknown part $part (static entropy law target online)" >&2; exit 2 ;;
    esac
  done
done

law_args=()
[ -f "$OUT/proxy/law_$LAW.json" ] && law_args=(--law "$OUT/proxy/law_$LAW.json" --table "$OUT/proxy/table_train.csv")
"$PYTHON" -m mixtrain.report "$OUT/runs" --out "$OUT/report" "${law_args[@]}"
echo "[compare] report: $OUT/report/report.md"
