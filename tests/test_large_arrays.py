"""Outputs past 2**31 elements (and 2**33 bytes): every offset in the CPU kernels must be
64-bit, or the late steps would be written over the early ones (or outside y).

The layers are made so that y just passes 2**31 elements (I = 1 keeps x small), on every
CPU path (AVX-512, AVX2, OpenBLAS: ELMAN_CPU_PACKED, read once per process, so the
others run in child processes). Rows do not depend on each other, so a few rows of the
large result, the first, the last and one between, are compared with the float64 oracle
run on those rows alone, under the tolerance rule of tests/helpers.py.

They need about 9 GB of memory and a minute per path, so they run only where
ELMAN_LARGE_ARRAYS=1 (CI sets it, in a step of its own).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import elman
from helpers import assert_close, assert_padding_zero, ref, rng_for, uniform

pytestmark = pytest.mark.skipif(os.environ.get("ELMAN_LARGE_ARRAYS") != "1",
                                reason="needs about 9 GB of memory and a minute per CPU path: "
                                       "set ELMAN_LARGE_ARRAYS=1 (CI does)")


def check_rows(layer, x, lengths, result, rows):
    """The rows of a large call's (y, h_n) against the oracle run on each row alone."""
    y, h_n = result
    axis = 0 if layer.batch_first else 1
    for r in rows:
        x_r = np.take(x, [r], axis=axis)
        lengths_r = None if lengths is None else lengths[r:r + 1]
        expected = ref.forward(layer, x_r, None, lengths_r)
        naive32 = ref.forward(layer, x_r, None, lengths_r, dtype=np.float32)
        assert_close(np.take(y, [r], axis=axis), expected[0], naive32[0], dtype=np.float32, what=f"y row {r}")
        assert_close(h_n[:, r:r + 1], expected[1], naive32[1], dtype=np.float32, what=f"h_n row {r}")


def test_time_major_bidirectional_with_lengths():
    """(T, B, 2H) = 2.23e9 elements: both directions' columns, reverse steps from each
    row's own last step, and zeros past it."""
    T, B, H = 17000, 256, 256
    layer = elman.RNN(1, H, bidirectional=True, seed=41)
    rng = rng_for("large", "bidirectional")
    x = uniform(rng, (T, B, 1))
    lengths = rng.integers(T - 50, T + 1, B)
    lengths[-1] = T
    result = layer(x, lengths=lengths)
    assert result[0].shape == (T, B, 2 * H) and result[0].size > 2**31
    check_rows(layer, x, lengths, result, (0, B // 2, B - 1))
    assert_padding_zero(result[0][:, ::51], lengths[::51])


def test_batch_first():
    """(B, T, H) = 2.16e9 elements: a row's steps far apart in memory."""
    T, B, H = 33000, 512, 128
    layer = elman.RNN(1, H, batch_first=True, seed=42)
    x = uniform(rng_for("large", "batch_first"), (B, T, 1))
    result = layer(x)
    assert result[0].size > 2**31
    check_rows(layer, x, None, result, (0, B // 2 + 1, B - 1))


@pytest.mark.parametrize("setting, path", [("0", None), ("avx2", "avx2")])
def test_paths_of_cpus_without_avx512(setting, path):
    """This module's tests again on the other CPU paths, in child processes that first
    check they are on the path (as tests/test_layer_vs_oracle.py does)."""
    if elman._core.packed_products() is None and path is not None:
        pytest.skip("this CPU has no AVX2 and FMA")
    env = dict(os.environ, ELMAN_CPU_PACKED=setting)
    code = f"import elman._core as c; assert c.packed_products() == {path!r}, c.packed_products()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                           "-k", "not paths_of_cpus"], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout, done.stdout[-3000:]
