#!/usr/bin/env bash
# Builds the lab for Hopper and runs it, torch's cuDNN RNN, and compute-sanitizer on a
# small configuration; logs go to ${OUT:-.}. Run from the repository root on a GPU machine.
set -uo pipefail
out=${OUT:-.}
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt"
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo -o /tmp/rnn_lab lab.cu -lcublas 2>&1 | tee "$out/build.log" || exit 1
/tmp/rnn_lab 2>&1 | tee "$out/lab.log"
python3 torch_rnn.py 2>&1 | tee "$out/torch.log"
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool --error-exitcode 1 /tmp/rnn_lab 20 3 40 300 > "$out/sanitizer-$tool.log" 2>&1
  echo "compute-sanitizer $tool: exit $?" | tee -a "$out/sanitizer-$tool.log"
done
