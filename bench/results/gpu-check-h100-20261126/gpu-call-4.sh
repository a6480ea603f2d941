#!/usr/bin/env bash
# Call 4 of session 12 on a fresh H100, with kLeanMaxHidden = 512: build, tests/test_cuda.py, bench/gpu.py.
set -u
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 CUDACXX=/usr/local/cuda/bin/nvcc
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/summary.txt
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/scipy_openblas32-*.whl
export PYTHONPATH=/tmp/site
timeout 80 python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/elman-site \
  -C cmake.define.ELMAN_CUDA=ON -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=/tmp/elman-build . > $OUT/build.log 2>&1
echo "build rc=$?" >> $OUT/summary.txt
export PYTHONPATH=/tmp/elman-site:/tmp/site
timeout 100 env ELMAN_REQUIRE_CUDA=1 python3 -m pytest -q -p no:cacheprovider -rfEs tests/test_cuda.py > $OUT/tests.log 2>&1
echo "tests rc=$?" >> $OUT/summary.txt
timeout 45 python3 bench/gpu.py --out $OUT > $OUT/bench.log 2>&1
echo "bench rc=$?" >> $OUT/summary.txt
cat $OUT/summary.txt; tail -3 $OUT/tests.log
