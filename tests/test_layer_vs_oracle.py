"""elman.RNN (multi-layer, bidirectional, every option) against the oracle."""

import itertools
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import elman
import elman._core
from helpers import check_layer, random_lengths, rng_for, uniform

# (T, B, I, H, num_layers, bidirectional): every grid value of each axis, sizes just
# below/above 16/32/64/256, long sequences, and DESIGN.md's odd benchmark shapes. The last
# four: one row with H in one or two 32-column panels, where the packed kernels run all
# steps in one call (without lengths; and H = 65, just past it).
CASES = [
    (1, 1, 1, 1, 1, False), (2, 3, 3, 3, 2, False), (7, 8, 16, 16, 3, False),
    (7, 17, 31, 31, 1, True), (2, 64, 64, 64, 2, True), (100, 3, 100, 100, 1, False),
    (7, 8, 256, 256, 2, False), (7, 3, 257, 257, 1, True), (100, 1, 1024, 1024, 1, False),
    (300, 2, 80, 256, 2, False), (120, 1, 256, 256, 1, True), (7, 5, 15, 17, 3, True),
    (7, 5, 33, 63, 2, False), (7, 2, 65, 255, 1, False), (3, 9, 1024, 3, 2, True),
    (101, 64, 31, 16, 1, False), (2, 17, 100, 257, 3, False), (64, 7, 37, 129, 2, True),
    (1, 64, 1, 1024, 1, True), (150, 4, 256, 256, 1, False),
    (20, 1, 5, 32, 1, True), (50, 1, 7, 33, 2, True), (30, 1, 3, 65, 2, False), (9, 1, 64, 64, 1, False),
]


