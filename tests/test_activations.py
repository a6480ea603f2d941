"""The vectorised activations of the engine, element by element, against float64 NumPy.

The bound for tanh is in ulp of the correctly rounded result: float32 at most
TANH_F32_MAX_ULP (the measured maximum over every float32 is 1.33 ulp, see
bench/tanh_ulp.py), float64 at most TANH_F64_MAX_ULP against np.tanh (which is
itself within 1 ulp of exact). A strided sweep over every float32 bit pattern (so
every binade, denormals included) and dense samples around the branch points
(|x| = 0.625, where the polynomial hands over to the exp formula, and the saturation
points) keep the test quick; bench/tanh_ulp.py checks all 2^31 positive float32.
"""

import numpy as np
import pytest

import elman
from elman import _core
from helpers import ref

TANH_F32_MAX_ULP = 1.5
TANH_F64_MAX_ULP = 3.0


def vector_tanh(x):
    return _core.activation(np.ascontiguousarray(x), _core.Activation.tanh)


def ulp_error(actual, x, dtype):
    exact = np.tanh(x.astype(np.float64))
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(np.float64)
    return np.abs(actual.astype(np.float64) - exact) / spacing


def float32_sweep():
    """Every 97th positive finite float32 bit pattern, and dense points at the branches."""
    bits = np.arange(0, 0x7F800000, 97, dtype=np.uint32)
    dense = [np.float32(v) + np.arange(-2000, 2000, dtype=np.float32) * np.spacing(np.float32(v))
             for v in (0.625, 9.0, 10.0)]
    return np.concatenate([bits.view(np.float32), *dense])


def test_tanh_float32_within_bound_everywhere():
    x = float32_sweep()
    err = ulp_error(vector_tanh(x), x, np.float32)
    worst = int(np.argmax(err))
    assert err[worst] <= TANH_F32_MAX_ULP, f"{err[worst]:.3f} ulp at x = {x[worst]!r}"


def test_tanh_float32_is_odd():
    x = float32_sweep()
    assert np.array_equal(vector_tanh(-x), -vector_tanh(x))


def test_tanh_float64_within_bound():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-25, 25, 200_001), rng.standard_normal(100_000),
                        np.geomspace(1e-300, 30, 50_000), -np.geomspace(1e-300, 30, 50_000),
                        0.625 + np.arange(-500, 500) * np.spacing(0.625)])
    err = ulp_error(vector_tanh(x), x, np.float64)
    worst = int(np.argmax(err))
    assert err[worst] <= TANH_F64_MAX_ULP, f"{err[worst]:.3f} ulp at x = {x[worst]!r}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_special_values(dtype):
    info = np.finfo(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, info.tiny, -info.tiny, info.smallest_subnormal,
                  -info.smallest_subnormal, info.max, -info.max, 20.0, -20.0], dtype=dtype)
    y = vector_tanh(x)
    assert np.isnan(y[0])
    assert y[1] == 1 and y[2] == -1
    assert y[3] == 0 and not np.signbit(y[3]) and y[4] == 0 and np.signbit(y[4])
    np.testing.assert_array_equal(y[5:9], x[5:9])  # tanh(x) rounds to x for tiny x
    np.testing.assert_array_equal(y[9:], np.sign(x[9:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_exact_and_keeps_nan(dtype):
    x = np.array([np.nan, -np.inf, -1.5, -0.0, 0.0, 2.5, np.inf], dtype=dtype)
    y = _core.activation(x, _core.Activation.relu)
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], np.array([0, 0, 0, 0, 2.5, np.inf], dtype=dtype))


@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 33, 64, 1000])
def test_every_length_and_tail(n):
    """Vector bodies and scalar tails of the loop give the same per-element results."""
    x = np.random.default_rng(n).uniform(-4, 4, n).astype(np.float32)
    expected = np.array([vector_tanh(np.array([v]))[0] for v in x])
    np.testing.assert_array_equal(vector_tanh(x), expected)


# The other activations of ONNX's RNN, against the float64 oracle (elman.reference).
# Bounds in ulp of the result, where the result is a normal number (below that, the
# error is at most the smallest normal number): measured maxima are float32 sigmoid 2.4,
# softplus 2.5, elu 1.3, softsign 1.4; float64 3.0 for sigmoid, softplus and elu.
# Affine and HardSigmoid are alpha * x + beta, exact but for the rounding of alpha and beta
# to the type, so their bound is relative to the terms, not to the (cancelling) result.
SMOOTH_MAX_ULP = {np.float32: {"sigmoid": 3.0, "softplus": 3.0, "elu": 2.0, "softsign": 2.0,
                               "scaled_tanh": 2.0, "leaky_relu": 1.0, "relu": 0.0,
                               "thresholded_relu": 0.0},
                  np.float64: {"sigmoid": 4.0, "softplus": 4.0, "elu": 4.0, "softsign": 1.0,
                               "scaled_tanh": 3.0, "leaky_relu": 1.0, "relu": 0.0,
                               "thresholded_relu": 0.0}}


