"""elman.rnn (one layer, one direction) against the oracle over the shape grid and options."""

import itertools

import numpy as np
import pytest

import elman
from helpers import assert_close, check_rnn, random_lengths, ref, rng_for, uniform

# (T, B, I, H): every grid value of each axis, plus sizes just below/above 16/32/64/256
SHAPES = [
    (1, 1, 1, 1), (2, 3, 3, 3), (7, 8, 16, 16), (7, 17, 31, 31), (2, 64, 64, 64),
    (100, 3, 100, 100), (7, 8, 256, 256), (7, 3, 257, 257), (100, 1, 1024, 1024),
    (1, 64, 1024, 1), (7, 1, 1, 1024), (300, 4, 64, 256), (120, 1, 256, 256),
    (7, 5, 15, 17), (7, 5, 33, 63), (7, 2, 65, 255), (3, 9, 1024, 3), (101, 64, 31, 16),
    (2, 17, 100, 257),
]


def make_args(key, T, B, I, H, dtype, bias=True, h0=False, relu=False, batch_first=False):
    rng = rng_for(*key)
    # W_x, W_y ~ U(-1/sqrt(n), 1/sqrt(n)): pre-activations O(1), ReLU stays bounded
    x = uniform(rng, (B, T, I) if batch_first else (T, B, I), 1.0, dtype)
    W_x = uniform(rng, (I, H), 1 / np.sqrt(I), dtype)
    W_y = uniform(rng, (H, H), (0.9 if relu else 1.0) / np.sqrt(H), dtype)
    b = uniform(rng, (H,), 0.5, dtype) if bias else None
    h = uniform(rng, (B, H), 1.0, dtype) if h0 else None
    return x, W_x, W_y, b, h, rng


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
def test_shape_grid(shape, activation, dtype):
    T, B, I, H = shape
    # vary the options along the grid too (deterministically), without a full product
    i = SHAPES.index(shape)
    bias, h0, reverse = i % 2 == 0, i % 3 == 1, i % 4 == 2
    x, W_x, W_y, b, h, rng = make_args((shape, activation, dtype), T, B, I, H, dtype,
                                       bias=bias, h0=h0, relu=activation == "relu")
    lengths = random_lengths(rng, T, B) if i % 5 == 3 else None
    check_rnn(elman.rnn, x, W_x, W_y, b, h, activation=activation, lengths=lengths, reverse=reverse)


