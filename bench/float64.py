"""float64 layers on one thread: elman against a NumPy loop and torch.nn.RNN in float64
(where torch is installed), us per step, medians of 15 calls after a warm-up (timed, and
the NumPy loop written, as by `python -m elman bench`). Every implementation's output is
first compared with the float64 oracle (elman.reference).
`python -m elman bench` times float32 only; this is its float64 counterpart for the
regimes of its quick grid and two larger ones.

    .venv/bin/python bench/float64.py                       # the kernels the CPU runs
    ELMAN_CPU_PACKED=avx2 .venv/bin/python bench/float64.py  # AVX2 ones on an AVX-512 CPU
    ELMAN_CPU_PACKED=0 .venv/bin/python bench/float64.py     # OpenBLAS's products
"""
import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # NumPy's BLAS on one thread too (read at import)
import numpy as np  # noqa: E402

import elman  # noqa: E402
import elman._core  # noqa: E402
from elman import reference  # noqa: E402
from elman._bench.grid import Weights  # noqa: E402
from elman._bench.impls import build_numpy  # noqa: E402
from elman._bench.measure import time_calls  # noqa: E402

CONFIGS = [(1000, 1, 64, 64), (1000, 1, 256, 256), (100, 8, 256, 256), (100, 64, 256, 256),
           (250, 1, 1024, 1024), (50, 16, 1024, 1024)]


def median_us_per_step(run, x, calls=15):
    return float(np.median(time_calls(run, x, calls))) / x.shape[0] * 1e6


def check(name, y, expected):
    error = float(np.max(np.abs(y - expected)))
    if error > 1e-9:
        raise AssertionError(f"{name}: off the float64 oracle by {error:.3g}")


def main():
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    elman.set_num_threads(1)
    print(f"elman's products: {elman._core.packed_products() or 'OpenBLAS'} "
          f"(ELMAN_CPU_PACKED={os.environ.get('ELMAN_CPU_PACKED', '')!r}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')!r}); torch "
          f"{torch.__version__ if torch else 'not installed'}\n")
    print("| T, B, I, H | elman | NumPy loop | torch | NumPy loop / elman | torch / elman |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    for T, B, I, H in CONFIGS:
        layer = elman.RNN(I, H, dtype=np.float64, seed=0)
        x = rng.uniform(-1, 1, (T, B, I)) * min(1.0, np.sqrt(H / I))
        expected = reference.forward(layer, x)[0]
        # the NumPy loop of `python -m elman bench`, here on float64 weights
        numpy_loop = build_numpy(Weights(layer.w_x_l0, layer.w_y_l0, layer.b_l0), None)
        check("elman", layer(x)[0], expected)
        check("NumPy loop", numpy_loop(x), expected)
        times = [median_us_per_step(layer, x), median_us_per_step(numpy_loop, x)]
        if torch:
            rnn = layer.to_torch().double()
            with torch.inference_mode():
                check("torch", rnn(torch.from_numpy(x))[0].numpy(), expected)
                times.append(median_us_per_step(rnn, torch.from_numpy(x)))
        row = " | ".join(f"{t:.2f}" for t in times) + (" | n/a" if not torch else "")
        ratios = " | ".join(f"{t / times[0]:.2f}x" for t in times[1:]) + (" | n/a" if not torch else "")
        print(f"| {T}, {B}, {I}, {H} | {row} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