def activation_sweep(dtype):
    finfo = np.finfo(dtype)
    big = 800.0 if dtype == np.float64 else 110.0  # past where e^x overflows / underflows
    return np.concatenate([np.linspace(-40, 40, 200_001), np.geomspace(1e-30, big, 20_000),
                           -np.geomspace(1e-30, big, 20_000), [0.0, -0.0, finfo.max, -finfo.max],
                           np.random.default_rng(1).standard_normal(50_000)]).astype(dtype)


def engine(x, name, alpha=None, beta=None, clip=None):
    params = ref.PARAMETERS[name]
    alpha = params.get("alpha", 0.0) if alpha is None else alpha
    beta = params.get("beta", 0.0) if beta is None else beta
    return _core.activation(np.ascontiguousarray(x), getattr(_core.Activation, name), alpha, beta,
                            clip)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SMOOTH_MAX_ULP[np.float32]))
def test_activation_within_ulp_bound(name, dtype):
    x = activation_sweep(dtype)
    with np.errstate(all="ignore"):
        exact = ref.ACTIVATIONS[name](x.astype(np.float64), **ref.PARAMETERS[name])
    y = engine(x, name).astype(np.float64)
    tiny = np.finfo(dtype).tiny
    normal = np.isfinite(exact) & (np.abs(exact) >= tiny)
    with np.errstate(over="ignore"):  # the spacing at the type's largest number is Inf
        err = np.abs(y[normal] - exact[normal]) / np.spacing(np.abs(exact[normal]).astype(dtype))
    worst = int(np.argmax(err))
    assert err[worst] <= SMOOTH_MAX_ULP[dtype][name], f"{err[worst]:.2f} ulp at x = {x[normal][worst]!r}"
    assert np.all(np.abs(y[~normal & np.isfinite(exact)] - exact[~normal & np.isfinite(exact)]) <= tiny)
    assert np.array_equal(y[np.isinf(exact)], exact[np.isinf(exact)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,alpha,beta", [("affine", 0.7, -0.3), ("hard_sigmoid", 0.2, 0.5),
                                             ("hard_sigmoid", 1.3, 0.1)])
def test_linear_activations_exact_but_for_parameter_rounding(name, alpha, beta, dtype):
    x = activation_sweep(dtype)[:200_001]  # the finite, moderate part
    a, b = float(dtype(alpha)), float(dtype(beta))  # what the engine computes with
    exact = ref.ACTIVATIONS[name](x.astype(np.float64), a, b)
    y = engine(x, name, alpha, beta).astype(np.float64)
    scale = np.abs(a * x.astype(np.float64)) + abs(b)
    assert np.all(np.abs(y - exact) <= 2 * np.spacing(scale.astype(dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ref.PARAMETERS))
def test_activation_special_values(name, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    with np.errstate(all="ignore"):
        exact = ref.ACTIVATIONS[name](x.astype(np.float64), **ref.PARAMETERS[name])
    y = engine(x, name)
    assert np.isnan(y[0]), "NaN must propagate"
    np.testing.assert_array_equal(y[1:], exact[1:].astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_beta_and_thresholds(dtype):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0], dtype)
    np.testing.assert_array_equal(engine(x, "thresholded_relu", alpha=1.0), [0, 0, 0, 0, 0, 1.5, 3.0])
    np.testing.assert_array_equal(engine(x, "leaky_relu", alpha=0.5), [-1.0, -0.25, 0, 0.5, 1, 1.5, 3])
    np.testing.assert_allclose(engine(x, "scaled_tanh", alpha=2.0, beta=0.5), 2 * np.tanh(0.5 * x),
                               rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(engine(x, "elu", alpha=2.0), np.where(x < 0, 2 * np.expm1(x), x),
                               rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["tanh", "relu", "affine", "softplus"])
def test_clip_bounds_the_pre_activation(name, dtype):
    x = np.array([np.nan, -np.inf, -5.0, -0.5, 0.0, 0.5, 5.0, np.inf], dtype)
    clipped = engine(np.clip(x, -1.5, 1.5), name)
    y = engine(x, name, clip=1.5)
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], clipped[1:])
