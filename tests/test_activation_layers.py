"""Every ONNX activation, its alpha/beta and clip, through elman.RNN and elman.rnn, against
the oracle; and the checks of these arguments."""

import numpy as np
import pytest

import elman
from helpers import check_layer, check_rnn, ref, rng_for, uniform

NAMES = sorted(ref.PARAMETERS)
CUSTOM = {"affine": (0.5, 0.25), "leaky_relu": (0.2, None), "thresholded_relu": (0.1, None),
          "scaled_tanh": (1.5, 0.75), "hard_sigmoid": (0.3, 0.4), "elu": (0.5, None)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("name", NAMES)
def test_layer_every_activation(name, clip, dtype):
    alpha, beta = CUSTOM.get(name, (None, None))
    layer = elman.RNN(5, 16, num_layers=2, nonlinearity=name, bidirectional=True, dtype=dtype,
                      seed=3, activation_alpha=alpha, activation_beta=beta, clip=clip)
    rng = rng_for("act-layer", name, clip, dtype)
    x = uniform(rng, (9, 4, 5), 2.0, dtype)
    check_layer(layer, x, lengths=np.array([9, 4, 1, 7]))
    check_layer(layer, x, h0=uniform(rng, (4, 4, 16), 1.0, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_functional_every_activation(name, dtype):
    rng = rng_for("act-fn", name, dtype)
    x, W_x, W_y = uniform(rng, (7, 3, 4), 2.0, dtype), uniform(rng, (4, 8), 0.5, dtype), uniform(rng, (8, 8), 0.3, dtype)
    alpha, beta = CUSTOM.get(name, (None, None))
    check_rnn(elman.rnn, x, W_x, W_y, uniform(rng, (8,), 0.5, dtype), activation=name,
              activation_alpha=alpha, activation_beta=beta, clip=1.0, reverse=True)


def test_defaults_are_onnx_and_shown_in_repr_when_changed():
    layer = elman.RNN(2, 3, nonlinearity="leaky_relu")
    assert (layer.activation_alpha, layer.activation_beta, layer.clip) == (0.01, None, None)
    assert repr(layer).endswith("dtype=float32)")
    layer = elman.RNN(2, 3, nonlinearity="hard_sigmoid", activation_beta=0.25, clip=3)
    assert (layer.activation_alpha, layer.activation_beta, layer.clip) == (0.2, 0.25, 3.0)
    assert repr(layer).endswith("dtype=float32, activation_beta=0.25, clip=3.0)")


@pytest.mark.parametrize("kwargs,arg", [
    (dict(nonlinearity="Sigmoid"), "nonlinearity"),
    (dict(nonlinearity="tanh", activation_alpha=1.0), "activation_alpha"),
    (dict(nonlinearity="elu", activation_beta=1.0), "activation_beta"),
    (dict(nonlinearity="elu", activation_alpha=float("nan")), "activation_alpha"),
    (dict(clip=-1.0), "clip"),
    (dict(clip=float("inf")), "clip"),
])
def test_bad_activation_arguments(kwargs, arg):
    check_refused(ValueError, kwargs, arg)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(nonlinearity="affine", activation_beta="1"), "activation_beta"),
    (dict(nonlinearity="elu", activation_alpha=True), "activation_alpha"),
    (dict(clip=True), "clip"),
    (dict(clip="1"), "clip"),
    (dict(clip=1j), "clip"),
])
def test_activation_arguments_of_the_wrong_type(kwargs, arg):
    check_refused(TypeError, kwargs, arg)


def check_refused(error, kwargs, arg):
    """Both elman.RNN and elman.rnn raise `error`, naming the argument."""
    with pytest.raises(error, match=f"^{arg}:"):
        elman.RNN(2, 3, **kwargs)
    fn_kwargs = {("activation" if k == "nonlinearity" else k): v for k, v in kwargs.items()}
    with pytest.raises(error, match="^" + ("activation" if arg == "nonlinearity" else arg) + ":"):
        elman.rnn(np.zeros((2, 1, 2)), np.zeros((2, 3)), np.zeros((3, 3)), **fn_kwargs)


@pytest.mark.parametrize("nonlinearity,param", [("hard_sigmoid", "alpha"), ("scaled_tanh", "beta"),
                                                ("affine", "alpha")])
def test_parameters_beyond_float32_in_float32_arithmetic(nonlinearity, param):
    """In float32, 1e40 rounds to inf, and inf * 0 gave NaN where the formula gives a number
    (hard_sigmoid(0) = 0.5): refused there, naming the parameter; float64 runs it."""
    kwargs = {f"activation_{param}": 1e40}
    with pytest.raises(ValueError, match=f"^activation_{param}: 1e\\+40 is beyond float32's range"):
        elman.RNN(2, 3, nonlinearity=nonlinearity, **kwargs)
    f32 = (np.zeros((2, 1, 2), np.float32), np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=f"^activation_{param}:"):
        elman.rnn(*f32, activation=nonlinearity, **kwargs)
    onnx_name = elman._activations.ONNX_NAMES[nonlinearity]
    with pytest.raises(ValueError, match=f"^activation_{param}:"):
        elman.onnx.rnn(np.zeros((2, 1, 2), np.float32), np.zeros((1, 3, 2), np.float32),
                       np.zeros((1, 3, 3), np.float32), activations=[onnx_name], **{k: [v] for k, v in kwargs.items()})
    layer = elman.RNN(2, 3, nonlinearity=nonlinearity, dtype=np.float64, seed=0, **kwargs)
    x = np.zeros((2, 1, 2))
    check_layer(layer, x)
    assert np.isfinite(layer(x)[0]).all()
