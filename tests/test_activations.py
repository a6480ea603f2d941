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
