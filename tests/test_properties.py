"""Property-based tests: hypothesis draws shapes, options, dtypes, lengths and values
(NaN, Inf, huge and tiny magnitudes, denormals) and compares elman with the oracle.

Profiles (environment variable ELMAN_HYPOTHESIS_PROFILE):
  ci    (default) derandomized, a fixed number of examples: every run tries the same cases
  deep  random and many more examples, for a search by hand; a failure prints the
        @reproduce_failure blob to replay it

What "agrees with the oracle" means for special values (DESIGN.md section 2):
* tanh: the tolerance rule of helpers.py, NaN and Inf at exactly the oracle's places.
* ReLU: a row touched by NaN or Inf may hold NaN or 0 where the oracle holds NaN
  (max(NaN, 0) is not pinned down), and a row touched by a huge value keeps huge terms
  that cancel in sums, where any summation order is as right as another: such rows are
  checked for isolation only; every other row must agree with the oracle. Non-finite
  and huge weights touch every row, so they are drawn for tanh only.
* Magnitudes are bounded so that no *finite* float32 sum overflows: float32 rounding
  could then legitimately give Inf or NaN where the float64 oracle stays finite.

Failures found by these searches are kept as explicit cases in test_regressions.py.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elman
from helpers import assert_close, check_layer, ref

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("ELMAN_HYPOTHESIS_PROFILE", "ci"))

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the oracle's inf - inf

# Sizes around the kernels' edges (16-float vectors, 32-float panels of packed weights,
# 8-double vectors), and one W_y too large for L2 (the column-split path).
SIZES = st.sampled_from([1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33, 63, 65, 100, 257, 513])
SMALL_SIZES = st.sampled_from([1, 2, 3, 5, 8, 16, 17, 33])

# Values that are not "ordinary": drawn into random places of inputs and weights.
HUGE = {np.float32: 1e15, np.float64: 1e100}
DENORMAL = {np.float32: 1e-40, np.float64: 5e-324}
TINY = {np.float32: 1.2e-38, np.float64: 2.3e-308}  # near the smallest normal


def special_values(dtype, kinds):
    """kinds: "all"; "finite" (no NaN, Inf); "moderate" (no huge magnitude either)."""
    values = [DENORMAL[dtype], -DENORMAL[dtype], TINY[dtype], 0.0, -0.0]
    if kinds != "moderate":
        values += [HUGE[dtype], -HUGE[dtype]]
    if kinds == "all":
        values += [np.nan, np.inf, -np.inf]
    return st.sampled_from(values)


@st.composite
def with_specials(draw, a, dtype, kinds="all", max_count=3):
    """`a` with up to max_count elements replaced by special values."""
    a = a.copy()
    flat = a.reshape(-1)
    for _ in range(draw(st.integers(0, max_count))):
        flat[draw(st.integers(0, flat.size - 1))] = draw(special_values(dtype, kinds))
    return a


@st.composite
def layouts(draw, a):
    """The same values in C order, Fortran order, or as a strided view."""
    kind = draw(st.sampled_from(["C", "F", "strided"]))
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        wide = np.repeat(a, 2, axis=-1)
        return wide[..., ::2]
    return a


def input_dtypes(layer_dtype):
    """What a user may hand in: the layer's dtype, the other float, float16 or int32."""
    return st.sampled_from([layer_dtype, np.float64 if layer_dtype == np.float32 else np.float32,
                            np.float16, np.int32])


@st.composite
def values(draw, shape, dtype, scale, kinds):
    """Random values of `shape` (a seed drawn by hypothesis), with special values."""
    seed = draw(st.integers(0, 2**32 - 1))
    a = np.random.default_rng(seed).uniform(-scale, scale, shape)
    return draw(with_specials(a, dtype, kinds))


def as_input(a, dtype):
    """`a` converted to a user's dtype; integers get integral values (no NaN: drawn finite)."""
    if np.dtype(dtype).kind == "i":
        return np.round(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)).clip(-100, 100).astype(dtype)
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def row_touched(a, batch_axis):
    """Rows (along batch_axis) holding any NaN, Inf or huge value."""
    other = tuple(i for i in range(a.ndim) if i != batch_axis)
    with np.errstate(invalid="ignore"):
        return ~(np.abs(a) < 1e10).all(axis=other)


