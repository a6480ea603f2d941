"""Bad input: the exception type, and a message that names the argument."""

import numpy as np
import pytest

import elman
from helpers import MOST_THREADS

T, B, I, H = 5, 3, 4, 6


def name(arg):
    """A regex matching a message that starts with the argument's name as a word (so 'x'
    matches neither 'expected' nor 'x_t')."""
    return rf"^{arg}(?![A-Za-z0-9_])"


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


# Flags are not read by truthiness: batch_first="False" would mean True, and with T == B
# the shapes would even fit.
@pytest.mark.parametrize("arg", ["bias", "batch_first", "bidirectional"])
@pytest.mark.parametrize("value", ["False", 2, None, 0.0])
def test_constructor_flags(arg, value):
    with pytest.raises(TypeError, match=name(arg)):
        elman.RNN(3, 4, **{arg: value})


@pytest.mark.parametrize("value", [np.True_, 1, 0])
def test_constructor_flags_numpy_bool_and_0_1(value):
    assert elman.RNN(3, 4, batch_first=value).batch_first is bool(value)


@pytest.mark.parametrize("seed", ["x", -1, 1.5])
def test_constructor_seed(seed):
    with pytest.raises((TypeError, ValueError), match=name("seed")):
        elman.RNN(3, 4, seed=seed)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64, np.complex128, object, "U4",
                                   None, np.float64(2.0), np.float32(0)])  # None: NumPy's float64
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


@pytest.mark.parametrize("arg", ["reverse", "batch_first"])
def test_rnn_flags(arg):
    with pytest.raises(TypeError, match=name(arg)):
        elman.rnn(*_args(), **{arg: "no"})


def test_rnn_mismatched_sizes():
    x, W_x, W_y = _args()
    with pytest.raises(ValueError, match=name("(x|W_x)")):          # I of x vs W_x
        elman.rnn(x[..., :-1], W_x, W_y)
    with pytest.raises(ValueError, match=name("(W_x|W_y)")):        # H of W_x vs W_y
        elman.rnn(x, W_x[:, :-1], W_y)
    with pytest.raises(ValueError, match="^W_x: .*transposed"):      # (H, I), as torch's: not W_y's fault
        elman.rnn(x, W_x.T, W_y)
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
# Beyond 1024 threads (or the CPUs, where more): a typo like 10**6 would otherwise start
# tens of thousands of threads in the next large call; 2**40 would not fit a C int.
@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError), ("2", TypeError), (2.5, TypeError), (None, TypeError),
                                   (MOST_THREADS + 1, ValueError), (2**40, ValueError)])
def test_set_num_threads_bad(n, exc):
    before = elman.get_num_threads()
    with pytest.raises(exc):
        elman.set_num_threads(n)
    assert elman.get_num_threads() == before


# ---------------------------------------------------------------- GPU arrays where host arrays go
class _CUDAArray:
    """Looks like a CUDA array (__cuda_array_interface__), as torch and CuPy arrays do;
    NumPy reads it as a 0-d object array."""

    def __init__(self, shape):
        self.__cuda_array_interface__ = dict(shape=shape, typestr="<f4", strides=None,
                                             data=(4096, False), version=3)


class _DLPackGPUArray:
    """A DLPack producer on a CUDA GPU (as JAX arrays are), which refuses to be read on
    the host."""

    def __init__(self, shape):
        self.shape = shape

    def __dlpack__(self, **kwargs):
        raise BufferError("the data are on a GPU")

    def __dlpack_device__(self):
        return (2, 0)

    def __array__(self, *args, **kwargs):
        raise TypeError("cannot convert a GPU array to NumPy implicitly")


