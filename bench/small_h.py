"""Per-step time at B = 1 and small H on one thread, long sequences (T = 4000), for the
latency target of the CPU issue: the whole layer call with I = H, the recurrence alone
(I = 1, so the input projection is negligible), and the cost of a call to layer.step.
Medians of 40 calls; the machine is shared, so compare runs made back to back.

    .venv/bin/python bench/small_h.py
"""
import time

import numpy as np

import elman


def median_us(fn, calls):
    for _ in range(3):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def main():
    elman.set_num_threads(1)
    rng = np.random.default_rng(0)
    T = 4000
    for H in (32, 64, 128):
        for I in (H, 1):
            layer = elman.RNN(I, H, seed=0)
            x = rng.standard_normal((T, 1, I), dtype=np.float32)
            print(f"B=1 H={H:<4} I={I:<4} {median_us(lambda: layer(x), 40) / T:.4f} us/step")
    layer = elman.RNN(64, 64, seed=0)
    x_t = rng.standard_normal(64, dtype=np.float32)
    step = median_us(lambda: [layer.step(x_t) for _ in range(1000)], 20) / 1000
    print(f"layer.step at H=64: {step:.2f} us a call")


if __name__ == "__main__":
    main()
