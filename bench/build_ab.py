"""Two builds of elman timed in turn on the benchmark's grid: the A/B for a kernel change.

    python bench/build_ab.py OLD_PYTHON NEW_PYTHON [--rounds 3] [--threads 1,2]

Each Python runs this file with --worker in a fresh process per round and thread count,
alternately (old, new, old, new, ...), so that the machine's drift over time falls on
both. A worker times every FULL_GRID configuration of elman.RNN: one warm-up call, then
calls until 0.5 s has passed (at least 3, at most 200), and prints the medians (ms) as
JSON. The report gives each configuration's medians per round and new/old of their
medians. elman is not checked against the oracle here: the tests do that.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time


def worker(threads):
    import numpy as np

    import elman
    from elman._bench.grid import FULL_GRID
    elman.set_num_threads(threads)
    rng = np.random.default_rng(0)
    medians = {}
    for T, B, I, H in FULL_GRID:
        layer = elman.RNN(I, H, seed=1)
        x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
        layer(x)
        times, start = [], time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < 0.5 and len(times) < 200):
            t = time.perf_counter()
            layer(x)
            times.append(time.perf_counter() - t)
        medians[f"{T},{B},{I},{H}"] = statistics.median(times) * 1e3
    print(json.dumps(medians))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    runs = {}  # (config, threads) -> {"old": [...], "new": [...]}
    for _ in range(args.rounds):
        for name, python in (("old", args.old), ("new", args.new)):
            for threads in map(int, args.threads.split(",")):
                done = subprocess.run([python, __file__, "--worker", str(threads)],
                                      capture_output=True, text=True, check=True)
                for config, ms in json.loads(done.stdout).items():
                    runs.setdefault((config, threads), {"old": [], "new": []})[name].append(ms)
    print("| T, B, I, H | threads | old ms (rounds) | new ms (rounds) | new / old |")
    print("| --- | ---: | --- | --- | ---: |")
    for (config, threads), times in sorted(runs.items(), key=lambda item: item[0][1]):
        ratio = statistics.median(times["new"]) / statistics.median(times["old"])
        print(f"| {config} | {threads} | {' '.join(f'{t:.3f}' for t in times['old'])} | "
              f"{' '.join(f'{t:.3f}' for t in times['new'])} | {ratio:.3f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]))
    else:
        main()
