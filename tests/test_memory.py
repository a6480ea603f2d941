"""Memory: no growth over 10,000 repeated calls, and the peak memory of a forward pass
as the formula in README.md ("Memory") says.

Both measure the resident set size of a process (/proc/self/statm, /proc/self/status),
which sees the engine's C++ allocations (tracemalloc sees only Python's). Skipped under
tools/sanitize: AddressSanitizer keeps freed memory in quarantine.
"""

import gc
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import elman
import elman._core

pytestmark = [
    pytest.mark.skipif(os.environ.get("ELMAN_SANITIZED") == "1", reason="ASan holds freed memory"),
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc"),
]

CALLS = 10_000
# A leak of any buffer of these calls (the smallest, h_n of elman.rnn, is 128 bytes;
# outputs are KiBs) adds >= 1.25 MiB over 10,000 calls; allocator noise stays far below.
GROWTH_BOUND = 1 << 20


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_growth_over_repeated_calls():
    T, B, I, H = 8, 4, 16, 32
    rng = np.random.default_rng(0)
    layer = elman.RNN(I, H, 2, seed=0)
    stream = elman.RNN(I, H, seed=1).stream(batch_size=B)
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    h0, lengths = np.zeros((2, B, H), np.float32), np.arange(T, T - B, -1)
    W_x, W_y = layer.w_x_l0, layer.w_y_l0

    def calls():
        layer(x, h0, lengths)
        elman.rnn(x, W_x, W_y, reverse=True)      # packs a new network every call
        layer.step(x[0])
        stream(x[:2])
        try:
            layer(x, lengths=[0] * B)              # refused: the error path must not leak
        except ValueError:
            pass

    for _ in range(500):
        calls()
    gc.collect()
    before = resident_bytes()
    for _ in range(CALLS):
        calls()
    gc.collect()
    growth = resident_bytes() - before
    print(f"resident set growth over {CALLS} iterations (5 calls each): {growth / 1024:.0f} KiB")
    assert growth < GROWTH_BOUND, f"grew by {growth / 2**20:.2f} MiB over {CALLS} iterations"


# ---------------------------------------------------------------- peak of one forward pass
def predicted_peak(T, B, I, H, L, D, itemsize, input_copied):
    """README.md's formula: the outputs, the buffers between layers, and the input copy
    (when x is not already C-contiguous in the layer's dtype). The states (h_n, and the
    zeros standing for the h0 these probes don't give) are 2*L*D*B*H; per-thread scratch
    is O(B*H), negligible here."""
    outputs = T * B * D * H + 2 * L * D * B * H
    between = min(L - 1, 2) * T * B * D * H
    copy = T * B * I if input_copied else 0
    return (outputs + between + copy) * itemsize


PROBE = textwrap.dedent("""
    import gc, json, sys
    import numpy as np, elman
    T, B, I, H, L, D, dtype, batch_first, as_float64 = json.loads(sys.argv[1])

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    layer = elman.RNN(I, H, L, bidirectional=D == 2, batch_first=batch_first, dtype=dtype, seed=0)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype("float64" if as_float64 else dtype)
    layer(x)                                   # warm-up: BLAS buffers, worker threads
    gc.collect()
    open("/proc/self/clear_refs", "w").write("5")   # resets the peak (VmHWM) to now
    base = status("VmRSS")
    y, h_n = layer(x)
    print(json.dumps(status("VmHWM") - base))
""")

PEAK_CASES = [  # T, B, I, H, L, D, dtype, batch_first, float64 input to a float32 layer
    (200, 64, 128, 512, 3, 1, "float32", True, False),
    (300, 32, 256, 256, 1, 2, "float64", False, False),
    (100, 64, 512, 384, 2, 1, "float32", False, True),
]


@pytest.mark.parametrize("case", PEAK_CASES,
                         ids=lambda c: "T{}-B{}-I{}-H{}-L{}-D{}-{}-bf{}-f64in{}".format(*c))
def test_peak_memory_of_a_forward_pass(case):
    T, B, I, H, L, D, dtype, batch_first, as_float64 = case
    # A fixed mmap threshold: every large buffer is mapped and unmapped on its own, so
    # the resident set shows exactly the buffers alive at each moment.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(case)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.splitlines()[-1])
    predicted = predicted_peak(T, B, I, H, L, D, np.dtype(dtype).itemsize,
                               input_copied=batch_first or as_float64)
    print(f"{case}: measured {measured / 2**20:.1f} MiB, predicted {predicted / 2**20:.1f} MiB")
    assert 0.9 * predicted - (1 << 20) <= measured <= 1.1 * predicted + (2 << 20), (
        f"peak {measured / 2**20:.1f} MiB, formula {predicted / 2**20:.1f} MiB")


# ---------------------------------------------------------------- memory a layer holds
LAYER_PROBE = textwrap.dedent("""
    import gc, json, sys
    import numpy as np, elman
    I, H, L, dtype = json.loads(sys.argv[1])
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
    x = np.zeros((1, 1, I), dtype)
    elman.RNN(I, 8, dtype=np.float32)(x)    # warm-up: the thread pool, OpenBLAS
    elman.RNN(I, 8, dtype=np.float64)(x)
    gc.collect()
    base = rss()
    layer = elman.RNN(I, H, L, dtype=dtype, seed=0)
    layer(x)                                  # packs the weights
    gc.collect()
    print(json.dumps(rss() - base))
""")


def predicted_layer_bytes(I, H, L, itemsize, packed):
    """README.md's formula: per layer, the weights twice (the layer's NumPy arrays and the
    engine's copy), plus the packed copy (columns padded to 32) where the CPU runs the
    packed kernels (AVX-512, or AVX2 and FMA)."""
    total = 0
    for k in range(L):
        inputs = I if k == 0 else H
        total += 2 * itemsize * (inputs * H + H * H + H)
        if packed:
            total += itemsize * (inputs + H) * (-(-H // 32) * 32)
    return total


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_memory_held_by_a_layer(dtype):
    I, H, L = 512, 1000, 2
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, "-c", LAYER_PROBE, json.dumps([I, H, L, dtype])],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.splitlines()[-1])
    itemsize = np.dtype(dtype).itemsize
    predicted = predicted_layer_bytes(I, H, L, itemsize, elman._core.packed_products() is not None)
    print(f"layer {dtype}: measured {measured / 2**20:.1f} MiB, formula {predicted / 2**20:.1f} MiB")
    assert abs(measured - predicted) <= 0.05 * predicted + (1 << 20), (
        f"layer holds {measured / 2**20:.1f} MiB, formula {predicted / 2**20:.1f} MiB")
