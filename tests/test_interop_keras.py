"""Keras interop: elman.from_keras(SimpleRNN | Bidirectional(SimpleRNN)) returns what the
Keras layer returns, for every option: activation, use_bias, go_backwards,
return_sequences, return_state, masks (right padding), merge modes."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras", reason="keras is not installed")

import elman  # noqa: E402
from helpers import rng_for, uniform  # noqa: E402

# Keras's variables warn under NumPy 2 when converted; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
B, T, I, H = 3, 6, 4, 5
TOL = dict(rtol=2e-5, atol=2e-6)


def outputs_list(out):
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def compare(keras_layer, x, mask=None, initial_state=None):
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if initial_state is not None:
        kwargs["initial_state"] = initial_state
    expected = outputs_list(keras_layer(x, **kwargs))
    actual = outputs_list(elman.from_keras(keras_layer)(x, **kwargs))
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, **TOL)


def lengths_mask():
    return np.arange(T)[None, :] < np.array([T, 2, 4])[:, None]


# zero_output_for_mask: outputs past a sequence's end are 0 rather than its last one; without
# return_sequences, Keras's one output is then 0 for a sequence that ends early (elman gave
# its last state).
@pytest.mark.parametrize("masked", [False, (True, False), (True, True)], ids=["unmasked", "masked",
                                                                             "masked-zero_output"])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_simple_rnn_options(use_bias, go_backwards, return_sequences, return_state, masked):
    zero_output = bool(masked) and masked[1]
    layer = keras.layers.SimpleRNN(H, use_bias=use_bias, go_backwards=go_backwards,
                                   return_sequences=return_sequences, return_state=return_state,
                                   zero_output_for_mask=zero_output, bias_initializer="uniform", seed=1)
    rng = rng_for("keras", use_bias, go_backwards, return_sequences, return_state, masked)
    x = uniform(rng, (B, T, I), 1.5)
    layer(x)  # build
    compare(layer, x, mask=lengths_mask() if masked else None, initial_state=uniform(rng, (B, H)))


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear", "softsign", "softplus",
                                        "elu", "leaky_relu", "hard_sigmoid"])
def test_simple_rnn_activations(activation):
    layer = keras.layers.SimpleRNN(H, activation=activation, return_sequences=True,
                                   bias_initializer="uniform", seed=2)
    x = uniform(rng_for("keras-act", activation), (B, T, I), 1.5)
    layer(x)
    compare(layer, x)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional(merge_mode, return_sequences, return_state, masked):
    layer = keras.layers.Bidirectional(
        keras.layers.SimpleRNN(H, return_sequences=return_sequences, return_state=return_state,
                               bias_initializer="uniform", seed=3), merge_mode=merge_mode)
    rng = rng_for("keras-bi", merge_mode, return_sequences, return_state, masked)
    x = uniform(rng, (B, T, I), 1.5)
    layer(x)
    compare(layer, x, mask=lengths_mask() if masked else None,
            initial_state=[uniform(rng, (B, H)), uniform(rng, (B, H))])


def test_refusals():
    x = np.zeros((B, T, I), np.float32)
    with pytest.raises(TypeError, match="SimpleRNN"):
        elman.from_keras(keras.layers.GRU(H))
    with pytest.raises(ValueError, match="not built"):
        elman.from_keras(keras.layers.SimpleRNN(H))
    gelu = keras.layers.SimpleRNN(H, activation="gelu")
    gelu(x)
    with pytest.raises(ValueError, match="activation 'gelu'"):
        elman.from_keras(gelu)
    layer = keras.layers.SimpleRNN(H)
    layer(x)
    with pytest.raises(ValueError, match="mask: .*prefix"):
        elman.from_keras(layer)(x, mask=np.array([[True, False, True, True, True, True]] * B))
    for mask in (np.full((B, T), 0.5), np.full((B, T), 2), ["yes"] * T):  # not read by truthiness
        with pytest.raises(TypeError, match="^mask: expected (booleans|an array)"):
            elman.from_keras(layer)(x, mask=mask)
    ones = np.ones((B, T), np.int64)
    np.testing.assert_array_equal(elman.from_keras(layer)(x, mask=ones), elman.from_keras(layer)(x))
    with pytest.raises(ValueError, match="^x: expected at least one step and one sequence"):  # not NumPy's
        elman.from_keras(layer)(x[:0], mask=ones[:0].astype(bool))


def test_bad_initial_states():
    x = np.zeros((B, T, I), np.float32)
    layer = keras.layers.SimpleRNN(H)
    layer(x)
    with pytest.raises(ValueError, match=r"initial_state: expected shape \(3, 5\) \(B, H\)"):
        elman.from_keras(layer)(x, initial_state=np.zeros((B, H + 1), np.float32))
    both = keras.layers.Bidirectional(keras.layers.SimpleRNN(H))
    both(x)
    with pytest.raises(ValueError, match=r"initial_state: expected \[forward, backward\]"):
        elman.from_keras(both)(x, initial_state=[np.zeros((B, H), np.float32)])
    with pytest.raises(ValueError, match=r"initial_state: expected shape"):  # not np.stack's error
        elman.from_keras(both)(x, initial_state=[np.zeros((B, H), np.float32), np.zeros((B, H + 1), np.float32)])
