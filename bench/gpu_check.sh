#!/usr/bin/env bash
# The one GPU check of the CUDA backend: build elman with ELMAN_CUDA=ON, run
# tests/test_cuda.py (GPU tests required, not skipped) and a fast subset of the CPU tests,
# bench/gpu.py, and compute-sanitizer memcheck and racecheck over small CUDA cases.
#
#   bash bench/gpu_check.sh          # on a GPU machine, from any directory
#
# Needs there: python3 with torch (CUDA), pybind11, scikit-build-core, cmake, ninja,
# nvidia-cublas, numpy, pytest; nvcc and compute-sanitizer. Without network: the
# scipy-openblas32 wheel the build needs is taken from .whl/ (downloaded beforehand for
# that machine's Python; see the GPU section of README.md) and installed to /tmp/site.
#
# Logs go to $OUT (default /tmp/gpu-check), 8 files without the tune (11 with it; a device
# tool that returns fewer needs them packed, as gpu_ab.sh does):
#   summary.txt   GPU, tool versions, one line per step with its exit status and time
#   build.log     the pip/CMake/nvcc build
#   tests.log     the install check, tests/test_cuda.py, then the CPU subset (run last)
#   memcheck.log  racecheck.log   compute-sanitizer over `test_cuda.py -k sanitizer`
#                 (racecheck without the timed choice's trial)
#   bench.log     bench/gpu.py's progress and Markdown table
#   gpu-bench-*.json / .md   bench/gpu.py's files
# Every step runs under `timeout`, and all steps together within GPU_CHECK_BUDGET seconds
# (default 400): a step that would start past it is skipped (and counts as failed). The
# script goes on after a failing step and exits 1 if any step failed. For a quicker look:
# GPU_CHECK_SANITIZERS="memcheck" (or "") picks the sanitizer tools, GPU_CHECK_CPU=0 skips
# the CPU subset. GPU_CHECK_TUNE=1 also times every kernel on a grid of shapes, after the
# sanitizers (bench/gpu_tune.py: tune.log, gpu-tune.json, gpu-tune.md; give it a budget of
# ~560 s), with GPU_CHECK_TUNE_ARGS added to its command line (e.g. "--storages float32").
# GPU_CHECK_KERNEL_AB="A,B" (e.g. "lean,lean_async") times two kernels in turn in one
# process after the sanitizers (bench/gpu_kernel_ab.py, its --hidden from
# GPU_CHECK_KERNEL_AB_HIDDEN, default 256,512: kernel-ab.log, ab/).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET:-400}
SITE=/tmp/elman-site            # elman installed here (pip --target)
DEPS=/tmp/site                  # scipy-openblas32 (from .whl/)
SUMMARY=$OUT/summary.txt
T0=$SECONDS
FAILED=()
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S LOG COMMAND: runs COMMAND (a bash string) under timeout, appending its
# output to LOG; records the exit status. The limit shrinks to what the budget has left.
step() {
  local name=$1 limit=$2 log=$3 cmd=$4
  local left=$(( BUDGET - (SECONDS - T0) ))
  if (( left < 15 )); then
    note "SKIP  $name: the budget of ${BUDGET}s is spent"
    FAILED+=("$name(skipped)")
    return 1
  fi
  (( limit > left )) && limit=$left
  echo "===== $name (timeout ${limit}s): $cmd" >> "$log"
  local t=$SECONDS
  timeout --kill-after=10 "$limit" bash -c "$cmd" >> "$log" 2>&1
  local rc=$?
  local msg="rc=$rc"
  (( rc == 124 || rc == 137 )) && msg="rc=$rc (timed out after ${limit}s)"
  if (( rc == 0 )); then note "ok    $name ($((SECONDS - t))s)"
  else note "FAIL  $name: $msg ($((SECONDS - t))s), log $(basename "$log")"; FAILED+=("$name"); fi
  return $rc
}

