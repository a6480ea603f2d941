"""Shared test helpers: the oracle, random data, and the one tolerance rule.

The oracle is loaded straight from python/elman/reference.py by path, so that
it never goes through elman/__init__.py (which imports the compiled engine):
tests of the oracle itself run without the engine.

Tolerance rule (DESIGN.md section 4), used by every comparison in the suite:

* float64: |actual - oracle| <= 1e-12 * (1 + |oracle|) elementwise. Both compute
  in float64; the only differences are summation order and the libm/vector tanh,
  a few ulp per step, which the contracting recurrence does not amplify.
* float32: max|actual - oracle| <= 4 * max|naive32 - oracle| + 1e-6 * max(1, max|oracle|),
  where naive32 is the same loop computed in float32 with plain NumPy (np.tanh,
  BLAS matmul). Reason: float32 rounding error depends on the shape, the length of
  the recurrence and the data; a fixed tolerance is either too loose for small
  problems or too tight for large ones. A plain float32 loop measures the error any
  correct float32 implementation must have on *this* problem; a correct kernel
  (different summation order, FMA, a vectorised tanh within a few ulp) stays within
  a small multiple of it. The floor (1e-6, scaled by the output's magnitude when
  that exceeds 1, i.e. a few float32 ulp) covers problems where the naive float32
  loop happens to be exact (e.g. I = H = 1) while a vectorised tanh differs by an ulp.

NaN and Inf must sit at exactly the same places as in the oracle.
"""

import contextlib
import importlib.util
import os
import pathlib
import threading
import zlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_PATH = ROOT / "python" / "elman" / "reference.py"

_spec = importlib.util.spec_from_file_location("elman_reference_oracle", REFERENCE_PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

# set_num_threads' documented limit: 1024, or the CPUs this process may run on where more.
MOST_THREADS = max(1024, len(os.sched_getaffinity(0)))

F32_MULTIPLE = 4.0
F32_FLOOR = 1e-6
F64_TOL = 1e-12


def rng_for(*key):
    """A deterministic generator per test case (seed derived from the case's parameters)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def uniform(rng, shape, scale=1.0, dtype=np.float32):
    return (rng.uniform(-scale, scale, size=shape)).astype(dtype)


def _check_special(actual, expected, what):
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), (
        f"{what}: NaN positions differ: {np.argwhere(nan_a != nan_e)[:5].tolist()}")
    inf_e = np.isinf(expected)
    assert np.array_equal(np.isinf(actual), inf_e), f"{what}: Inf positions differ"
    assert np.array_equal(actual[inf_e], expected[inf_e]), f"{what}: Inf signs differ"
    return np.isfinite(expected)


def assert_close(actual, expected, naive32=None, *, dtype, what="y"):
    """The tolerance rule of the module docstring. `expected` is the float64 oracle;
    `naive32` the same computation in float32 (needed when dtype is float32)."""
    dtype = np.dtype(dtype)
    assert isinstance(actual, np.ndarray), f"{what}: expected an ndarray, got {type(actual)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    expected = np.asarray(expected, np.float64)
    a = actual.astype(np.float64)
    finite = _check_special(a, expected, what)
    a, e = a[finite], expected[finite]
    if a.size == 0:
        return
    if dtype == np.float64:
        err = np.abs(a - e)
        bound = F64_TOL * (1.0 + np.abs(e))
        bad = err > bound
        assert not bad.any(), (
            f"{what}: float64 error {err.max():.3e} exceeds 1e-12 abs+rel "
            f"at {np.argwhere(bad)[:3].tolist()}")
    elif dtype == np.float32:
        assert naive32 is not None
        n = np.asarray(naive32, np.float64)[finite]
        err = np.abs(a - e).max()
        base = np.abs(n - e).max()
        bound = F32_MULTIPLE * base + F32_FLOOR * max(1.0, np.abs(e).max())
        assert err <= bound, (
            f"{what}: float32 error {err:.3e} > {F32_MULTIPLE:g} x naive float32 error "
            f"{base:.3e} + floor (bound {bound:.3e})")
    else:
        raise AssertionError(f"unexpected dtype {dtype}")


def check_layer(layer, x, h0=None, lengths=None, result=None):
    """Run `layer(x, h0, lengths)` (unless `result` is given) and compare y and h_n
    with the oracle. Returns the oracle's (y, h_n)."""
    if result is None:
        kwargs = {}
        if h0 is not None:
            kwargs["h0"] = h0
        if lengths is not None:
            kwargs["lengths"] = lengths
        result = layer(x, **kwargs)
    y, h_n = result
    ey, eh = ref.forward(layer, x, h0, lengths)
    ny = nh = None
    if layer.dtype == np.float32:
        ny, nh = ref.forward(layer, np.asarray(x, np.float32),
                             None if h0 is None else np.asarray(h0, np.float32),
                             lengths, dtype=np.float32)
    assert_close(y, ey, ny, dtype=layer.dtype, what="y")
    assert_close(h_n, eh, nh, dtype=layer.dtype, what="h_n")
    if lengths is not None:
        assert_padding_zero(y, lengths, layer.batch_first)
    return ey, eh


def assert_padding_zero(y, lengths, batch_first=False):
    """Outputs at steps >= lengths[b] must be exactly 0 (not merely small)."""
    y = np.asarray(y)
    if batch_first:
        y = y.transpose(1, 0, 2)
    for b, n in enumerate(np.asarray(lengths)):
        tail = y[int(n):, b]
        assert np.all(tail == 0), f"y past lengths[{b}]={n} is not exactly 0"


def check_rnn(elman_rnn, x, W_x, W_y, b=None, h0=None, **kw):
    """Call elman.rnn and compare with the oracle; result dtype by the promotion rule."""
    y, h = elman_rnn(x, W_x, W_y, b, h0, **kw)
    args = [a for a in (x, W_x, W_y, b, h0) if a is not None]
    dtype = np.float64 if any(np.asarray(a).dtype == np.float64 for a in args) else np.float32
    ey, eh = ref.rnn(x, W_x, W_y, b, h0, **kw)
    ny = nh = None
    if dtype == np.float32:
        ny, nh = ref.rnn(x, W_x, W_y, b, h0, dtype=np.float32, **kw)
    assert_close(y, ey, ny, dtype=dtype, what="y")
    assert_close(h, eh, nh, dtype=dtype, what="h_T")
    if kw.get("lengths") is not None:
        assert_padding_zero(y, kw["lengths"], kw.get("batch_first", False))
    return ey, eh


def random_lengths(rng, T, B):
    """Lengths in [1, T] that include both extremes when B allows it."""
    lengths = rng.integers(1, T + 1, size=B)
    if B >= 2:
        lengths[0], lengths[-1] = T, 1
    return lengths


@contextlib.contextmanager
def chunk_running(stream, chunk, timeout=60):
    """Runs stream(chunk) in another thread, held inside the call (where it reads the
    chunk) for the with-block, so that the stream is busy with it throughout. Yields a
    list that holds the chunk's output once the block has ended."""
    inside, go_on, output = threading.Event(), threading.Event(), []

    class HeldChunk:
        def __array__(self, dtype=None, copy=None):
            inside.set()
            go_on.wait(timeout)
            return chunk

    thread = threading.Thread(target=lambda: output.append(stream(HeldChunk())))
    thread.start()
    assert inside.wait(timeout), "the stream never read the chunk"
    try:
        yield output
    finally:
        go_on.set()
        thread.join(timeout)
    assert not thread.is_alive()
