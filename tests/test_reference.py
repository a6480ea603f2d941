"""The oracle itself, on cases computed by hand. Needs no compiled engine."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import ref


def test_activations_table():
    assert set(ref.ACTIVATIONS) == {"tanh", "relu", "sigmoid", "affine", "leaky_relu", "thresholded_relu",
                                    "scaled_tanh", "hard_sigmoid", "elu", "softsign", "softplus"}
    z = np.array([-2.0, -0.0, 0.0, 0.5, 3.0])
    assert np.array_equal(ref.ACTIVATIONS["relu"](z), [0.0, 0.0, 0.0, 0.5, 3.0])
    assert np.allclose(ref.ACTIVATIONS["tanh"](z), [math.tanh(v) for v in z], rtol=0, atol=1e-16)
    with pytest.raises(ValueError, match="activation"):
        ref.rnn(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), activation="swish")


def test_scalar_tanh_by_hand():
    x = [0.5, -1.0, 2.0]
    wx, wy, b, h = 0.7, -0.4, 0.1, 0.3
    expected = []
    for v in x:
        h = math.tanh(v * wx + h * wy + b)
        expected.append(h)
    y, h_T = ref.rnn(np.array(x)[:, None], [[wx]], [[wy]], [b], [0.3])   # unbatched (T, I)
    assert y.shape == (3, 1) and h_T.shape == (1,)
    assert np.allclose(y[:, 0], expected, rtol=0, atol=1e-15)
    assert abs(h_T[0] - expected[-1]) < 1e-15


def test_scalar_relu_exact():
    # relu(0.5) = 0.5; relu(-2*0.5 + 0.5*0.25) = 0; relu(3*0.5 + 0) = 1.5
    y, h_T = ref.rnn(np.array([[[1.0]], [[-2.0]], [[3.0]]]), [[0.5]], [[0.25]], activation="relu")
    assert y.shape == (3, 1, 1) and h_T.shape == (1, 1)
    assert np.array_equal(y[:, 0, 0], [0.5, 0.0, 1.5])
    assert h_T[0, 0] == 1.5


def test_reverse_keeps_original_time_order():
    x = np.array([1.0, 2.0, 4.0])[:, None, None]
    y, h_T = ref.rnn(x, [[0.5]], [[0.5]], activation="relu")
    assert np.array_equal(y[:, 0, 0], [0.5, 1.25, 2.625]) and h_T[0, 0] == 2.625
    # reverse: reads t=2 (2.0), t=1 (1 + 1 = 2), t=0 (0.5 + 1 = 1.5); y[t] is the state after x[t]
    y, h_T = ref.rnn(x, [[0.5]], [[0.5]], activation="relu", reverse=True)
    assert np.array_equal(y[:, 0, 0], [1.5, 2.0, 2.0]) and h_T[0, 0] == 1.5


def test_lengths_by_hand():
    x = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 99.0]])[:, :, None]   # (T=3, B=2, I=1)
    lengths = np.array([3, 2])
    y, h_T = ref.rnn(x, [[0.5]], [[0.5]], activation="relu", lengths=lengths)
    assert np.array_equal(y[:, :, 0], [[0.5, 0.5], [1.25, 1.25], [2.625, 0.0]])
    assert np.array_equal(h_T[:, 0], [2.625, 1.25])
    # reverse: row 1 reads t=1 (1.0) then t=0 (0.5 + 0.5); its padded step stays 0
    y, h_T = ref.rnn(x, [[0.5]], [[0.5]], activation="relu", lengths=lengths, reverse=True)
    assert np.array_equal(y[:, :, 0], [[1.5, 1.0], [2.0, 1.0], [2.0, 0.0]])
    assert np.array_equal(h_T[:, 0], [1.5, 1.0])


def test_lengths_out_of_range():
    x = np.zeros((3, 2, 1))
    for bad in ([0, 1], [1, 4], [-1, 2]):
        with pytest.raises(ValueError, match="lengths"):
            ref.rnn(x, [[1.0]], [[1.0]], lengths=bad)
    with pytest.raises(ValueError, match="lengths"):
        ref.rnn(np.zeros((3, 1)), [[1.0]], [[1.0]], lengths=[3])


def test_matrix_step_by_hand():
    # T = 1, B = 2, I = 3, H = 2: each output an explicit sum
    rng = np.random.default_rng(0)
    x, W_x, W_y = rng.normal(size=(1, 2, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    b, h0 = rng.normal(size=2), rng.normal(size=(2, 2))
    y, h_T = ref.rnn(x, W_x, W_y, b, h0)
    for r in range(2):
        for j in range(2):
            z = sum(x[0, r, i] * W_x[i, j] for i in range(3)) + \
                sum(h0[r, k] * W_y[k, j] for k in range(2)) + b[j]
            assert abs(y[0, r, j] - math.tanh(z)) < 1e-14
    assert np.array_equal(y[0], h_T)


def same(a, b):
    """Equal up to float64 summation order (BLAS picks different kernels per batch size)."""
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-14, atol=1e-15)


def test_layouts_agree():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3, 4))
    W_x, W_y, b, h0 = rng.normal(size=(4, 6)), rng.normal(size=(6, 6)) / 3, rng.normal(size=6), rng.normal(size=(3, 6))
    y, h = ref.rnn(x, W_x, W_y, b, h0)
    yb, hb = ref.rnn(x.transpose(1, 0, 2), W_x, W_y, b, h0, batch_first=True)
    assert np.array_equal(yb, y.transpose(1, 0, 2)) and np.array_equal(hb, h)
    for r in range(3):
        yu, hu = ref.rnn(x[:, r], W_x, W_y, b, h0[r])
        assert same(yu, y[:, r]) and same(hu, h[r])


@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_equal_truncated_sequences(reverse):
    rng = np.random.default_rng(2)
    T, B, I, H = 6, 4, 3, 5
    x = rng.normal(size=(T, B, I))
    W_x, W_y, b, h0 = rng.normal(size=(I, H)), rng.normal(size=(H, H)) / 3, rng.normal(size=H), rng.normal(size=(B, H))
    lengths = np.array([6, 1, 3, 5])
    y, h = ref.rnn(x, W_x, W_y, b, h0, lengths=lengths, reverse=reverse)
    for r, n in enumerate(lengths):
        yr, hr = ref.rnn(x[:n, r], W_x, W_y, b, h0[r], reverse=reverse)
        if reverse:   # reverse over the valid part = forward over the flipped valid part
            yf, hf = ref.rnn(x[:n, r][::-1], W_x, W_y, b, h0[r])
            assert same(yr, yf[::-1]) and same(hr, hf)
        assert same(y[:n, r], yr) and same(h[r], hr)
        assert np.all(y[n:, r] == 0)


def _scalar_layer(weights, num_layers, bidirectional, nonlinearity="relu", batch_first=False):
    return SimpleNamespace(num_layers=num_layers, hidden_size=1, bidirectional=bidirectional,
                           nonlinearity=nonlinearity, bias=True, batch_first=batch_first,
                           **{k: np.array(v, dtype=float) for k, v in weights.items()})


BIDIR2 = dict(
    w_x_l0=[[0.5]], w_y_l0=[[0.5]], b_l0=[0.0],
    w_x_l0_reverse=[[1.0]], w_y_l0_reverse=[[0.25]], b_l0_reverse=[0.5],
    w_x_l1=[[1.0], [0.5]], w_y_l1=[[0.5]], b_l1=[1.0],
    w_x_l1_reverse=[[-1.0], [1.0]], w_y_l1_reverse=[[1.0]], b_l1_reverse=[0.0],
)


def test_forward_two_layers_bidirectional_by_hand():
    layer = _scalar_layer(BIDIR2, 2, True)
    # layer 0 forward: 0.5, 1 + 0.25 = 1.25;  backward: t1 = 2 + 0.5 = 2.5, t0 = 1 + 0.625 + 0.5 = 2.125
    # layer 1 input [f, b]: [[0.5, 2.125], [1.25, 2.5]]
    # layer 1 forward: 0.5 + 1.0625 + 1 = 2.5625, 1.25 + 1.25 + 1.28125 + 1 = 4.78125
    # layer 1 backward: t1 = -1.25 + 2.5 = 1.25, t0 = -0.5 + 2.125 + 1.25 = 2.875
    y, h_n = ref.forward(layer, np.array([[1.0], [2.0]]))                 # unbatched (T=2, I=1)
    assert np.array_equal(y, [[2.5625, 2.875], [4.78125, 1.25]])
    assert np.array_equal(h_n, [[1.25], [2.125], [4.78125], [2.875]])  # layer-major, direction-minor
    yb, hb = ref.forward(layer, np.array([[[1.0]], [[2.0]]]))            # batched (T, B=1, I)
    assert np.array_equal(yb[:, 0], y) and np.array_equal(hb[:, 0], h_n)


def test_forward_h0_order_by_hand():
    layer = _scalar_layer({k: v for k, v in BIDIR2.items() if "l0" in k}, 1, True, batch_first=True)
    # forward from h0 = 1: 0.5 + 0.5 = 1.0, 1 + 0.5 = 1.5; backward from h0 = 2: 2 + 0.5 + 0.5 = 3, 1 + 0.75 + 0.5 = 2.25
    y, h_n = ref.forward(layer, np.array([[[1.0], [2.0]]]), h0=np.array([[[1.0]], [[2.0]]]))
    assert y.shape == (1, 2, 2)                                           # batch_first (B, T, 2H)
    assert np.array_equal(y[0], [[1.0, 2.25], [1.5, 3.0]])
    assert np.array_equal(h_n[:, 0, 0], [1.5, 2.25])


def test_forward_lengths_bidirectional_by_hand():
    layer = _scalar_layer({k: v for k, v in BIDIR2.items() if "l0" in k}, 1, True)
    x = np.array([[1.0, 1.0], [2.0, 7.0]])[:, :, None]                  # row 1 has one valid step
    y, h_n = ref.forward(layer, x, lengths=[2, 1])
    assert np.array_equal(y[:, 0], [[0.5, 2.125], [1.25, 2.5]])
    assert np.array_equal(y[:, 1], [[0.5, 1.5], [0.0, 0.0]])            # backward starts at t=0
    assert np.array_equal(h_n[:, :, 0], [[1.25, 0.5], [2.125, 1.5]])


def test_float32_baseline_is_float32():
    rng = np.random.default_rng(3)
    x, W_x, W_y = rng.normal(size=(4, 2, 3)), rng.normal(size=(3, 5)), rng.normal(size=(5, 5))
    y32, h32 = ref.rnn(x, W_x, W_y, dtype=np.float32)
    y64, h64 = ref.rnn(x, W_x, W_y)
    assert y32.dtype == np.float32 and h32.dtype == np.float32 and y64.dtype == np.float64
    assert 0 < np.abs(y32 - y64).max() < 1e-5


def test_forward_h0_order_two_layers_by_hand():
    layer = _scalar_layer(BIDIR2, 2, True)
    # h0 = [l0 fwd, l0 bwd, l1 fwd, l1 bwd] = [1, 2, 0.5, 0.25]
    # l0 fwd: 0.5 + 0.5 = 1.0, 1 + 0.5 = 1.5;  l0 bwd: t1 = 2 + 0.5 + 0.5 = 3.0, t0 = 1 + 0.75 + 0.5 = 2.25
    # l1 fwd: 1.0 + 1.125 + 0.25 + 1 = 3.375, 1.5 + 1.5 + 1.6875 + 1 = 5.6875
    # l1 bwd: t1 = -1.5 + 3.0 + 0.25 = 1.75, t0 = -1.0 + 2.25 + 1.75 = 3.0
    y, h_n = ref.forward(layer, np.array([[1.0], [2.0]]), h0=np.array([[1.0], [2.0], [0.5], [0.25]]))
    assert np.array_equal(y, [[3.375, 3.0], [5.6875, 1.75]])
    assert np.array_equal(h_n[:, 0], [1.5, 2.25, 5.6875, 3.0])
