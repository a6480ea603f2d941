"""Stress test: Python threads call elman layers at once for a bounded time; every result
is compared, bit for bit, with the result of the same call made alone beforehand.

    python bench/stress.py [--seconds 10] [--threads 8] [--flip]

--flip also changes elman.set_num_threads (1, 2, 3) during the run; a call then reads
the count once when it starts, so its result must equal the serial result for one of
those counts. Prints calls/s and the mismatches; exits 1 on any mismatch or error.
"""

import argparse
import threading
import time
from collections import Counter

import numpy as np

import elman

THREAD_COUNTS = (1, 2, 3)


def make_tasks():
    """name -> call; the engine's paths: one row, rows split, columns split with a barrier
    per step, variable lengths, bidirectional float64, elman.rnn, step."""
    rng = np.random.default_rng(0)
    data = lambda *shape, dtype=np.float32: rng.uniform(-1, 1, shape).astype(dtype)
    one_row, rows = elman.RNN(32, 256, seed=1), elman.RNN(16, 64, 2, seed=2)
    columns, relu = elman.RNN(8, 640, seed=3), elman.RNN(12, 48, seed=4, nonlinearity="relu")
    bidir = elman.RNN(10, 40, 2, bidirectional=True, dtype=np.float64, seed=5)
    cell = elman.RNN(16, 32, 3, seed=6)
    x1, x2, x3, x4 = data(40, 1, 32), data(20, 17, 16), data(6, 2, 8), data(15, 9, 12)
    x5 = data(12, 5, 10, dtype=np.float64)
    lengths = np.arange(15, 6, -1)
    W_x, W_y, x6, x7 = data(16, 96) / 4, data(96, 96) / 10, data(25, 3, 16), data(4, 16)
    return {
        "one row (B=1, H=256)": lambda: one_row(x1),
        "rows split (B=17, L=2)": lambda: rows(x2),
        "columns split (H=640)": lambda: columns(x3),
        "variable lengths, relu": lambda: relu(x4, lengths=lengths),
        "bidirectional float64": lambda: bidir(x5),
        "elman.rnn reverse": lambda: elman.rnn(x6, W_x, W_y, reverse=True),
        "step, 3 layers": lambda: (cell.step(x7),),
    }


def serial_results(tasks, counts):
    """name -> the results of the call made alone, one per thread count."""
    results = {name: [] for name in tasks}
    for n in counts:
        elman.set_num_threads(n)
        for name, task in tasks.items():
            results[name].append(task())
    return results


def matches(result, candidates):
    return any(all(np.array_equal(a, b) for a, b in zip(result, c)) for c in candidates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8, help="Python threads calling at once")
    parser.add_argument("--flip", action="store_true", help="change set_num_threads during the run")
    args = parser.parse_args()

    tasks = make_tasks()
    initial = elman.get_num_threads()
    counts = THREAD_COUNTS if args.flip else (initial,)
    expected = serial_results(tasks, counts)
    elman.set_num_threads(initial)
    names = list(tasks)
    calls, mismatches, errors = Counter(), Counter(), []
    lock, stop = threading.Lock(), threading.Event()

    def work(seed):
        rng = np.random.default_rng(seed)
        mine, bad = Counter(), Counter()
        try:
            while not stop.is_set():
                name = names[rng.integers(len(names))]
                mine[name] += 1
                if not matches(tasks[name](), expected[name]):
                    bad[name] += 1
        except Exception as e:
            errors.append(repr(e))
        with lock:
            calls.update(mine)
            mismatches.update(bad)

    def flip():
        k = 0
        while not stop.is_set():
            elman.set_num_threads(counts[k % len(counts)])
            k += 1
            time.sleep(0.001)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(args.threads)]
    if args.flip:
        workers.append(threading.Thread(target=flip, daemon=True))
    start = time.perf_counter()
    for t in workers:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in workers:
        t.join(60)
    elapsed = time.perf_counter() - start
    elman.set_num_threads(initial)
    hung = sum(t.is_alive() for t in workers)

    total = sum(calls.values())
    elman_threads = f"flipping {counts}" if args.flip else initial
    print(f"{args.threads} Python threads, elman threads {elman_threads}, "
          f"{elapsed:.1f} s: {total} calls, {total / elapsed:.0f} calls/s, "
          f"{sum(mismatches.values())} mismatches, {len(errors)} errors, {hung} threads hung")
    for name in names:
        print(f"  {name:28s} {calls[name]:8d} calls  {mismatches[name]:4d} mismatches")
    for e in errors[:5]:
        print("  error:", e)
    raise SystemExit(1 if mismatches or errors or hung else 0)


if __name__ == "__main__":
    main()