def compare_rows(actual, expected, naive, dtype, rows, batch_axis, what):
    """The tolerance rule on the chosen rows only."""
    take = lambda a: np.take(np.asarray(a), np.flatnonzero(rows), axis=batch_axis)
    assert_close(take(actual), take(expected), None if naive is None else take(naive),
                 dtype=dtype, what=what)


# ------------------------------------------------------------------------- elman.RNN
@st.composite
def layer_cases(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    act = draw(st.sampled_from(["tanh", "relu"]))
    I, H = draw(SIZES), draw(SIZES)
    L = draw(st.integers(1, 3))
    bidirectional, bias, batch_first = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    T, B = draw(st.integers(1, 12)), draw(st.integers(1, 9))
    unbatched = draw(st.booleans()) and draw(st.booleans())  # one case in four
    if unbatched:
        B = 1
    layer = elman.RNN(I, H, L, act, bias=bias, batch_first=batch_first,
                      bidirectional=bidirectional, dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)))
    h0 = None
    if draw(st.booleans()):
        h0 = draw(values((L * (2 if bidirectional else 1), B, H), dtype, 1.0, "all"))
    # Weights: all zero, or the default scale, with special values drawn in a few.
    weight_scale = draw(st.sampled_from([1.0, 1.0, 0.0, 0.5]))
    names = sorted(layer.weights())
    if weight_scale != 1.0:
        for name in names:
            setattr(layer, name, getattr(layer, name) * weight_scale)
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        w = np.asarray(getattr(layer, name), np.float64)
        kinds = "moderate" if act == "relu" else "all"
        setattr(layer, name, draw(with_specials(w, dtype, kinds, max_count=2)))

    x_scale = draw(st.sampled_from([1.0, 0.0, 1e-3, 10.0]))
    x = draw(values((T, B, I), dtype, x_scale, "all"))
    lengths = None
    if not unbatched and draw(st.booleans()):
        lengths = np.array(draw(st.lists(st.integers(1, T), min_size=B, max_size=B)), np.int64)
    return layer, x, h0, lengths, draw(input_dtypes(dtype)), unbatched, draw(st.data())


@given(layer_cases())
def test_layer_matches_oracle(case):
    layer, x, h0, lengths, input_dtype, unbatched, data = case
    dtype = layer.dtype
    x = as_input(x, input_dtype)  # (T, B, I), as the user hands it in (float16 may overflow)
    x_user = data.draw(layouts(x))
    h0_user = None if h0 is None else as_input(h0, dtype)
    if unbatched:
        x_user = x_user[:, 0]
        h0_user = None if h0_user is None else h0_user[:, 0]
    x_user = x_user.transpose(1, 0, 2) if layer.batch_first and not unbatched else x_user

    y, h_n = layer(x_user, h0_user, lengths)

    ey, eh = ref.forward(layer, x_user, h0_user, lengths)
    ny = nh = None
    if dtype == np.float32:
        ny, nh = ref.forward(layer, np.asarray(x_user, np.float32), h0_user, lengths, dtype=np.float32)
    batch_axis_y = 0 if unbatched else (0 if layer.batch_first else 1)
    if unbatched:  # one row: compare whole arrays with a leading batch axis of 1
        y, ey, h_n, eh = y[None], ey[None], h_n[:, None], eh[:, None]
        ny, nh = (None, None) if ny is None else (ny[None], nh[:, None])
    rows = np.ones(y.shape[batch_axis_y], bool)
    if layer.nonlinearity == "relu":  # rows touched by NaN/Inf/huge: isolation only
        rows = ~row_touched(np.asarray(x, np.float64), 1)
        if h0 is not None:
            rows &= ~row_touched(np.asarray(h0, np.float64), 1)
    compare_rows(y, ey, ny, dtype, rows, batch_axis_y, "y")
    compare_rows(h_n, eh, nh, dtype, rows, 1, "h_n")
    if lengths is not None:
        y_tb = y.transpose(1, 0, 2) if layer.batch_first else y
        for b, n in enumerate(lengths):
            assert np.all(y_tb[n:, b] == 0), f"y past lengths[{b}]={n} is not exactly 0"


