"""Failures found by the property-based search (test_properties.py), kept as explicit
cases. While an engine bug is open its case is marked xfail(strict=True), so that the
fix shows (as an unexpected pass) and the mark goes."""

import numpy as np
import pytest

import elman
from helpers import check_layer, check_rnn

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the oracle's 0 * inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("lengths", [None, [2]], ids=["full", "lengths"])
def test_nonfinite_w_y_with_default_h0(value, dtype, lengths):
    """h0=None means zeros, and 0 * NaN = 0 * Inf = NaN: the first step is NaN, as in the
    oracle. (Found as test_layer_matches_oracle(I=H=1, L=2, T=B=1) with a NaN drawn into
    w_y_l1: the engine skipped the product with a zero state; fixed in 3f38ea8.)"""
    x = np.ones((2, 1, 1), dtype)
    W_x, W_y = np.ones((1, 1), dtype), np.array([[value]], dtype)
    check_rnn(elman.rnn, x, W_x, W_y, lengths=lengths)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_w_y_with_explicit_zero_h0(value, dtype):
    """The same case with h0 given as zeros (which always took the product)."""
    layer = elman.RNN(1, 1, 2, dtype=dtype, seed=0)
    layer.w_y_l1 = np.array([[value]], dtype)
    x = np.ones((2, 1, 1), dtype)
    check_layer(layer, x, h0=np.zeros((2, 1, 1), dtype))
