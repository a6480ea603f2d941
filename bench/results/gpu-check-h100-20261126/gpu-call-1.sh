#!/usr/bin/env bash
# Call 1 of session 12 on the H100 (run from the repo root as `bash gpu_s12.sh`): the check
# (tests, memcheck, racecheck, bench, tune), the few_rows/lean A/B, then profiles while time is left.
set -u
TOOL_OUT=$OUT; G=/tmp/gc; rm -rf $G; mkdir -p $G
T0=$SECONDS; END=${END_S:-555}
left() { echo $(( END - (SECONDS - T0) )); }
pack() { tar -czf $TOOL_OUT/gc.tgz -C $G . ; }
# cap N: the smaller of N and the time left minus a margin for packing
cap() { local l=$(( $(left) - 10 )); (( l < $1 )) && echo $l || echo $1; }
date -u > $G/session.txt
CUDAFLAGS=-lineinfo OUT=$G GPU_CHECK_SANITIZERS="memcheck racecheck" GPU_CHECK_TUNE=1 GPU_CHECK_CPU=0 GPU_CHECK_BUDGET=360 ELMAN_CUDA_ARCH=90 \
  bash bench/gpu_check.sh > $G/check.out 2>&1; echo "check rc=$? at $((SECONDS-T0))s" >> $G/session.txt
pack
export PYTHONPATH=/tmp/elman-site:/tmp/site PYTHONUNBUFFERED=1
L=$(cap 100); if (( L > 40 )); then
  timeout $L python3 bench/gpu_kernel_ab.py --kernels few_rows,lean --hidden 256,512 --out $G/ab > $G/ab.log 2>&1
  echo "ab rc=$? at $((SECONDS-T0))s" >> $G/session.txt; pack; fi
L=$(cap 90); if (( L > 40 )); then mkdir -p $G/prof
  ELMAN_CUDA_KERNEL=gemm OUT=$G/prof REUSE_BUILD=1 COMPARE_STEPWISE=0 SLOPE_CONFIGS="64,1760 64,1024" NCU_CONFIGS="64,1760,20" \
    timeout $L bash bench/gpu_profile.sh > $G/prof/profile.out 2>&1
  echo "profile rc=$? at $((SECONDS-T0))s" >> $G/session.txt; rm -f $G/prof/*.ncu-rep; pack; fi
L=$(cap 80); if (( L > 40 )); then mkdir -p $G/prof-lean
  ELMAN_CUDA_KERNEL=lean OUT=$G/prof-lean REUSE_BUILD=1 COMPARE_STEPWISE=0 SLOPE_CONFIGS="1,64 1,128" NCU_SET=full NCU_CONFIGS="1,64,100" \
    timeout $L bash bench/gpu_profile.sh > $G/prof-lean/profile.out 2>&1
  echo "profile lean rc=$? at $((SECONDS-T0))s" >> $G/session.txt; rm -f $G/prof-lean/*.ncu-rep; pack; fi
cat $G/session.txt; grep -E "^(ok|FAIL|SKIP|total)" $G/summary.txt
