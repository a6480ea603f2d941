"""NaN and Inf propagate as IEEE arithmetic says and never contaminate other batch rows."""

import numpy as np
import pytest

import elman
from helpers import check_layer, check_rnn, ref, rng_for, uniform


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_nan_in_one_row_tanh(bidirectional, dtype):
    T, B, I, H = 6, 4, 5, 33
    layer = elman.RNN(I, H, 2, bidirectional=bidirectional, dtype=dtype, seed=41)
    x = uniform(rng_for("nan", bidirectional, dtype), (T, B, I), 1.0, dtype)
    x[3, 1, 2] = np.nan
    y, h_n = layer(x)
    assert np.all(np.isnan(y[3:, 1, :H]))            # forward direction: NaN from t=3 on
    assert np.all(np.isfinite(np.delete(y, 1, axis=1)))
    check_layer(layer, x, result=(y, h_n))           # the oracle's NaN pattern, exactly


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the oracle's inf - inf
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_in_input_tanh(dtype):
    T, B, I, H = 5, 3, 4, 20
    layer = elman.RNN(I, H, 1, dtype=dtype, seed=42)
    x = uniform(rng_for("inf", dtype), (T, B, I), 1.0, dtype)
    x[2, 0, 1] = np.inf                              # tanh(+-inf) = +-1: finite outputs
    x[1, 2, :] = -np.inf                             # inf - inf in a row: NaN from there on
    y, h_n = layer(x)
    assert np.isfinite(y[2, 0]).all()
    check_layer(layer, x, result=(y, h_n))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_preactivation_saturates(dtype):
    """tanh of huge (finite) arguments is exactly +-1, never NaN (vectorised tanh must clamp)."""
    layer = elman.RNN(2, 8, dtype=dtype, seed=43)
    x = np.array([[[1e30, -1e30]], [[-3e38, 0.0]], [[50.0, -50.0]]], dtype=dtype)
    y, _ = layer(x)
    assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1)
    check_layer(layer, x, result=(y, _))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_row_relu_does_not_contaminate(dtype):
    """For ReLU only row isolation is required (max(NaN, 0) differs between IEEE 754-2008
    maxNum and 754-2019 maximum, so the NaN row's own value is not pinned down)."""
    T, B, I, H = 6, 4, 5, 9
    layer = elman.RNN(I, H, 2, nonlinearity="relu", dtype=dtype, seed=44)
    x = uniform(rng_for("relu-nan", dtype), (T, B, I), 1.0, dtype)
    x[2, 2, :] = np.nan
    y, h_n = layer(x)
    keep = [0, 1, 3]
    check_layer(layer, x[:, keep], result=(y[:, keep], h_n[:, keep]))


def test_functional_nan_in_weights_column():
    """NaN in W_x[i, j] makes column j NaN for every row with x[:, i] != 0 (IEEE), and through
    W_y every column after that step; compared with the oracle's NaN pattern."""
    T, B, I, H = 4, 3, 3, 5
    rng = rng_for("wnan")
    x = uniform(rng, (T, B, I), 1.0, np.float64)
    W_x, W_y = uniform(rng, (I, H), 0.5, np.float64), uniform(rng, (H, H), 0.5, np.float64)
    W_x[1, 2] = np.nan
    check_rnn(elman.rnn, x, W_x, W_y)
    ey, _ = ref.rnn(x, W_x, W_y)
    assert np.isnan(ey[0, :, 2]).all() and not np.isnan(ey[0, :, 0]).any()