def make_input(rng, T, B, I, H, dtype, batch_first=False):
    # keep pre-activations O(1) when I >> H (the layer's init scales W_x by 1/sqrt(H))
    scale = min(1.0, np.sqrt(H / I))
    return uniform(rng, (B, T, I) if batch_first else (T, B, I), scale, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_shape_grid(case, nonlinearity, dtype):
    T, B, I, H, L, bidir = case
    i = CASES.index(case)
    bias, give_h0, give_lengths = i % 3 != 1, i % 2 == 1, i % 4 == 2
    layer = elman.RNN(I, H, num_layers=L, nonlinearity=nonlinearity, bias=bias,
                      bidirectional=bidir, dtype=dtype, seed=i)
    rng = rng_for(case, nonlinearity, dtype)
    x = make_input(rng, T, B, I, H, dtype)
    D = 2 if bidir else 1
    h0 = uniform(rng, (D * L, B, H), 1.0, dtype) if give_h0 else None
    lengths = random_lengths(rng, T, B) if give_lengths else None
    y, h_n = layer(x, h0, lengths=lengths) if h0 is not None or lengths is not None else layer(x)
    assert y.shape == (T, B, D * H) and h_n.shape == (D * L, B, H)
    check_layer(layer, x, h0, lengths, result=(y, h_n))


OPTIONS = list(itertools.product([1, 2, 3], [False, True], [False, True], [False, True],
                                 [False, True], [False, True]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,h0,lengths", OPTIONS)
def test_every_option(num_layers, bidirectional, batch_first, bias, h0, lengths, nonlinearity, dtype):
    T, B, I, H = 6, 5, 7, 9
    key = (num_layers, bidirectional, batch_first, bias, h0, lengths, nonlinearity, dtype)
    layer = elman.RNN(I, H, num_layers, nonlinearity, bias, batch_first, bidirectional,
                      dtype=dtype, seed=3)
    rng = rng_for(*key)
    D = 2 if bidirectional else 1
    x = make_input(rng, T, B, I, H, dtype, batch_first)
    h = uniform(rng, (D * num_layers, B, H), 1.0, dtype) if h0 else None
    ln = random_lengths(rng, T, B) if lengths else None
    y, h_n = check_layer(layer, x, h, ln)
    assert y.shape == ((B, T, D * H) if batch_first else (T, B, D * H))
    assert h_n.shape == (D * num_layers, B, H)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_layers,bidirectional,h0,batch_first",
                         list(itertools.product([1, 2], [False, True], [False, True], [False, True])))
def test_unbatched(num_layers, bidirectional, h0, batch_first, dtype):
    T, I, H = 8, 5, 6
    layer = elman.RNN(I, H, num_layers, bidirectional=bidirectional, batch_first=batch_first,
                      dtype=dtype, seed=4)
    rng = rng_for("unbatched", num_layers, bidirectional, h0, dtype)
    D = 2 if bidirectional else 1
    x = uniform(rng, (T, I), 1.0, dtype)            # (T, I) whatever batch_first says
    h = uniform(rng, (D * num_layers, H), 1.0, dtype) if h0 else None
    y, h_n = layer(x, h) if h0 else layer(x)
    assert y.shape == (T, D * H) and h_n.shape == (D * num_layers, H)
    check_layer(layer, x, h, result=(y, h_n))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bidirectional_multilayer_ordering(dtype):
    """h_n is layer-major, direction-minor; y is [forward, backward]. Checked against the
    oracle (check_layer) and, independently, against the structure of y itself."""
    T, B, I, H, L = 5, 3, 4, 6, 3
    layer = elman.RNN(I, H, L, bidirectional=True, dtype=dtype, seed=5)
    rng = rng_for("order", dtype)
    x = uniform(rng, (T, B, I), 1.0, dtype)
    h0 = uniform(rng, (2 * L, B, H), 1.0, dtype)
    ey, eh = check_layer(layer, x, h0)
    y, h_n = layer(x, h0)
    # last layer: forward final state = y[T-1, :, :H]; backward final state = y[0, :, H:]
    assert np.array_equal(h_n[2 * L - 2], y[T - 1, :, :H])
    assert np.array_equal(h_n[2 * L - 1], y[0, :, H:])
    # a permuted h0 must give the oracle's answer for that permutation (ordering matters)
    check_layer(layer, x, h0[::-1].copy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_call_does_not_modify_inputs_and_is_repeatable(dtype):
    T, B, I, H = 5, 3, 4, 6
    layer = elman.RNN(I, H, 2, bidirectional=True, dtype=dtype, seed=6)
    rng = rng_for("nomod", dtype)
    x = uniform(rng, (T, B, I), 1.0, dtype)
    h0 = uniform(rng, (4, B, H), 1.0, dtype)
    xc, hc = x.copy(), h0.copy()
    y1, h1 = layer(x, h0)
    y2, h2 = layer(x, h0)
    assert np.array_equal(x, xc) and np.array_equal(h0, hc)
    assert np.array_equal(y1, y2) and np.array_equal(h1, h2)   # deterministic
    assert not np.shares_memory(y1, y2)                        # new arrays each call
    check_layer(layer, x, h0, result=(y1, h1))


@pytest.mark.parametrize("xdtype", [np.int16, np.int64, np.float16, np.float64])
def test_input_dtype_converted_to_layer_dtype(xdtype):
    T, B, I, H = 4, 3, 5, 7
    layer = elman.RNN(I, H, dtype=np.float32, seed=7)
    x = rng_for("xd", xdtype).integers(-2, 3, size=(T, B, I)).astype(xdtype)
    y, h_n = layer(x)
    assert y.dtype == np.float32 and h_n.dtype == np.float32
    check_layer(layer, x.astype(np.float32), result=(y, h_n))
    layer64 = elman.RNN(I, H, dtype=np.float64, seed=7)
    check_layer(layer64, x.astype(np.float64), result=layer64(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_and_fortran(dtype):
    T, B, I, H = 6, 4, 5, 7
    layer = elman.RNN(I, H, 2, bidirectional=True, dtype=dtype, seed=8)
    rng = rng_for("layout", dtype)
    big = uniform(rng, (2 * T, 2 * B, 2 * I), 1.0, dtype)
    x = big[::2, ::2, ::2]
    h0 = uniform(rng, (4, 2 * B, H), 1.0, dtype)[:, ::2]
    check_layer(layer, x, h0)
    check_layer(layer, np.asfortranarray(x), np.asfortranarray(h0))
    check_layer(layer, big[::-2, 1::2, ::-2], h0)
    lb = elman.RNN(I, H, batch_first=True, dtype=dtype, seed=8)
    check_layer(lb, x.transpose(1, 0, 2))                      # a transposed view


def test_array_like_input():
    layer = elman.RNN(3, 4, dtype=np.float64, seed=9)
    x = [[[0.5, -1.0, 0.25]], [[1.0, 0.0, -0.5]]]
    check_layer(layer, np.array(x), result=layer(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_stride_and_read_only_inputs(dtype):
    T, B, I, H = 5, 4, 6, 8
    layer = elman.RNN(I, H, 2, bidirectional=True, dtype=dtype, seed=10)
    rng = rng_for("bcast", dtype)
    row = uniform(rng, (I,), 1.0, dtype)
    x = np.broadcast_to(row, (T, B, I))                        # all strides but one are 0, read-only
    h0 = np.broadcast_to(uniform(rng, (1, B, H), 1.0, dtype), (4, B, H))
    check_layer(layer, x, h0)
    x2 = uniform(rng, (T, B, I), 1.0, dtype)
    x2.flags.writeable = False
    check_layer(layer, x2, lengths=np.array([5, 1, 3, 2]))


def test_h0_other_dtype_converted():
    T, B, I, H = 4, 2, 3, 5
    layer = elman.RNN(I, H, 2, dtype=np.float32, seed=11)
    rng = rng_for("h0dtype")
    x = uniform(rng, (T, B, I), 1.0, np.float32)
    h0 = uniform(rng, (2, B, H), 1.0, np.float64)
    y, h_n = layer(x, h0)
    assert y.dtype == np.float32 and h_n.dtype == np.float32
    check_layer(layer, x, h0.astype(np.float32), result=(y, h_n))
    check_layer(layer, x, np.zeros((2, B, H), np.int64), result=layer(x, np.zeros((2, B, H), np.int64)))


def test_dtype_given_as_np_dtype():
    assert elman.RNN(3, 4, dtype=np.dtype("float64")).dtype == np.float64
    assert elman.RNN(3, 4, dtype=np.dtype(np.float32)).dtype == np.float32


# (m, k, n) for the products alone: m around the tiles' rows (1-8, and past the 192-row
# block), n around vectors, half panels, panels and the tiles' widths (8 to 256 columns),
# k small and with each remainder after the one-row kernels' 2, 3 or 4 partial sums.
# (Accumulation and column ranges split between threads: the layer tests.)
PRODUCTS = list(itertools.product((1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 193), (1, 2, 3, 37, 38, 39),
                                  (1, 7, 9, 15, 16, 17, 31, 33, 48, 64, 65, 97, 129, 160, 255, 257)))
# Around the blocks of k (1 KB of a row: 128 doubles, 256 floats) and of 256 columns that
# more rows than one tile run in, and k = 0 (a product of zeros).
PRODUCTS += list(itertools.product((1, 9, 193), (0, 127, 128, 129, 255, 256, 257, 600), (33, 257, 520)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products(dtype):
    """elman's products (the kernels of this process's path, on its threads) against
    float64 (float32) or a float64 product of exact float64 products (float64: NumPy's).
    Bound: a sum of k products, each rounded, errs by at most k * eps * sum|a_i b_i|
    (first order), for the kernel and, in float64, for NumPy's product too."""
    rng = rng_for("products", dtype)
    eps = np.finfo(dtype).eps
    for m, k, n in PRODUCTS:
        a, b = uniform(rng, (m, k), 1.0, dtype), uniform(rng, (k, n), 1.0, dtype)
        got = elman._core.matmul(a, b)
        assert got.dtype == dtype
        bound = (1 if dtype == np.float32 else 2) * k * eps * (np.abs(a).astype(np.float64) @ np.abs(b))
        error = np.abs(got - a.astype(np.float64) @ b)
        assert np.all(error <= bound), (m, k, n, float(np.max(error - bound)))


@pytest.mark.parametrize("setting, path", [("0", None), ("avx2", "avx2")])
def test_paths_of_cpus_without_avx512(setting, path):
    """Products run in elman's packed kernels for AVX-512 where the CPU has it, else in
    those for AVX2 (with FMA), else through OpenBLAS: paths this suite would otherwise
    not take on an AVX-512 machine. ELMAN_CPU_PACKED (read once per process) takes them:
    this module's tests again, in a child process, after checking that the child is on
    the path."""
    if elman._core.packed_products() is None and path is not None:
        pytest.skip("this CPU has no AVX2 and FMA")
    code = f"import elman._core as c; assert c.packed_products() == {path!r}, c.packed_products()"
    env = dict(os.environ, ELMAN_CPU_PACKED=setting)
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                           "-k", "not paths_of_cpus and not packed_setting"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="no packed kernels off x86-64")
def test_unknown_packed_setting_is_refused():
    code = "import elman, numpy as np; elman.RNN(3, 4)(np.ones((2, 1, 3), np.float32))"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ELMAN_CPU_PACKED="avx"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "ValueError: ELMAN_CPU_PACKED: expected 0" in done.stderr and "not 'avx'" in done.stderr
