#!/usr/bin/env bash
# A kernel profile on a GPU machine (dev aid): builds like gpu_check.sh (or reuses its
# install with REUSE_BUILD=1), then per-step times as the slope between T = 20 and
# T = 100 (launch costs cancel) for the chosen kernel and with ELMAN_CUDA_KERNEL=stepwise
# (float32), then for each storage type in STORAGES (WITH_CUDNN=1: torch.nn.RNN in the
# same dtype too), and Nsight Compute (ncu) of the on-chip recurrence kernel for
# NCU_CONFIGS (B,H,T[,storage] ...; empty: none; NCU_SET=full: all sections).
# BASELINE=DIR (a source tree, e.g. from `git archive main`): the chosen-kernel and
# storage slopes of that tree too, built into /tmp/base-site (kept with REUSE_BUILD=1), in
# the same run, for an A/B on one machine. BIDIRECTIONAL=1: bidirectional layers, both
# elman's and torch's. Logs to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-profile}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1
if [[ ${REUSE_BUILD:-0} != 1 ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/scipy_openblas32-*.whl
  export PYTHONPATH=/tmp/site CUDACXX=/usr/local/cuda/bin/nvcc
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/elman-site \
    -C cmake.define.ELMAN_CUDA=ON -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C cmake.define.CMAKE_CUDA_FLAGS=-lineinfo -C build-dir=/tmp/elman-build . > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
export PYTHONPATH=/tmp/elman-site:/tmp/site
cat > /tmp/slope.py <<'PY'
import os, sys, time, torch, elman
torch.manual_seed(0)
cfgs = [tuple(map(int, c.split(","))) for c in sys.argv[1:]]
bidirectional = os.environ.get("BIDIRECTIONAL") == "1"
torch.backends.cudnn.allow_tf32 = False

def slope(fn, x_of):
    per = {}
    for T in (20, 100):
        x = x_of(T)
        for _ in range(3): fn(x)
        ts = []
        for _ in range(15):
            torch.cuda.synchronize(); t0 = time.perf_counter(); fn(x); torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        per[T] = sorted(ts)[len(ts) // 2] * 1e6
    return per

for B, H in cfgs:
    if os.environ.get("WITH_CUDNN") == "1":  # torch.nn.RNN in the same dtype, for comparison
        dtype = getattr(torch, os.environ.get("STORAGE", "float32"))
        module = torch.nn.RNN(H, H, bidirectional=bidirectional).cuda().to(dtype).eval()
        with torch.no_grad():
            per = slope(lambda x: module(x), lambda T: (torch.randn(T, B, H, device="cuda") * 0.5).to(dtype))
        print(f"  cuDNN {dtype} B={B} H={H}: per step {(per[100]-per[20])/80:.2f} us", flush=True)
    storage = os.environ.get("STORAGE", "float32")
    layer = elman.RNN(H, H, device="cuda", seed=1, storage=storage, bidirectional=bidirectional)
    per = slope(layer, lambda T: (torch.randn(T, B, H, device="cuda") * 0.5).to(getattr(torch, storage)))
    print(f"B={B} H={H}: T=20 {per[20]:.1f} us, T=100 {per[100]:.1f} us, per step {(per[100]-per[20])/80:.2f} us, fixed {per[20]-20*(per[100]-per[20])/80:.1f} us", flush=True)
PY
CONFIGS=${SLOPE_CONFIGS:-1,256 4,256 64,256 16,1760 256,512 64,1760}
echo "chosen kernel:"; python3 /tmp/slope.py $CONFIGS 2>&1 | tee "$OUT/slope.log"
[[ ${COMPARE_STEPWISE:-1} == 1 ]] && echo "ELMAN_CUDA_KERNEL=stepwise:" && ELMAN_CUDA_KERNEL=stepwise python3 /tmp/slope.py $CONFIGS 2>&1 | tee -a "$OUT/slope.log"
for storage in ${STORAGES:-}; do  # e.g. STORAGES="bfloat16 float16"
  echo "storage $storage:"; STORAGE=$storage python3 /tmp/slope.py $CONFIGS 2>&1 | tee -a "$OUT/slope.log"
done
if [[ -n ${BASELINE:-} ]]; then
  [[ ${REUSE_BUILD:-0} == 1 && -d /tmp/base-site/elman ]] || \
  CUDACXX=/usr/local/cuda/bin/nvcc PYTHONPATH=/tmp/site python3 -m pip install -q --no-index --no-deps \
    --no-build-isolation --target /tmp/base-site -C cmake.define.ELMAN_CUDA=ON \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=/tmp/base-build "$BASELINE" > "$OUT/base-build.log" 2>&1 \
    || { tail -30 "$OUT/base-build.log"; exit 1; }
  for storage in float32 ${STORAGES:-}; do
    echo "BASELINE storage $storage:"
    PYTHONPATH=/tmp/base-site:/tmp/site WITH_CUDNN=0 STORAGE=$storage python3 /tmp/slope.py $CONFIGS 2>&1 | tee -a "$OUT/slope.log"
  done
fi
cat > /tmp/one.py <<'PY'
import sys, torch, elman
B, H, T = map(int, sys.argv[1:4])
storage = sys.argv[4] if len(sys.argv) > 4 else "float32"
layer = elman.RNN(H, H, device="cuda", seed=1, storage=storage)
x = (torch.randn(T, B, H, device="cuda") * 0.5).to(getattr(torch, storage))
layer(x); torch.cuda.synchronize()
PY
# Nsight Compute of the recurrence kernel of each NCU_CONFIGS entry (B,H,T[,storage]):
# chosen sections, or with NCU_SET=full every section, the report itself, and its per-SASS
# line stall samples (ncu-*-sass.csv), and per CUDA source line (ncu-*-cuda.csv): this
# script builds with -lineinfo (line tables only, the same code); gpu_check.sh's build,
# reused with REUSE_BUILD=1, has them where it ran with CUDAFLAGS=-lineinfo.
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /usr/local/cuda/nsight-compute*/ncu 2>/dev/null | head -1)
KERNELS='tiled|few_rows|persistent'  # tiled: also tiled_mma, tiled_fma
for c in ${NCU_CONFIGS-64,256,20 16,1760,20}; do
  name=ncu-${c//,/-}
  if [[ ${NCU_SET:-} == full ]]; then
    timeout 120 "$NCU" --clock-control none -k regex:"$KERNELS" --launch-count 1 --set full \
      -f -o "$OUT/$name" python3 /tmp/one.py ${c//,/ } > "$OUT/$name.log" 2>&1
    echo "ncu $c rc=$?"
    "$NCU" -i "$OUT/$name.ncu-rep" --page details >> "$OUT/$name.log" 2>&1
    "$NCU" -i "$OUT/$name.ncu-rep" --page source --csv --print-source sass > "$OUT/$name-sass.csv" 2>&1
    "$NCU" -i "$OUT/$name.ncu-rep" --page source --csv --print-source cuda > "$OUT/$name-cuda.csv" 2>&1
  else
    timeout 120 "$NCU" --clock-control none -k regex:"$KERNELS" --launch-count 1 \
      --section SpeedOfLight --section WarpStateStats --section LaunchStats --section Occupancy \
      --section SchedulerStats --section MemoryWorkloadAnalysis \
      python3 /tmp/one.py ${c//,/ } > "$OUT/$name.log" 2>&1
    echo "ncu $c rc=$?"
  fi
  grep -E "Duration|Stall|Warp Cycles|Issued|Throughput|Registers|Achieved|Bank" "$OUT/$name.log" | head -40
done
