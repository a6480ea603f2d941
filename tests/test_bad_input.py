"""Bad input: the exception type, and a message that names the argument."""

import numpy as np
import pytest

import elman

T, B, I, H = 5, 3, 4, 6


def name(arg):
    """A regex matching the argument's name as a word (so 'x' does not match 'expected')."""
    return rf"(?<![A-Za-z0-9_]){arg}(?![A-Za-z0-9_])"


@pytest.fixture
def layer():
    return elman.RNN(I, H, num_layers=2, seed=0)


@pytest.fixture
def x():
    return np.zeros((T, B, I), np.float32)


# ---------------------------------------------------------------- constructor
@pytest.mark.parametrize("kwargs,arg", [
    (dict(input_size=0, hidden_size=4), "input_size"),
    (dict(input_size=-3, hidden_size=4), "input_size"),
    (dict(input_size=3, hidden_size=0), "hidden_size"),
    (dict(input_size=3, hidden_size=-1), "hidden_size"),
    (dict(input_size=3, hidden_size=4, num_layers=0), "num_layers"),
    (dict(input_size=3, hidden_size=4, num_layers=-2), "num_layers"),
    (dict(input_size=3, hidden_size=4, nonlinearity="swish"), "nonlinearity"),
    (dict(input_size=3, hidden_size=4, nonlinearity="Tanh "), "nonlinearity"),
])
def test_constructor_values(kwargs, arg):
    with pytest.raises(ValueError, match=name(arg)):
        elman.RNN(**kwargs)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64, np.complex128, object, "U4"])
def test_constructor_dtype(dtype):
    with pytest.raises(TypeError, match=name("dtype")):
        elman.RNN(3, 4, dtype=dtype)


@pytest.mark.parametrize("kwargs", [dict(input_size=10**6, hidden_size=10**6),
                                    dict(input_size=4, hidden_size=10**6, num_layers=3)])
def test_absurd_sizes_memory_error(kwargs):
    with pytest.raises(MemoryError):
        elman.RNN(**kwargs)


def test_size_beyond_index_range():
    # a size past the kernels' index type may be refused as a value, or fail to allocate
    with pytest.raises((MemoryError, ValueError), match="(?i)" + name("input_size") + "|memory|alloc"):
        elman.RNN(input_size=10**12, hidden_size=8)


# ---------------------------------------------------------------- layer call
@pytest.mark.parametrize("shape", [(I,), (1, T, B, I), ()])
def test_x_ndim(layer, shape):
    with pytest.raises(ValueError, match=name("x")):
        layer(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(T, B, I + 1), (T, B, 1), (T, I - 1)])
def test_x_feature_size(layer, shape):
    with pytest.raises(ValueError, match=name("x")):
        layer(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(0, B, I), (T, 0, I), (0, I)])
def test_x_empty(layer, shape):
    with pytest.raises(ValueError, match=name("x")):
        layer(np.zeros(shape, np.float32))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, "U3", "S3"])
def test_x_bad_dtype(layer, dtype):
    with pytest.raises(TypeError, match=name("x")):
        layer(np.zeros((T, B, I), dtype=dtype))


@pytest.mark.parametrize("shape", [(2, B), (2, B, H, 1), (2, B, H + 1), (2, B + 1, H), (3, B, H), (1, B, H), (2, H)])
def test_h0_shape(layer, x, shape):
    with pytest.raises(ValueError, match=name("h0")):
        layer(x, np.zeros(shape, np.float32))


def test_h0_shape_bidirectional(x):
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match=name("h0")):
        layer(x, np.zeros((2, B, H), np.float32))        # needs D*L = 4
    with pytest.raises(ValueError, match=name("h0")):
        layer(x[:, 0], np.zeros((4, B, H), np.float32))  # unbatched wants (4, H)


def test_h0_unbatched_shape(layer, x):
    with pytest.raises(ValueError, match=name("h0")):
        layer(x[:, 0], np.zeros((2, 1, H), np.float32))
    with pytest.raises(ValueError, match=name("h0")):
        layer(x[:, 0], np.zeros((2, H + 1), np.float32))


def test_h0_bad_dtype(layer, x):
    with pytest.raises(TypeError, match=name("h0")):
        layer(x, np.zeros((2, B, H), np.complex64))


@pytest.mark.parametrize("lengths", [np.ones((B, 1), np.int64), np.ones((B + 1,), np.int64),
                                     np.ones((B - 1,), np.int64), np.int64(3)])
def test_lengths_shape(layer, x, lengths):
    with pytest.raises(ValueError, match=name("lengths")):
        layer(x, lengths=lengths)


