#!/usr/bin/env bash
# One command from a folder of unlabelled text to clustered domains, a prepared DIR and a trained run
# with a training-free mixture (issue 31; details and deviations: docs/embed_cluster.md):
#
#   bash launch/unlabelled.sh RAW WORK [K=64] [MERGE_TO=20] [Hydra overrides for the run...]
#   e.g. MIXING=chameleon bash launch/unlabelled.sh data/crawl runs/crawl 256 20 trainer.max_steps=2000
#        MIXING=domain2vec TARGET=data/wiki_sample bash launch/unlabelled.sh data/crawl runs/crawl
#
# 1. mixtrain cluster RAW --out WORK/clusters --k K --merge-to MERGE_TO (hashing embeddings, k-means,
#    Ward merge; CLUSTER_ARGS adds flags, e.g. "--quality score --prune-below 0.5 --num-workers 2")
#    -> WORK/clusters/<cluster>/, assignments.csv, report.md; skipped when report.md exists.
# 2. python -m mixtrain.prepare data=dir data.root=WORK/clusters data_dir=WORK/data (a prepare of
#    unchanged input is a no-op; PREPARE_ARGS adds overrides, e.g. "tokenizer.vocab_size=32000").
# 3. python -m mixtrain.train data_dir=WORK/data mixing=MIXING out_dir=WORK/run-MIXING [overrides]
#    MIXING=chameleon (default): the strategy trains and embeds its own short uniform proxy run
#      (mixing.proxy_steps, ...; reused by later runs), as the paper does.
#    MIXING=domain2vec: meta-domains = WORK/clusters' clustering, vectors = its embeddings, and
#      TARGET (required) = a folder of target text, or a Hydra list of cluster names ("[c03-...]").
#    Any other strategy works too (MIXING=uniform for the baseline).
# PYTHON picks the interpreter (default python); MIXTRAIN the CLI (default "$PYTHON -m mixtrain.cli").
set -euo pipefail
RAW="${1:?usage: bash launch/unlabelled.sh RAW WORK [K] [MERGE_TO] [overrides...]}"
WORK="${2:?usage: bash launch/unlabelled.sh RAW WORK [K] [MERGE_TO] [overrides...]}"
K="${3:-64}"
MERGE_TO="${4:-20}"
shift $(( $# < 4 ? $# : 4 ))
PYTHON="${PYTHON:-python}"
MIXTRAIN="${MIXTRAIN:-$PYTHON -m mixtrain.cli}"
MIXING="${MIXING:-chameleon}"
read -r -a CLUSTER_EXTRA <<< "${CLUSTER_ARGS:-}"
read -r -a PREPARE_EXTRA <<< "${PREPARE_ARGS:-}"
CL="$WORK/clusters"

if [ "$MIXING" = domain2vec ] && [ -z "${TARGET:-}" ]; then
  echo "launch/unlabelled.sh: MIXING=domain2vec needs TARGET: a folder of target text, or a list of" \
       "cluster names like '[c03-shall-contract-damages]' (see $CL/report.md after step 1)" >&2
  exit 2
fi
if [ -f "$CL/report.md" ]; then
  echo "[unlabelled] 1/3 $CL/report.md exists: clustering kept (remove $CL to cluster again)"
else
  echo "[unlabelled] 1/3 clustering $RAW into $CL (K=$K, merged to at most $MERGE_TO)"
  $MIXTRAIN cluster "$RAW" --out "$CL" --k "$K" --merge-to "$MERGE_TO" "${CLUSTER_EXTRA[@]}"
fi
echo "[unlabelled] 2/3 preparing $CL into $WORK/data"
"$PYTHON" -m mixtrain.prepare data=dir "data.root=$CL" "data_dir=$WORK/data" "${PREPARE_EXTRA[@]}"
RUN_ARGS=("data_dir=$WORK/data" "mixing=$MIXING" "out_dir=$WORK/run-$MIXING")
if [ "$MIXING" = domain2vec ]; then
  RUN_ARGS+=("mixing.embeddings=$CL/.embeddings" "mixing.clustering=$CL" "mixing.target=$TARGET")
fi
echo "[unlabelled] 3/3 training $WORK/run-$MIXING with mixing=$MIXING"
"$PYTHON" -m mixtrain.train "${RUN_ARGS[@]}" "$@"
