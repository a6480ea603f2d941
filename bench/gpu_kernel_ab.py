"""Two recurrence kernels timed in turn, in one process, for close calls in the kernel rule
(csrc/cuda/recurrence.cu) that separate runs of bench/gpu_tune.py cannot settle: their
timings of one kernel move by up to ~10% between runs, more than the difference to settle.

    python bench/gpu_kernel_ab.py --kernels few_rows,lean --hidden 256,512 --rounds 8

For each storage type and shape (B, H; I = H, tanh, one layer), each kernel is checked once
against the CPU (as gpu_tune.py checks), then round after round kernels A and B
(ELMAN_CUDA_KERNEL, which elman reads at each call; A first in even rounds, B first in odd
ones) are timed on the same layer and input, as gpu_tune.py times one: the slope between
T = 20 and T = 100. Each round gives the ratio B / A, so drift of the GPU over the run
cancels within a round. Prints, per shape, the median ratio and its range over the rounds,
and per H the geometric mean of the shapes' medians; a shape that either kernel cannot run,
or runs off the CPU's output, is left out, saying why. --out DIR gets the rounds as JSON
(rewritten after each shape) and the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_tune import CHOICES, KERNELS, LONG, SHORT, error_against_cpu, int_list, seeded_case, slope  # noqa: E402

KERNEL_NAMES = sorted({k for names in KERNELS.values() for k in names} - set(CHOICES))


def rounds_for(kernels, storage, B, H, rounds):
    """[{kernel: us per step}] per round (A then B in even rounds, B then A in odd ones, so
    that a cost of going first or second cancels), or a string saying why there are none:
    a kernel cannot run the shape, or its output is off the CPU's."""
    import torch

    import elman

    layer, x_of = seeded_case(torch, B, H, storage)
    x = {T: x_of(T) for T in (SHORT, LONG)}  # the same inputs for every round
    before = os.environ.get("ELMAN_CUDA_KERNEL")
    try:
        for kernel in kernels:
            os.environ["ELMAN_CUDA_KERNEL"] = kernel
            if elman.cuda._cuda.recurrence_kernel(B, H, False, storage) != kernel:
                return f"{kernel} cannot run it"
            error, ok = error_against_cpu(torch, layer, x[SHORT], H, storage)
            if not ok:
                return f"{kernel} is off the CPU's output by {error:.2e}"
        times = []
        for n in range(rounds):
            per_round = {}
            for kernel in kernels if n % 2 == 0 else kernels[::-1]:
                os.environ["ELMAN_CUDA_KERNEL"] = kernel
                per_round[kernel] = slope(torch, layer, x.__getitem__)[0]
            times.append(per_round)
        return times
    finally:
        if before is None:
            os.environ.pop("ELMAN_CUDA_KERNEL", None)
        else:
            os.environ["ELMAN_CUDA_KERNEL"] = before


def summary(results, kernels):
    """Markdown lines: per shape the median ratio B / A over the rounds and its range, per
    (storage, H) the geometric mean of those medians."""
    a, b = kernels
    lines = [f"{b} / {a}, us per step (slope T = {SHORT}..{LONG}), per round; below 1: {b} is faster",
             f"| storage | B | H | {a} (median) | {b} (median) | ratio: median | min | max |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    by_h = {}
    for row in results:
        ratios = sorted(r[b] / r[a] for r in row["rounds"] if r[a] > 0)  # else: lost in noise
        if not ratios:
            lines.append(f"| {row['storage']} | {row['B']} | {row['H']} | {a}'s slope lost in noise | | | | |")
            continue
        median = statistics.median(ratios)
        by_h.setdefault((row["storage"], row["H"]), []).append(median)
        lines.append(f"| {row['storage']} | {row['B']} | {row['H']} | "
                     f"{statistics.median(r[a] for r in row['rounds']):.3f} | "
                     f"{statistics.median(r[b] for r in row['rounds']):.3f} | "
                     f"{median:.3f} | {ratios[0]:.3f} | {ratios[-1]:.3f} |")
    lines.append("")
    for (storage, H), medians in sorted(by_h.items()):
        if all(m > 0 for m in medians):  # a slope lost in noise can come out <= 0
            mean = math.exp(sum(math.log(m) for m in medians) / len(medians))
            lines.append(f"{storage}, H = {H}: geometric mean of the medians {mean:.3f} over "
                         f"{len(medians)} shapes")
    return lines


def positive_list(text):
    values = int_list(text)
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes >= 1, got {text}")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", required=True, help="A,B: two of " + ", ".join(KERNEL_NAMES))
    parser.add_argument("--batches", type=positive_list, default=[1, 2, 4, 16, 32, 64])
    parser.add_argument("--hidden", type=positive_list, default=[256, 512])
    parser.add_argument("--storages", default="float32,bfloat16")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    kernels = [k.strip() for k in args.kernels.split(",")]
    if len(kernels) != 2 or kernels[0] == kernels[1] or not set(kernels) <= set(KERNEL_NAMES):
        parser.error(f"--kernels: expected two different names of {', '.join(KERNEL_NAMES)}, "
                     f"got {args.kernels!r}")
    storages = [s.strip() for s in args.storages.split(",")]
    if not set(storages) <= set(KERNELS):
        parser.error(f"--storages: expected names of {', '.join(KERNELS)}, got {args.storages!r}")
    if args.rounds < 1:
        parser.error("--rounds: expected at least 1")
    results = []
    for storage in storages:
        for B in args.batches:
            for H in args.hidden:
                rounds = rounds_for(kernels, storage, B, H, args.rounds)
                if isinstance(rounds, str):
                    print(f"{storage} B={B} H={H}: left out, {rounds}", flush=True)
                    continue
                results.append({"storage": storage, "B": B, "H": H, "rounds": rounds})
                print(f"{storage} B={B} H={H}: {rounds}", flush=True)
                if args.out:  # after each shape: a run cut short keeps what it measured
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / "gpu-kernel-ab.json").write_text(json.dumps(results, indent=1))
    text = "\n".join(summary(results, kernels))
    print(text)
    if args.out:
        (args.out / "gpu-kernel-ab.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