# -- the machine ------------------------------------------------------------------------
: > "$SUMMARY"
{
  date -u
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
} >> "$SUMMARY" 2>&1
if ! command -v nvcc > /dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin /opt/cuda/bin; do
    [[ -x $d/nvcc ]] && { export PATH="$d:$PATH"; break; }
  done
fi
command -v nvcc > /dev/null && export CUDACXX=${CUDACXX:-$(command -v nvcc)}
SANITIZER=$(command -v compute-sanitizer || ls "$(dirname "${CUDACXX:-/usr/local/cuda/bin/nvcc}")"/compute-sanitizer 2> /dev/null || true)
{
  echo "nvcc: ${CUDACXX:-not found}"; [[ -n ${CUDACXX:-} ]] && "$CUDACXX" --version | tail -2
  echo "compute-sanitizer: ${SANITIZER:-not found}"
  cmake --version | head -1; python3 --version; command -v python3
  python3 -c "import os, sysconfig; h = os.path.join(sysconfig.get_paths()['include'], 'Python.h'); print(h, 'present' if os.path.exists(h) else 'MISSING (the build needs it)')"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  python3 -m pip list 2> /dev/null | grep -iE '^(numpy|pybind11|scikit-build-core|nvidia-cublas|pytest|cupy|torch) '
  echo "budget: ${BUDGET}s"
} >> "$SUMMARY" 2>&1
cat "$SUMMARY"

# -- build and install ------------------------------------------------------------------
BUILD_LOG=$OUT/build.log
step "install scipy-openblas32 from .whl/" 60 "$BUILD_LOG" \
  "python3 -m pip install -q --no-index --no-deps --no-compile --target $DEPS .whl/scipy_openblas32-*.whl"
export PYTHONPATH=$DEPS
# CMAKE_CUDA_ARCHITECTURES: the project's default (80;90) unless ELMAN_CUDA_ARCH is set.
ARCH_DEFINE=${ELMAN_CUDA_ARCH:+-C cmake.define.CMAKE_CUDA_ARCHITECTURES=$ELMAN_CUDA_ARCH}
if ! step "build elman with ELMAN_CUDA=ON" 240 "$BUILD_LOG" \
  "rm -rf $SITE /tmp/elman-build && python3 -m pip install -v --no-index --no-deps --no-build-isolation --target $SITE -C cmake.define.ELMAN_CUDA=ON -C build-dir=/tmp/elman-build $ARCH_DEFINE ."; then
  note "the build failed: nothing else to run"
  grep -n -iE "error|fatal" "$BUILD_LOG" | head -n 40
  tail -n 30 "$BUILD_LOG"
  exit 1
fi
export PYTHONPATH=$SITE:$DEPS

# -- tests ------------------------------------------------------------------------------
TEST_LOG=$OUT/tests.log
step "import elman.cuda: built and available" 60 "$TEST_LOG" \
  "python3 -c 'import elman, elman.cuda as c; print(elman.__file__, \"built\", c.is_built(), \"available\", c.is_available(), \"devices\", c.device_count()); assert c.is_available()'"
# The tests of a kernel not yet run on a GPU run apart, after the others: a kernel that
# traps ends its process's use of the GPU, and would fail every test after it.
EXPERIMENT=lean_async
PYTEST="ELMAN_REQUIRE_CUDA=1 python3 -m pytest -q -p no:cacheprovider -rfEs -o faulthandler_timeout=120"
step "pytest tests/test_cuda.py (ELMAN_REQUIRE_CUDA=1), all but $EXPERIMENT" 240 "$TEST_LOG" \
  "$PYTEST --durations=10 tests/test_cuda.py -k 'not $EXPERIMENT'"
step "pytest tests/test_cuda.py -k $EXPERIMENT" 120 "$TEST_LOG" "$PYTEST tests/test_cuda.py -k $EXPERIMENT"

# -- benchmark (before the sanitizers: they are the likeliest to run long) ---------------
step "bench/gpu.py" 120 "$OUT/bench.log" "python3 bench/gpu.py --out '$OUT'"

