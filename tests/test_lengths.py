"""Variable lengths (DESIGN.md section 2): exact zeros past the end, h_n at the last
valid step, the backward direction over each sequence's own valid steps."""

import numpy as np
import pytest

import elman
from helpers import assert_close, check_layer, check_rnn, ref, rng_for, uniform


def _per_sequence_oracle(layer, x, h0, lengths):
    """Expected y, h_n by running the oracle on each sequence alone, truncated to its
    length, with no lengths at all (independent of the oracle's masking code)."""
    T, B = x.shape[:2]
    D = 2 if layer.bidirectional else 1
    y = np.zeros((T, B, D * layer.hidden_size))
    h_n = np.zeros((D * layer.num_layers, B, layer.hidden_size))
    for b, n in enumerate(lengths):
        yb, hb = ref.forward(layer, x[:n, b], h0[:, b])              # unbatched (n, I)
        y[:n, b], h_n[:, b] = yb, hb
    return y, h_n


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (2, True), (3, False)])
def test_lengths_equal_truncated_sequences(num_layers, bidirectional, dtype):
    T, B, I, H = 9, 6, 5, 8
    layer = elman.RNN(I, H, num_layers, bidirectional=bidirectional, dtype=dtype, seed=11)
    rng = rng_for("trunc", num_layers, bidirectional, dtype)
    D = 2 if bidirectional else 1
    x = uniform(rng, (T, B, I), 1.0, dtype)
    h0 = uniform(rng, (D * num_layers, B, H), 1.0, dtype)
    lengths = np.array([9, 1, 4, 8, 2, 9])
    y, h_n = layer(x, h0, lengths=lengths)
    ey, eh = _per_sequence_oracle(layer, x, h0, lengths)
    ny = nh = None
    if dtype == np.float32:
        ny, nh = ref.forward(layer, x, h0, lengths, dtype=np.float32)
    assert_close(y, ey, ny, dtype=dtype, what="y")
    assert_close(h_n, eh, nh, dtype=dtype, what="h_n")
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0), f"row {b}: output past length {n} not exactly 0"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_content_is_ignored(bidirectional, dtype):
    """Whatever sits past lengths[b] (here NaN and 1e30) must not reach any output."""
    T, B, I, H = 7, 4, 3, 5
    layer = elman.RNN(I, H, 2, bidirectional=bidirectional, dtype=dtype, seed=12)
    rng = rng_for("pad", bidirectional, dtype)
    x = uniform(rng, (T, B, I), 1.0, dtype)
    lengths = np.array([7, 3, 1, 5])
    check_layer(layer, x, lengths=lengths)
    dirty = x.copy()
    dirty[3:, 1] = np.nan
    dirty[1:, 2] = 1e30
    dirty[5:, 3, 0] = -np.inf
    y, h_n = layer(dirty, lengths=lengths)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(h_n))
    check_layer(layer, x, lengths=lengths, result=(y, h_n))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_lengths_equal_no_lengths(dtype):
    T, B, I, H = 6, 3, 4, 5
    layer = elman.RNN(I, H, 2, bidirectional=True, dtype=dtype, seed=13)
    x = uniform(rng_for("full", dtype), (T, B, I), 1.0, dtype)
    check_layer(layer, x, lengths=np.full(B, T))
    check_layer(layer, x, lengths=[T] * B)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_batch_first(bidirectional):
    T, B, I, H = 8, 5, 3, 4
    layer = elman.RNN(I, H, 2, batch_first=True, bidirectional=bidirectional, dtype=np.float64, seed=14)
    x = uniform(rng_for("bf", bidirectional), (B, T, I), 1.0, np.float64)
    check_layer(layer, x, lengths=np.array([1, 8, 3, 7, 2], dtype=np.int32))


def test_lengths_one_everywhere():
    T, B, I, H = 5, 4, 3, 6
    layer = elman.RNN(I, H, bidirectional=True, dtype=np.float64, seed=15)
    x = uniform(rng_for("ones"), (T, B, I), 1.0, np.float64)
    y, h_n = layer(x, lengths=np.ones(B, dtype=np.int64))
    # with one valid step both directions read only x[0]: check against the T=1 oracle
    ey, eh = ref.forward(layer, x[:1])
    assert_close(y[:1], ey, dtype=np.float64)
    assert_close(h_n, eh, dtype=np.float64, what="h_n")
    assert np.all(y[1:] == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reverse", [False, True])
def test_functional_lengths_equal_truncated(reverse, dtype):
    T, B, I, H = 10, 5, 4, 7
    rng = rng_for("ftrunc", reverse, dtype)
    x = uniform(rng, (T, B, I), 1.0, dtype)
    W_x, W_y = uniform(rng, (I, H), 0.5, dtype), uniform(rng, (H, H), 0.4, dtype)
    b, h0 = uniform(rng, (H,), 0.5, dtype), uniform(rng, (B, H), 1.0, dtype)
    lengths = np.array([10, 1, 6, 2, 9])
    y, h_T = elman.rnn(x, W_x, W_y, b, h0, lengths=lengths, reverse=reverse)
    ey, eh = np.zeros((T, B, H)), np.zeros((B, H))
    for r, n in enumerate(lengths):
        ey[:n, r], eh[r] = ref.rnn(x[:n, r], W_x, W_y, b, h0[r], reverse=reverse)
    ny, nh = ref.rnn(x, W_x, W_y, b, h0, lengths=lengths, reverse=reverse, dtype=np.float32)
    assert_close(y, ey, ny, dtype=dtype)
    assert_close(h_T, eh, nh, dtype=dtype, what="h_T")
    for r, n in enumerate(lengths):
        assert np.all(y[n:, r] == 0)
    check_rnn(elman.rnn, x, W_x, W_y, b, h0, lengths=lengths, reverse=reverse, batch_first=False)
