"""Measuring: the sgemm yardstick, and one implementation over the configurations.

Every implementation is checked against the float64 oracle (elman.reference.rnn)
before it is timed: one warm-up call, then calls until about a second has passed;
the median is reported.
"""

import statistics
import sys
import time

import numpy as np

import elman
from elman import reference

from . import impls as impls_module
from .grid import SEED, Config, make_inputs

SGEMM_N = 2048
SGEMM_REPEATS = 5
TARGET_S = 1.0       # time each implementation for about this long per configuration...
MAX_S = 3.0          # ...but never much longer, even to reach MIN_REPEATS
MIN_REPEATS = 3
# float32 against the float64 oracle: tanh keeps |y| <= 1, so this is relative-ish.
RTOL = ATOL = 1e-4


def progress(message):
    print(message, file=sys.stderr, flush=True)


def measure_sgemm(n=SGEMM_N, repeats=SGEMM_REPEATS, with_elman=True):
    """GFLOP/s of an n x n x n float32 product, NumPy's and elman's (if it has one).

    The larger is the yardstick ("used"): the best this machine's own software
    reaches, so a fraction of it is the most demanding honest one.
    """
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    result = {"n": n, "numpy": product_gflops(np.matmul, a, b, repeats), "elman": None}
    matmul = getattr(elman._core, "matmul", None) if with_elman else None
    if matmul is not None:
        expected = a @ b
        error = np.max(np.abs(matmul(a, b) - expected)) / np.max(np.abs(expected))
        if error > 1e-4:  # a wrong product is no yardstick
            result["elman_error"] = float(error)
        else:
            result["elman"] = product_gflops(matmul, a, b, repeats)
    result["used"] = max(g for g in (result["numpy"], result["elman"]) if g)
    result["used_from"] = "elman" if result["used"] == result["elman"] else "numpy"
    return result


def yardstick(threads, n=SGEMM_N, repeats=SGEMM_REPEATS, with_elman=True):
    """The sgemm measurement at this thread count, and the BLAS libraries it ran on."""
    elman.set_num_threads(threads)
    return {**measure_sgemm(n, repeats, with_elman), "blas": blas_libraries()}


def with_forced_avx512(sgemm, gflops):
    """The yardstick with NumPy's sgemm under OPENBLAS_CORETYPE=SkylakeX added."""
    sgemm = {**sgemm, "numpy_avx512": gflops}
    if gflops > sgemm["used"]:
        sgemm.update(used=gflops, used_from="numpy_avx512")
    return sgemm


def product_gflops(matmul, a, b, repeats):
    """GFLOP/s of matmul(a, b), median of repeats after a warm-up (thread pool, pages)."""
    matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / statistics.median(times) / 1e9


def time_calls(run, x, repeats=None):
    """Seconds per call, one entry per timed call, after one untimed warm-up call.

    With repeats=None the count adapts: at least MIN_REPEATS calls and TARGET_S
    seconds in all, stopping early only once MAX_S is spent.
    """
    run(x)
    times = []
    total = 0.0
    while True:
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
        total += times[-1]
        if repeats is not None:
            if len(times) >= repeats:
                return times
        elif total >= MAX_S or (total >= TARGET_S and len(times) >= MIN_REPEATS):
            return times


def check(y, y_ref):
    """(ok, max abs error) of a float32 output against the float64 oracle."""
    if y.shape != y_ref.shape:
        raise ValueError(f"output shape {y.shape}, expected {y_ref.shape}")
    err = float(np.max(np.abs(y.astype(np.float64) - y_ref), initial=0.0))
    return bool(np.allclose(y, y_ref, rtol=RTOL, atol=ATOL)), err


def measure(impl, weights, config, x, y_ref, repeats):
    """One row of the report: check the implementation, then time it."""
    row = {"impl": impl.name, "role": impl.role, "T": config.T, "B": config.B,
           "I": config.I, "H": config.H, "threads": config.threads}
    try:
        run = impl.build(weights, config)
        ok, row["max_abs_error"] = check(np.asarray(run(x)), y_ref)
        if not ok:
            return {**row, "status": "wrong"}
        times = time_calls(run, x, repeats)
    except Exception as exc:  # one broken peer must not stop the whole run
        return {**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    return {**row, "status": "ok", **statistics_of(times, config)}


def statistics_of(times, config):
    median = statistics.median(times)
    # Quartiles rather than every time: tiny configurations run thousands of calls.
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    us_per_step = median / config.T * 1e6
    return {"repeats": len(times), "median_ms": median * 1e3, "min_ms": min(times) * 1e3,
            "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3, "max_ms": max(times) * 1e3,
            "us_per_step": us_per_step, "gflops": config.flops / median / 1e9,
            # At B=1 a step cannot beat reading W_y once; 1.0 would be that bound.
            "wy_read_bound_ratio": us_per_step / config.wy_read_us if config.B == 1 else None}


def blas_libraries():
    """The BLAS libraries loaded in this process and the kernels they chose, if
    threadpoolctl is installed (OpenBLAS reports e.g. architecture "Haswell")."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    keys = ("internal_api", "version", "architecture", "num_threads", "filepath")
    return [{k: lib.get(k) for k in keys} for lib in threadpoolctl.threadpool_info()
            if lib.get("user_api") == "blas"]


def measure_impl(impl, shapes, threads, repeats=None, count=(0, None), say=progress):
    """Every configuration for one implementation at one thread count, in this process.

    count is (measurements before this call, total) for the progress lines.
    """
    elman.set_num_threads(threads)
    why = impls_module.import_error(impl)
    if why:
        say(f"{impl.name}: not installed ({why})")
        return {"rows": [], "not_installed": why, "versions": {}}
    done, total = count
    started = time.perf_counter()
    rows = []
    for shape in shapes:
        weights, x = make_inputs(shape)
        config = Config(*shape, threads)
        y_ref = reference.rnn(x, weights.w_x, weights.w_y, weights.b)[0]
        rows.append(measure(impl, weights, config, x, y_ref, repeats))
        done += 1
        say(f"[{done}/{total or len(shapes)}] {config.label()} {impl.name}: "
            f"{describe(rows[-1])} ({time.perf_counter() - started:.1f} s)")
    return {"rows": rows, "not_installed": None, "versions": impls_module.versions([impl]),
            "elman_threads": elman.get_num_threads()}


def describe(row):
    if row["status"] == "ok":
        return f"{row['median_ms']:.3f} ms median of {row['repeats']}"
    if row["status"] == "wrong":
        return f"WRONG (max abs error {row['max_abs_error']:.2g}), not timed"
    return f"FAILED ({row['reason']})"