@pytest.mark.parametrize("bad", [[0, 1, 1], [T + 1, 1, 1], [-1, T, T], [T, T, 2**40]])
def test_lengths_out_of_range(layer, x, bad):
    with pytest.raises(ValueError, match=name("lengths")):
        layer(x, lengths=np.array(bad, np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lengths_float(layer, x, dtype):
    with pytest.raises(TypeError, match=name("lengths")):
        layer(x, lengths=np.array([T, 1, 2], dtype=dtype))


def test_lengths_unbatched(layer, x):
    with pytest.raises(ValueError, match=name("lengths")):
        layer(x[:, 0], lengths=np.array([T]))


# ---------------------------------------------------------------- step / stream
def test_step_bad_shapes(layer):
    with pytest.raises(ValueError, match=name("x(_t)?")):
        layer.step(np.zeros((B, I + 1), np.float32))
    with pytest.raises(ValueError, match=name("x(_t)?")):
        layer.step(np.zeros((1, B, I), np.float32))
    with pytest.raises(ValueError, match=name("h")):
        layer.step(np.zeros((B, I), np.float32), np.zeros((1, B, H), np.float32))   # L = 2
    with pytest.raises(ValueError, match=name("h")):
        layer.step(np.zeros((B, I), np.float32), np.zeros((2, B + 1, H), np.float32))
    with pytest.raises(ValueError, match=name("h")):
        layer.step(np.zeros((I,), np.float32), np.zeros((2, B, H), np.float32))      # unbatched wants (2, H)
    with pytest.raises(TypeError, match=name("x(_t)?")):
        layer.step(np.zeros((B, I), np.complex64))


def test_stream_bad(layer):
    with pytest.raises(ValueError, match=name("batch_size")):
        layer.stream(batch_size=0)
    s = layer.stream(batch_size=B)
    with pytest.raises(ValueError, match=name("x(_chunk)?")):
        s(np.zeros((T, B + 1, I), np.float32))
    with pytest.raises(ValueError, match=name("x(_chunk)?")):
        s(np.zeros((T, B, I + 1), np.float32))
    with pytest.raises(TypeError, match=name("x(_chunk)?")):
        s(np.zeros((T, B, I), np.complex64))


# ---------------------------------------------------------------- functional
def _args():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((T, B, I)).astype(np.float32),
            rng.standard_normal((I, H)).astype(np.float32),
            rng.standard_normal((H, H)).astype(np.float32))


@pytest.mark.parametrize("which,shape,arg", [
    (0, (T,), "x"), (0, (T, B, I, 1), "x"), (0, (0, B, I), "x"), (0, (T, 0, I), "x"),
    (1, (I,), "W_x"), (1, (I, H, 1), "W_x"), (2, (H, H + 1), "W_y"), (2, (H,), "W_y"),
])
def test_rnn_shapes(which, shape, arg):
    args = list(_args())
    args[which] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=name(arg)):
        elman.rnn(*args)


def test_rnn_mismatched_sizes():
    x, W_x, W_y = _args()
    with pytest.raises(ValueError, match=name("(x|W_x)")):          # I of x vs W_x
        elman.rnn(x[..., :-1], W_x, W_y)
    with pytest.raises(ValueError, match=name("(W_x|W_y)")):        # H of W_x vs W_y
        elman.rnn(x, W_x[:, :-1], W_y)
    with pytest.raises(ValueError, match=name("b")):
        elman.rnn(x, W_x, W_y, np.zeros(H + 1, np.float32))
    with pytest.raises(ValueError, match=name("b")):
        elman.rnn(x, W_x, W_y, np.zeros((1, H), np.float32))
    for shape in [(B, H + 1), (B + 1, H), (1, B, H), (H,)]:
        with pytest.raises(ValueError, match=name("h0")):
            elman.rnn(x, W_x, W_y, None, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=name("h0")):
        elman.rnn(x[:, 0], W_x, W_y, None, np.zeros((1, H), np.float32))   # unbatched wants (H,)


def test_rnn_activation_and_lengths():
    x, W_x, W_y = _args()
    with pytest.raises(ValueError, match=name("activation")):
        elman.rnn(x, W_x, W_y, activation="swish")
    with pytest.raises(ValueError, match=name("lengths")):
        elman.rnn(x, W_x, W_y, lengths=[T, 0, 1])
    with pytest.raises(ValueError, match=name("lengths")):
        elman.rnn(x, W_x, W_y, lengths=[T, T + 1, 1])
    with pytest.raises(ValueError, match=name("lengths")):
        elman.rnn(x, W_x, W_y, lengths=[T, 1])
    with pytest.raises(ValueError, match=name("lengths")):
        elman.rnn(x, W_x, W_y, lengths=[[T, 1, 1]])
    with pytest.raises(TypeError, match=name("lengths")):
        elman.rnn(x, W_x, W_y, lengths=np.array([T, 1.0, 1.0]))
    with pytest.raises(ValueError, match=name("lengths")):
        elman.rnn(x[:, 0], W_x, W_y, lengths=[T])


@pytest.mark.parametrize("which,arg", [(0, "x"), (1, "W_x"), (2, "W_y"), (3, "b"), (4, "h0")])
@pytest.mark.parametrize("dtype", [np.complex64, object, "U3"])
def test_rnn_bad_dtypes(which, arg, dtype):
    args = list(_args()) + [np.zeros(H, np.float32), np.zeros((B, H), np.float32)]
    args[which] = args[which].astype(dtype)
    with pytest.raises(TypeError, match=name(arg)):
        elman.rnn(*args)


# ---------------------------------------------------------------- threads
@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError), ("2", TypeError), (2.5, TypeError), (None, TypeError)])
def test_set_num_threads_bad(n, exc):
    before = elman.get_num_threads()
    with pytest.raises(exc):
        elman.set_num_threads(n)
    assert elman.get_num_threads() == before