# -- compute-sanitizer over the small CUDA cases -----------------------------------------
if [[ -z $SANITIZER ]]; then
  note "FAIL  compute-sanitizer: not found"; FAILED+=("compute-sanitizer")
else
  for tool in ${GPU_CHECK_SANITIZERS-memcheck racecheck}; do
    # racecheck took 74 s on an H200 (bench/results/gpu-check-h200-20261126-10), before the
    # forced lean and gemm cases were added. It leaves out the timed choice's trial (800
    # steps of kernels whose races the other cases check); memcheck checks its memory.
    cases=sanitizer
    [[ $tool == racecheck ]] && cases="sanitizer and not trial"
    for selected in "$cases and not $EXPERIMENT" "$cases and $EXPERIMENT"; do
      step "compute-sanitizer --tool $tool -k '$selected'" 240 "$OUT/$tool.log" \
        "ELMAN_REQUIRE_CUDA=1 '$SANITIZER' --tool $tool --error-exitcode 99 --print-limit 50 python3 -m pytest -q -p no:cacheprovider -x -rfEs tests/test_cuda.py -k '$selected'"
    done
  done
fi

# -- two kernels timed in turn (GPU_CHECK_KERNEL_AB="A,B") --------------------------------
[[ -n ${GPU_CHECK_KERNEL_AB:-} ]] && step "bench/gpu_kernel_ab.py $GPU_CHECK_KERNEL_AB" 200 "$OUT/kernel-ab.log" \
  "python3 bench/gpu_kernel_ab.py --kernels '$GPU_CHECK_KERNEL_AB' --hidden ${GPU_CHECK_KERNEL_AB_HIDDEN:-256,512} --out '$OUT/ab'"

# -- every kernel on a grid of shapes, beside torch (GPU_CHECK_TUNE=1; a few minutes) -----
[[ ${GPU_CHECK_TUNE:-0} == 1 ]] && step "bench/gpu_tune.py" 300 "$OUT/tune.log" \
  "python3 bench/gpu_tune.py --out '$OUT' ${GPU_CHECK_TUNE_ARGS:-}"

# -- a fast subset of the CPU tests (last: CI runs them all anyway) ----------------------
[[ ${GPU_CHECK_CPU:-1} == 1 ]] && step "pytest CPU subset" 60 "$TEST_LOG" \
  "python3 -m pytest -q -p no:cacheprovider -rfE tests/test_layer_vs_oracle.py tests/test_step_stream.py tests/test_special_values.py tests/test_lengths.py tests/test_functional.py tests/test_activation_layers.py tests/test_bad_input.py tests/test_weights.py tests/test_save_load.py tests/test_zero_copy.py"

# -- summary ----------------------------------------------------------------------------
note "total $((SECONDS - T0))s; failed steps: ${#FAILED[@]}${FAILED[*]:+ (${FAILED[*]})}"
echo
echo "---- bench table"
sed -n '/^GPU: /,$p' "$OUT/bench.log" 2> /dev/null
[[ -f $OUT/gpu-tune.md ]] && { echo "---- every kernel (bench/gpu_tune.py)"; cat "$OUT/gpu-tune.md"; }
[[ -f $OUT/ab/gpu-kernel-ab.md ]] && { echo "---- two kernels in turn (bench/gpu_kernel_ab.py)"; cat "$OUT/ab/gpu-kernel-ab.md"; }
for log in "$TEST_LOG" "$OUT/memcheck.log" "$OUT/racecheck.log"; do
  [[ -f $log ]] || continue
  echo "---- $(basename "$log"): steps, totals, first failures"
  grep -E "^===== |built (True|False)|[0-9]+ (passed|failed|errors?|skipped)\b.* in [0-9.]+s|ERROR SUMMARY|RACECHECK SUMMARY" "$log"
  grep -E "^(FAILED|ERROR) " "$log" | head -n 30
done
(( ${#FAILED[@]} )) && exit 1
exit 0