def test_masked_array_with_masked_values(layer, x):
    """A masked array whose mask hides values is refused, naming the argument: its mask
    would otherwise be dropped and the hidden values read (a Keras user may mean padding).
    One with nothing masked is read as its data."""
    masked = np.ma.masked_array(x, mask=np.zeros_like(x, bool))
    masked.mask[-1, 0] = True
    calls = {
        "x": lambda: layer(masked),
        "h0": lambda: layer(x, np.ma.masked_array(np.zeros((2, B, H)), mask=True)),
        "lengths": lambda: layer(x, lengths=np.ma.masked_array([T] * B, mask=[True] + [False] * (B - 1))),
        "x_t": lambda: layer.step(masked[-1]),
        "w_y_l1": lambda: setattr(layer, "w_y_l1", np.ma.masked_array(np.zeros((H, H)), mask=True)),
        "W_x": lambda: elman.rnn(x, np.ma.masked_array(np.zeros((I, H)), mask=True), np.zeros((H, H))),
    }
    for arg, call in calls.items():
        with pytest.raises(ValueError, match=name(arg) + r": a masked array with masked values"):
            call()
    nothing_masked = np.ma.masked_array(x, mask=np.zeros_like(x, bool))
    assert np.array_equal(layer(nothing_masked)[0], layer(x)[0])


class _CopyingGPUArray(_DLPackGPUArray):
    """A GPU array that copies itself to the host when NumPy asks (as JAX arrays do)."""

    def __init__(self, values):
        super().__init__(values.shape)
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.array(self.values, dtype=dtype)


def test_gpu_array_that_copies_itself_is_read(layer, x):
    """Unlike torch and CuPy, a GPU array whose own conversion copies it to the host is
    taken, through that copy: the same results as from the host array."""
    y, h_n = layer(_CopyingGPUArray(x))
    expected = layer(x)
    assert np.array_equal(y, expected[0]) and np.array_equal(h_n, expected[1])


@pytest.mark.parametrize("gpu_array", [_CUDAArray, _DLPackGPUArray])
def test_gpu_array_where_a_host_array_goes(layer, x, gpu_array):
    """CPU code handed a GPU array says so, naming the argument (without this, NumPy
    complains of an object dtype, or the producer of copying)."""
    calls = {
        "x": lambda: layer(gpu_array((T, B, I))),
        "h0": lambda: layer(x, gpu_array((2, B, H))),
        "lengths": lambda: layer(x, lengths=gpu_array((B,))),
        "x_t": lambda: layer.step(gpu_array((B, I))),
        "x_chunk": lambda: layer.stream(B)(gpu_array((T, B, I))),
        "w_y_l1": lambda: setattr(layer, "w_y_l1", gpu_array((H, H))),
        "W_x": lambda: elman.rnn(x, gpu_array((I, H)), np.zeros((H, H), np.float32)),
    }
    for arg, call in calls.items():
        with pytest.raises(TypeError, match=name(arg) + r": expected an array in host memory, got one in GPU "
                                                        r"memory \(_\w+\); copy it to the host first"):
            call()
    assert np.array_equal(layer(x)[0], elman.RNN(I, H, num_layers=2, seed=0)(x)[0])  # left as it was


@pytest.mark.parametrize("storage,match", [
    ("f32", "^storage: expected one of 'float32', 'float16', 'bfloat16', got 'f32'"),
    (np.array(["float32", "x"]), "^storage: expected one of"),  # (NumPy's "truth value is ambiguous")
    (["float32"], "^storage: expected one of"),
    ("float16", '^storage: float16 runs on "cuda" only'),
])
def test_bad_storage_names_the_argument(storage, match):
    with pytest.raises(ValueError, match=match):
        elman.RNN(3, 4, storage=storage)
    with pytest.raises(ValueError, match=match):
        elman.RNN(3, 4).to("cpu", storage=storage)


class _NotADictInterface:
    __cuda_array_interface__ = 5


class _InterfaceThatRaises:
    @property
    def __cuda_array_interface__(self):
        raise ValueError("device lost")


class _DLPackThatRaises:
    @property
    def __dlpack__(self):
        raise ValueError("device lost")


@pytest.mark.parametrize("odd", [_NotADictInterface, _InterfaceThatRaises, _DLPackThatRaises])
def test_malformed_gpu_array_protocols_name_the_argument(layer, x, odd):
    # (AttributeError: 'int' object has no attribute 'get', or the property's ValueError)
    for arg, call in {"x": lambda: layer(odd()), "h0": lambda: layer(x, odd()),
                      "W_x": lambda: elman.rnn(x, odd(), np.zeros((H, H), np.float32))}.items():
        with pytest.raises(TypeError, match=f"^{arg}: expected an array of real numbers"):
            call()