# ------------------------------------------------------------------------- elman.rnn
@st.composite
def rnn_cases(draw):
    act = draw(st.sampled_from(["tanh", "relu"]))
    I, H = draw(SIZES), draw(SIZES)
    T, B = draw(st.integers(1, 10)), draw(st.integers(1, 9))
    # Each argument's dtype on its own (special values drawn in it): the result is
    # float64 if any argument is float64.
    def arg(shape, scale, kinds):
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        return draw(values(shape, dtype, scale, kinds)).astype(dtype)

    kinds = "moderate" if act == "relu" else "all"  # (see the module docstring)
    x = arg((T, B, I), 1.0, kinds)
    W_x = arg((I, H), 1 / np.sqrt(I), kinds)
    b = arg((H,), 0.5, kinds) if draw(st.booleans()) else None
    h0 = arg((B, H), 1.0, kinds) if draw(st.booleans()) else None
    W_y = arg((H, H), 1 / np.sqrt(H), kinds)
    args = (x, W_x, W_y, b, h0)
    dtype = np.float64 if any(a is not None and a.dtype == np.float64 for a in args) else np.float32
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    kw = dict(activation=act, reverse=draw(st.booleans()), lengths=lengths)
    return dtype, args, kw


@given(rnn_cases())
def test_rnn_matches_oracle(case):
    dtype, args, kw = case
    y, h = elman.rnn(*args, **kw)
    ey, eh = ref.rnn(*args, **kw)
    ny = nh = None
    if dtype == np.float32:
        ny, nh = ref.rnn(*args, dtype=np.float32, **kw)
    assert_close(y, ey, ny, dtype=dtype, what="y")
    assert_close(h, eh, nh, dtype=dtype, what="h_T")


# ------------------------------------------------------------------------- stream
@given(dtype=st.sampled_from([np.float32, np.float64]), act=st.sampled_from(["tanh", "relu"]),
       I=SMALL_SIZES, H=SIZES, L=st.integers(1, 3), B=st.integers(1, 5),
       chunks=st.lists(st.integers(1, 6), min_size=1, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_stream_chunks_match_one_call(dtype, act, I, H, L, B, chunks, seed):
    layer = elman.RNN(I, H, L, act, dtype=dtype, seed=seed)
    x = np.random.default_rng(seed).uniform(-1, 1, (sum(chunks), B, I)).astype(dtype)
    stream = layer.stream(batch_size=B)
    bounds = np.cumsum([0] + chunks)
    y = np.concatenate([stream(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    ey, eh = ref.forward(layer, x)
    ny, nh = ref.forward(layer, x, dtype=np.float32) if dtype == np.float32 else (None, None)
    assert_close(y, ey, ny, dtype=dtype, what="stream y")
    assert_close(stream.state, eh, nh, dtype=dtype, what="stream state")


# ------------------------------------------------------------------------- every activation
@st.composite
def activation_cases(draw):
    """Any activation of the oracle with random parameters and clip, on ordinary values
    (special values are covered above for tanh and ReLU). thresholded_relu jumps at
    alpha, where float32 rounding may fall on either side: it is drawn in float64 only."""
    name = draw(st.sampled_from(sorted(ref.PARAMETERS)))
    dtype = np.float64 if name == "thresholded_relu" else draw(st.sampled_from([np.float32, np.float64]))
    params = {f"activation_{p}": draw(st.floats(-2.0, 2.0) if p == "beta" else st.floats(0.01, 2.0))
              for p in ref.PARAMETERS[name]}
    clip = draw(st.none() | st.floats(0.1, 5.0))
    I, H, L = draw(SMALL_SIZES), draw(SIZES), draw(st.integers(1, 2))
    T, B = draw(st.integers(1, 8)), draw(st.integers(1, 6))
    layer = elman.RNN(I, H, L, name, bidirectional=draw(st.booleans()), dtype=dtype,
                      seed=draw(st.integers(0, 2**32 - 1)), clip=clip, **params)
    x = draw(values((T, B, I), dtype, 1.0, "moderate")).astype(dtype)
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B).map(np.array))
    return layer, x, lengths


@given(activation_cases())
def test_every_activation_matches_oracle(case):
    layer, x, lengths = case
    check_layer(layer, x, lengths=lengths)
