#!/usr/bin/env bash
# A kernel branch judged in one GPU call (a session has ~15 minutes of GPU time): the GPU
# check of this tree with every kernel timed on a grid (bench/gpu_check.sh with
# GPU_CHECK_TUNE=1; built for sm_90 only, CPU subset skipped: CI runs it), then per-step
# slopes of this tree against a baseline tree built and timed in the same run
# (bench/gpu_profile.sh with BASELINE), for one- and two-directional layers.
#
#   git archive main | tar -x -C .base     # here, before the call: the baseline tree
#   bash bench/gpu_ab.sh                   # on the GPU machine (carry .whl and .base)
#
# Without .base it runs the check only. Two kernels of this tree are compared in one
# process by adding GPU_CHECK_KERNEL_AB=A,B (e.g. lean,lean_async: bench/gpu_check.sh).
#
# Packs everything into $OUT/gpu-ab.tar.gz (default OUT=/tmp/gpu-ab), again after each
# part, so that a call stopped at its time limit still returns what was done: check/
# (gpu_check.sh's logs, gpu-tune.md and .json), profile/ (slope.log: this tree, then
# "BASELINE"), profile-bidirectional/ (the same for bidirectional layers, float32).
# AB_CONFIGS, AB_BIDIRECTIONAL_CONFIGS: the B,H pairs of the A/Bs.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-/tmp/gpu-ab}
WORK=$(mktemp -d)
mkdir -p "$RESULTS"
pack() { tar -czf "$RESULTS/gpu-ab.tar.gz" -C "$WORK" . && echo "packed: $RESULTS/gpu-ab.tar.gz ($1)"; }

OUT=$WORK/check GPU_CHECK_TUNE=1 GPU_CHECK_CPU=0 GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-450} \
  ELMAN_CUDA_ARCH=${ELMAN_CUDA_ARCH:-90} bash bench/gpu_check.sh
check=$?
pack "the check, exit status $check"
if [[ ! -d .base ]]; then
  echo "no .base/: no A/B (git archive main | tar -x -C .base, and carry it)"
  exit $check
fi
OUT=$WORK/profile REUSE_BUILD=1 BASELINE=.base COMPARE_STEPWISE=0 NCU_CONFIGS= WITH_CUDNN=1 \
  STORAGES=bfloat16 SLOPE_CONFIGS=${AB_CONFIGS:-1,64 1,128 1,256 4,256 16,256 16,1760 32,512} \
  bash bench/gpu_profile.sh
pack "the A/B"
OUT=$WORK/profile-bidirectional REUSE_BUILD=1 BASELINE=.base COMPARE_STEPWISE=0 NCU_CONFIGS= \
  WITH_CUDNN=1 BIDIRECTIONAL=1 SLOPE_CONFIGS=${AB_BIDIRECTIONAL_CONFIGS:-1,256 4,256 1,512} \
  bash bench/gpu_profile.sh
pack "the bidirectional A/B"
exit $check