OPTIONS = list(itertools.product([False, True], repeat=5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("bias,h0,lengths,reverse,batch_first", OPTIONS)
def test_every_option(bias, h0, lengths, reverse, batch_first, activation, dtype):
    T, B, I, H = 9, 5, 17, 33
    key = (bias, h0, lengths, reverse, batch_first, activation, dtype)
    x, W_x, W_y, b, h, rng = make_args(key, T, B, I, H, dtype, bias, h0, activation == "relu", batch_first)
    ln = random_lengths(rng, T, B) if lengths else None
    check_rnn(elman.rnn, x, W_x, W_y, b, h, activation=activation, lengths=ln,
              reverse=reverse, batch_first=batch_first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("h0", [False, True])
def test_unbatched(h0, reverse, dtype):
    T, I, H = 11, 7, 19
    x, W_x, W_y, b, h, _ = make_args(("unbatched", h0, reverse, dtype), T, 1, I, H, dtype, h0=h0)
    x, h = x[:, 0], None if h is None else h[0]
    y, h_T = check_rnn(elman.rnn, x, W_x, W_y, b, h, reverse=reverse)
    assert y.shape == (T, H) and h_T.shape == (H,)
    # batch_first means nothing for unbatched input: still (T, I)
    check_rnn(elman.rnn, x, W_x, W_y, b, h, reverse=reverse, batch_first=True)


@pytest.mark.parametrize("combo", list(itertools.product([np.float32, np.float64], repeat=5))[::3])
def test_result_dtype_promotion(combo):
    """float64 if any of x, W_x, W_y, b, h0 is float64, else float32 (checked in check_rnn)."""
    T, B, I, H = 4, 3, 5, 6
    x, W_x, W_y, b, h, _ = make_args(("promo",), T, B, I, H, np.float64, h0=True)
    args = [a.astype(d) for a, d in zip((x, W_x, W_y, b, h), combo)]
    check_rnn(elman.rnn, *args)


@pytest.mark.parametrize("xdtype", [np.int8, np.int32, np.int64, np.uint8, np.float16, bool])
def test_other_real_dtypes_converted(xdtype):
    T, B, I, H = 5, 3, 4, 8
    rng = rng_for("conv", xdtype)
    x = rng.integers(-3, 4, size=(T, B, I))
    if xdtype in (np.uint8, bool):
        x = np.abs(x)
    x = x.astype(xdtype)
    _, W_x, W_y, b, _, _ = make_args(("conv",), T, B, I, H, np.float32)
    y, _ = elman.rnn(x, W_x, W_y, b)
    assert y.dtype == np.float32              # ints/float16 are not float64
    check_rnn(elman.rnn, x, W_x, W_y, b)


def test_bfloat16_arrays_converted():
    # ml_dtypes' bfloat16 (JAX's) has dtype kind "V", and was refused as "not real numbers"
    import ml_dtypes  # in the test extras: not skipped
    T, B, I, H = 5, 3, 4, 8
    x, W_x, W_y, b, _, _ = make_args(("bfloat16",), T, B, I, H, np.float32)
    x16, W_x16 = x.astype(ml_dtypes.bfloat16), W_x.astype(ml_dtypes.bfloat16)
    y, h_T = elman.rnn(x16, W_x16, W_y, b)
    assert y.dtype == np.float32
    expected = elman.rnn(x16.astype(np.float32), W_x16.astype(np.float32), W_y, b)
    assert np.array_equal(y, expected[0]) and np.array_equal(h_T, expected[1])


def test_array_likes():
    T, B, I, H = 3, 2, 3, 4
    x, W_x, W_y, b, h, _ = make_args(("lists",), T, B, I, H, np.float64, h0=True)
    y, h_T = elman.rnn(x.tolist(), W_x.tolist(), W_y.tolist(), b.tolist(), h.tolist())
    # Python floats become float64 arrays, so the rule makes the call float64
    assert y.dtype == h_T.dtype == np.float64
    ey, eh = ref.rnn(x, W_x, W_y, b, h)
    assert_close(y, ey, dtype=np.float64, what="y")
    assert_close(h_T, eh, dtype=np.float64, what="h_T")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_and_fortran(dtype):
    T, B, I, H = 8, 6, 10, 12
    x, W_x, W_y, b, h, rng = make_args(("layout", dtype), 2 * T, 2 * B, 2 * I, 2 * H, dtype, h0=True)
    xs = x[::2, ::2, ::2]                              # strided in every axis
    W_xs, W_ys, bs, hs = W_x[::2, ::2], W_y[::2, ::2], b[::2], h[::2, ::2]
    check_rnn(elman.rnn, xs, W_xs, W_ys, bs, hs)
    check_rnn(elman.rnn, np.asfortranarray(xs), np.asfortranarray(W_xs), np.asfortranarray(W_ys),
              bs, np.asfortranarray(hs), reverse=True)
    check_rnn(elman.rnn, xs.transpose(1, 0, 2), W_xs, W_ys.T, bs, hs, batch_first=True)
    check_rnn(elman.rnn, x[::-2, ::-2, ::-2], W_x[::-2, ::-2], W_y[::-2, ::-2], b[::-2], h[::-2, ::-2])


def test_inputs_not_modified():
    T, B, I, H = 5, 3, 4, 6
    args = make_args(("nomod",), T, B, I, H, np.float32, h0=True)[:5]
    copies = [a.copy() for a in args]
    lengths = np.array([5, 2, 1])
    lcopy = lengths.copy()
    elman.rnn(*args, lengths=lengths, reverse=True)
    for a, c in zip(args, copies):
        assert np.array_equal(a, c)
    assert np.array_equal(lengths, lcopy)


@pytest.mark.parametrize("ldtype", [np.int32, np.int64, np.uint16, "list"])
def test_lengths_integer_types(ldtype):
    T, B, I, H = 6, 4, 3, 5
    x, W_x, W_y, b, h, _ = make_args(("ltypes",), T, B, I, H, np.float64)
    lengths = [6, 3, 1, 4]
    ln = lengths if ldtype == "list" else np.array(lengths, dtype=ldtype)
    check_rnn(elman.rnn, x, W_x, W_y, b, lengths=ln)
    check_rnn(elman.rnn, x, W_x, W_y, b, lengths=ln, reverse=True)
