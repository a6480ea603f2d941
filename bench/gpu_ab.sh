#!/usr/bin/env bash
# A kernel branch judged in one GPU call (a session has ~15 minutes of GPU time): the GPU
# check of this tree with every kernel timed on a grid (bench/gpu_check.sh with
# GPU_CHECK_TUNE=1), then per-step slopes of this tree against a baseline tree built and
# timed in the same run (bench/gpu_profile.sh with BASELINE), packed into one file.
#
#   git archive main | tar -x -C .base     # here, before the call: the baseline tree
#   bash bench/gpu_ab.sh                   # on the GPU machine (carry .whl and .base)
#
# Writes $OUT/gpu-ab.tar.gz (default OUT=/tmp/gpu-ab) holding check/ (gpu_check.sh's logs,
# gpu-tune.md and .json), profile/ (slope.log: this tree, then "BASELINE") and
# profile-bidirectional/ (the same for bidirectional layers, float32), and prints the
# summaries. AB_CONFIGS, AB_BIDIRECTIONAL_CONFIGS: the B,H pairs of the A/Bs.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-/tmp/gpu-ab}
WORK=$(mktemp -d)
mkdir -p "$RESULTS"
OUT=$WORK/check GPU_CHECK_TUNE=1 GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-420} bash bench/gpu_check.sh
check=$?
if [[ -d .base ]]; then
  OUT=$WORK/profile REUSE_BUILD=1 BASELINE=.base COMPARE_STEPWISE=0 NCU_CONFIGS= WITH_CUDNN=1 \
    STORAGES=bfloat16 SLOPE_CONFIGS=${AB_CONFIGS:-1,64 1,128 1,256 4,256 16,256 16,1760 32,512} \
    bash bench/gpu_profile.sh
  OUT=$WORK/profile-bidirectional REUSE_BUILD=1 BASELINE=.base COMPARE_STEPWISE=0 NCU_CONFIGS= \
    WITH_CUDNN=1 BIDIRECTIONAL=1 SLOPE_CONFIGS=${AB_BIDIRECTIONAL_CONFIGS:-1,256 4,256 1,512} \
    bash bench/gpu_profile.sh
else
  echo "no .base/: no A/B (git archive main | tar -x -C .base, and carry it)"
fi
tar -czf "$RESULTS/gpu-ab.tar.gz" -C "$WORK" .
echo "packed: $RESULTS/gpu-ab.tar.gz (gpu_check.sh exit status $check)"
exit $check
