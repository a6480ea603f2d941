"""Hostile input: a table of malformed or unusual calls, each with its documented outcome,
a clear Python exception or a result equal to the plain call's. None may crash, hang or
write outside its buffers (tools/sanitize runs this file under AddressSanitizer).

The plain malformed calls (wrong ndim, mismatched sizes, bad lengths, bad dtypes) are in
test_bad_input.py; this file adds the layouts, flags, sizes and mutations around them.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import elman
from helpers import check_layer, chunk_running

T, B, I, H, L = 5, 3, 4, 6, 2


def name(arg):
    return rf"(?<![A-Za-z0-9_]){arg}(?![A-Za-z0-9_])"


@pytest.fixture(scope="module")
def layer():
    return elman.RNN(I, H, L, seed=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    return (rng.standard_normal((T, B, I)).astype(np.float32),
            rng.standard_normal((L, B, H)).astype(np.float32),
            np.array([T, 1, 3], np.int64))


# ------------------------------------------------------------------ same result as the plain call
def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def strided(a):
    """The same values as a view with every other element skipped."""
    return np.repeat(a, 2, axis=-1)[..., ::2]


def unaligned(a):
    """The same values at an address that is not a multiple of the item size."""
    buf = np.empty(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, a.dtype, a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def zero_stride_copy(a):
    """The same values through a broadcast (stride-0) view of a larger array."""
    return np.broadcast_to(a[None], (2,) + a.shape)[1]


SAME_RESULT = {  # name: (x, h0, lengths) -> transformed (x, h0, lengths)
    "read-only x, h0, lengths": lambda x, h, n: (read_only(x), read_only(h), read_only(n)),
    "strided x, h0, lengths": lambda x, h, n: (strided(x), strided(h), np.repeat(n, 2)[::2]),
    "Fortran-ordered x, h0": lambda x, h, n: (np.asfortranarray(x), np.asfortranarray(h), n),
    "reversed-stride x": lambda x, h, n: (x[::-1].copy()[::-1], h, n),
    "unaligned x, h0, lengths": lambda x, h, n: (unaligned(x), unaligned(h), unaligned(n)),
    "big-endian x, h0, lengths": lambda x, h, n: (x.astype(">f4"), h.astype(">f4"), n.astype(">i8")),
    "stride-0 views": lambda x, h, n: (zero_stride_copy(x), zero_stride_copy(h), zero_stride_copy(n)),
    "nested lists": lambda x, h, n: (x.tolist(), h.tolist(), n.tolist()),
    "float64 x, h0 (converted)": lambda x, h, n: (x.astype(np.float64), h.astype(np.float64), n),
    "int32 / uint8 lengths": lambda x, h, n: (x, h, n.astype(np.uint8)),
    "numpy scalars in a lengths list": lambda x, h, n: (x, h, [np.int16(v) for v in n]),
}


@pytest.mark.parametrize("transform", SAME_RESULT.values(), ids=SAME_RESULT.keys())
def test_same_result_as_plain_call(layer, data, transform):
    x, h0, lengths = data
    expected = layer(x, h0, lengths)
    y, h_n = layer(*transform(x, h0, lengths))
    assert np.array_equal(y, expected[0]) and np.array_equal(h_n, expected[1])


def test_inputs_never_written(layer, data):
    """The engine reads x, h0 and lengths and writes only its own outputs."""
    x, h0, lengths = (a.copy() for a in data)
    layer(x, h0, lengths)
    assert all(np.array_equal(a, b) for a, b in zip((x, h0, lengths), data))
    before = {k: w.copy() for k, w in layer.weights().items()}
    layer(x)
    assert all(np.array_equal(before[k], w) for k, w in layer.weights().items())


def test_garbage_past_lengths_is_ignored(layer, data):
    """NaN in the padding (steps >= lengths[b]) reaches neither y nor h_n."""
    x, h0, lengths = data
    dirty = x.copy()
    for b, n in enumerate(lengths):
        dirty[n:, b] = np.nan
    y, h_n = layer(dirty, h0, lengths)
    y_clean, h_clean = layer(x, h0, lengths)
    assert np.array_equal(y, y_clean) and np.array_equal(h_n, h_clean)


class AlignmentSpy:
    """Stands in for a layer's native network: records whether the arrays handed to it
    are aligned, then runs the real one on aligned copies (never on unaligned data,
    which would be the very undefined behaviour under test)."""

    def __init__(self, net):
        self._net, self.aligned = net, []

    def __getattr__(self, attr):
        return getattr(self._net, attr)

    def forward(self, *arrays):
        self.aligned += [a.flags.aligned for a in arrays if a is not None]
        return self._net.forward(*(a if a is None else np.require(a, requirements="CA") for a in arrays))


def test_unaligned_input_copied_before_the_engine(data):
    """Float loads from an unaligned address are undefined behaviour in the kernels
    (UBSan found one in csrc/cpu/packed_gemm.cpp before 3f38ea8): elman must copy."""
    x, h0, lengths = data
    layer = elman.RNN(I, H, L, seed=0)
    expected = layer(x, h0, lengths)
    spy = AlignmentSpy(layer._network())
    object.__setattr__(layer, "_net", (layer._version, spy))  # (weights' version, network)
    y, h_n = layer(unaligned(x), unaligned(h0), unaligned(lengths))
    assert np.array_equal(y, expected[0]) and np.array_equal(h_n, expected[1])
    assert spy.aligned and all(spy.aligned), f"unaligned arrays reached the engine: {spy.aligned}"


def test_bool_input_is_converted(layer):
    x = np.random.default_rng(1).random((T, B, I)) > 0.5
    check_layer(layer, x)


# ------------------------------------------------------------------ clear exceptions
RAISES = {  # name: (call(layer, x, h0, lengths), exception, argument named in the message)
    "x with zero input features": (lambda m, x, h, n: m(x[..., :0]), ValueError, "x"),
    "x object array of floats": (lambda m, x, h, n: m(x.astype(object)), TypeError, "x"),
    "x ragged nested list": (lambda m, x, h, n: m([[[1.0] * I], [[1.0] * (I + 1)]]), TypeError, "x"),
    "x a string": (lambda m, x, h, n: m("hello"), TypeError, "x"),
    "x None": (lambda m, x, h, n: m(None), TypeError, "x"),
    "x datetime64": (lambda m, x, h, n: m(x.astype("datetime64[s]")), TypeError, "x"),
    "h0 object array": (lambda m, x, h, n: m(x, h.astype(object)), TypeError, "h0"),
    "h0 with zero-size batch": (lambda m, x, h, n: m(x, h[:, :0]), ValueError, "h0"),
    "lengths bool": (lambda m, x, h, n: m(x, lengths=n > 1), TypeError, "lengths"),
    "lengths Python floats": (lambda m, x, h, n: m(x, lengths=[5.0, 1.0, 2.0]), TypeError, "lengths"),
    "lengths strings": (lambda m, x, h, n: m(x, lengths=["5", "1", "2"]), TypeError, "lengths"),
    "lengths object array": (lambda m, x, h, n: m(x, lengths=n.astype(object)), TypeError, "lengths"),
    "lengths uint64 max": (lambda m, x, h, n: m(x, lengths=np.array([T, 1, 2**64 - 1], np.uint64)),
                           ValueError, "lengths"),
    "lengths int8 negative": (lambda m, x, h, n: m(x, lengths=np.array([T, -128, 1], np.int8)),
                              ValueError, "lengths"),
    "lengths beyond int64": (lambda m, x, h, n: m(x, lengths=[T, 1, 2**70]), TypeError, "lengths"),
    "lengths empty list": (lambda m, x, h, n: m(x, lengths=[]), TypeError, "lengths"),  # float64
    "lengths empty ints": (lambda m, x, h, n: m(x, lengths=np.array([], np.int64)), ValueError, "lengths"),
    "stream chunk of zero steps": (lambda m, x, h, n: m.stream(B)(x[:0]), ValueError, "x(_chunk)?"),
    "stream batch_size float": (lambda m, x, h, n: m.stream(3.0), TypeError, "batch_size"),
    "step x_t of zero features": (lambda m, x, h, n: m.step(x[0, :, :0]), ValueError, "x(_t)?"),
}


@pytest.mark.parametrize("case", RAISES.values(), ids=RAISES.keys())
def test_clear_exception(layer, data, case):
    call, exception, arg = case
    with pytest.raises(exception, match=name(arg)):
        call(layer, *data)


# ------------------------------------------------------------------ sizes past memory or 64 bits
def test_output_larger_than_memory_refused_early(monkeypatch, layer, data):
    """An x whose outputs could never be allocated: MemoryError naming x, before any
    allocation. (The machine's memory is faked small: a real case needs an x of GiBs.)"""
    monkeypatch.setattr(elman._checks, "_physical_memory", lambda: 256)
    with pytest.raises(MemoryError, match=name("x")):
        layer(data[0])


@pytest.mark.skipif(os.environ.get("ELMAN_SANITIZED") == "1",
                    reason="AddressSanitizer's own address space does not fit under RLIMIT_AS")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_engine_buffers_past_memory_name_x():
    """Outputs that fit where the engine's buffers between layers do not (the address space
    capped, as strict overcommit does): MemoryError naming x and what did not fit, not
    C++'s bare "std::bad_alloc"."""
    code = textwrap.dedent("""
        import resource, numpy as np, elman
        elman.set_num_threads(1)
        layer = elman.RNN(8, 512, num_layers=3, seed=0)
        x = np.zeros((20000, 8, 8), np.float32)   # y: 0.31 GiB, two buffers between layers 0.61
        layer(x[:10])
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 500 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            layer(x)
        except MemoryError as e:
            print(e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    # two layers' outputs (T, B, H) before the last, and h0's zeros (L, B, H), float32
    gib = (2 * 20000 * 8 * 512 + 3 * 8 * 512) * 4 / 2**30
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"x: not enough memory for the pass's buffers beside its outputs: "
                                   f"{gib:.3g} GiB (outputs of the layers before the last, and "
                                   f"zeros standing for h0)"), proc.stdout + proc.stderr


@pytest.mark.parametrize("shape", [(2**31, 2**31, I), (2**62, 1, I)])
def test_byte_count_past_64_bits(layer, shape):
    """Shapes whose byte count overflows 64 bits cannot reach the engine: NumPy refuses to
    build them, or elman refuses to copy them (MemoryError), before any arithmetic."""
    with pytest.raises((ValueError, MemoryError)):
        x = as_strided(np.zeros(1, np.float32), shape=shape, strides=(0, 0, 0))
        layer(x)


@pytest.mark.parametrize("kwargs", [dict(input_size=2**31 - 1, hidden_size=2**31 - 1),
                                    dict(input_size=2**31, hidden_size=4),
                                    dict(input_size=4, hidden_size=2**63)])
def test_constructor_sizes_past_limits(kwargs):
    with pytest.raises((MemoryError, ValueError), match="input_size|hidden_size"):
        elman.RNN(**kwargs)


def test_stream_state_of_absurd_batch():
    stream = elman.RNN(I, H, seed=0).stream(batch_size=2**62)
    with pytest.raises((ValueError, MemoryError)):
        stream.state


def test_absurd_num_layers_refused_at_once():
    """Refused before anything per layer is built (before 3f38ea8 it built a table of
    2**62 weight shapes, taking all memory, and never returned)."""
    _run_isolated("""
        import elman
        try:
            elman.RNN(4, 4, num_layers=2**62)
        except (MemoryError, ValueError) as e:
            assert "num_layers" in str(e), e
        else:
            raise AssertionError("no error")
    """, timeout=3)


def _run_isolated(code, timeout):
    """Run `code` in a fresh interpreter that is killed after `timeout` seconds (and
    limited to 2 GiB of address space, where no sanitizer needs more)."""
    limit = "" if os.environ.get("ELMAN_SANITIZED") else (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))\n")
    try:
        done = subprocess.run([sys.executable, "-c", limit + textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s")
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------------------------ weights after construction
@pytest.mark.parametrize("value,exception", [
    (np.zeros((H, H + 1), np.float32), ValueError),
    (np.zeros((H,), np.float32), ValueError),
    (np.zeros((H, H, 1), np.float32), ValueError),
    (np.zeros((0, H), np.float32), ValueError),
    (np.zeros((H, H), np.complex64), TypeError),
    (np.zeros((H, H), object), TypeError),
    ("weights", TypeError),
    (None, TypeError),
])
def test_weight_replaced_by_wrong_array(data, value, exception):
    layer = elman.RNN(I, H, L, seed=0)
    x = data[0]
    y_before = layer(x)[0]
    with pytest.raises(exception, match=name("w_y_l1")):
        layer.w_y_l1 = value
    assert np.array_equal(layer(x)[0], y_before), "a refused assignment changed the layer"


def test_weights_cannot_be_changed_behind_the_layers_back(data):
    layer = elman.RNN(I, H, L, seed=0)
    x = data[0]
    y_before = layer(x)[0]
    with pytest.raises(ValueError):
        layer.w_y_l0[0, 0] = 1.0                          # read-only view
    with pytest.raises(ValueError):
        layer.weights()["w_x_l0"].flags.writeable = True
    source = np.ones((H, H), np.float32)
    layer.w_y_l0 = source
    y_assigned = layer(x)[0]
    source[...] = np.nan                                   # the layer keeps its own copy
    assert np.array_equal(layer(x)[0], y_assigned)
    assert not np.array_equal(y_assigned, y_before)


def test_functional_weight_views_and_strides(data):
    """elman.rnn with transposed, strided and read-only weights gives the plain result."""
    x = data[0]
    rng = np.random.default_rng(7)
    W_x, W_y = rng.standard_normal((I, H)).astype(np.float32), rng.standard_normal((H, H)).astype(np.float32)
    expected = elman.rnn(x, W_x, W_y)
    y, h = elman.rnn(x, np.asfortranarray(W_x), read_only(W_y.T.copy().T), strided(np.zeros(H, np.float32)))
    assert np.array_equal(y, expected[0]) and np.array_equal(h, expected[1])


# ------------------------------------------------------------------ the caller's floating-point state
def test_denormals_kept_and_caller_fp_state_untouched():
    """elman neither flushes denormals nor leaves flush-to-zero set in the caller's thread."""
    for dtype, tiny in ((np.float32, 1e-40), (np.float64, 5e-324)):
        x = np.full((1, 1, 1), tiny, dtype)
        y, _ = elman.rnn(x, np.ones((1, 1), dtype), np.zeros((1, 1), dtype), activation="relu")
        assert y.item() == dtype(tiny)
        assert dtype(tiny) * dtype(1) == dtype(tiny)


def test_broadcast_input_too_large_to_copy_names_x():
    """A zero-stride view whose copy could never fit is refused before the copy."""
    x = np.broadcast_to(np.float64(1), (2**20, 2**20, I))
    with pytest.raises(MemoryError, match=r"\bx\b"):
        elman.RNN(I, H, seed=0)(x)


def test_stream_reset_while_a_chunk_runs_is_refused():
    stream = elman.RNN(I, H, seed=0).stream(batch_size=2)
    chunk = np.ones((3, 2, I), np.float32)
    with chunk_running(stream, chunk) as output:
        with pytest.raises(RuntimeError, match="reset"):
            stream.reset()
    assert np.array_equal(stream.state, stream.layer(chunk)[1])  # not reset
    assert np.array_equal(output[0], stream.layer(chunk)[0])
