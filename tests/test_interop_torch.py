"""PyTorch interop: elman.from_torch (nn.RNN with every option, nn.RNNCell) against torch's
own outputs, PackedSequence against elman's lengths, to_torch round trips, zero-copy
arrays both ways, and the errors for what elman cannot import."""

import numpy as np
import pytest

import elman
from elman import _checks
from helpers import rng_for, uniform

torch = pytest.importorskip("torch", reason="torch is not installed")
nn = torch.nn
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
T, B, I, H = 7, 4, 5, 6


def torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def assert_same(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_rnn_every_option(num_layers, bidirectional, batch_first, bias, nonlinearity, dtype):
    torch.manual_seed(0)
    module = nn.RNN(I, H, num_layers, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional, dropout=0.5 if num_layers > 1 else 0.0,
                    dtype=torch_dtype(dtype)).eval()
    layer = elman.from_torch(module)
    assert (layer.num_layers, layer.bidirectional, layer.batch_first, layer.bias,
            layer.nonlinearity, layer.dtype) == (num_layers, bidirectional, batch_first, bias,
                                                 nonlinearity, np.dtype(dtype))
    rng = rng_for("torch", num_layers, bidirectional, batch_first, bias, nonlinearity, dtype)
    x = uniform(rng, (B, T, I) if batch_first else (T, B, I), 1.5, dtype)
    h0 = uniform(rng, (num_layers * (2 if bidirectional else 1), B, H), 1.0, dtype)
    with torch.no_grad():
        y_t, h_t = module(torch.from_numpy(x), torch.from_numpy(h0))
    y, h_n = layer(x, h0)
    assert_same(y, y_t, dtype)
    assert_same(h_n, h_t, dtype)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_sequence_equals_lengths(bidirectional, batch_first):
    torch.manual_seed(1)
    module = nn.RNN(I, H, 2, bidirectional=bidirectional, batch_first=batch_first).eval()
    layer = elman.from_torch(module)
    x = uniform(rng_for("packed", bidirectional, batch_first), (B, T, I) if batch_first else (T, B, I))
    lengths = np.array([3, T, 1, 5])
    packed = nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                               batch_first=batch_first, enforce_sorted=False)
    with torch.no_grad():
        out, h_t = module(packed)
    y_t, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    y, h_n = layer(x, lengths=lengths)
    assert_same(y, y_t, np.float32)
    assert_same(h_n, h_t, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_rnn_cell(bias, nonlinearity, dtype):
    torch.manual_seed(2)
    cell = nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity, dtype=torch_dtype(dtype))
    layer = elman.from_torch(cell)
    rng = rng_for("cell", bias, nonlinearity, dtype)
    x, h = uniform(rng, (B, I), 1.5, dtype), uniform(rng, (B, H), 1.0, dtype)
    with torch.no_grad():
        expected = cell(torch.from_numpy(x), torch.from_numpy(h))
    assert_same(layer.step(x, h[None])[0], expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_torch_elman_torch(dtype):
    torch.manual_seed(3)
    module = nn.RNN(I, H, 2, nonlinearity="relu", bidirectional=True, batch_first=True,
                    dtype=torch_dtype(dtype)).eval()
    back = elman.from_torch(module).to_torch()
    assert isinstance(back, nn.RNN) and not back.training
    assert (back.num_layers, back.nonlinearity, back.bidirectional, back.batch_first) == (2, "relu", True, True)
    x = torch.from_numpy(uniform(rng_for("rt", dtype), (B, T, I), 1.0, dtype))
    with torch.no_grad():
        for a, b in zip(module(x), back(x)):
            np.testing.assert_allclose(b.numpy(), a.numpy(), **TOL[dtype])
    for name, w in elman.from_torch(back).weights().items():  # weights survive exactly
        np.testing.assert_array_equal(w, elman.from_torch(module).weights()[name])


def test_elman_to_torch_to_elman_is_exact():
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=4)
    again = elman.from_torch(layer.to_torch())
    for name, w in layer.weights().items():
        np.testing.assert_array_equal(again.weights()[name], w)


def test_zero_copy_input_and_output():
    t = torch.randn(T, B, I)
    a = _checks.real_array("x", t, np.dtype(np.float32))
    assert a.ctypes.data == t.data_ptr(), "a float32 CPU tensor must be read in place"
    layer = elman.RNN(I, H, seed=5)
    y, h_n = layer(t)
    np.testing.assert_array_equal(y, layer(t.numpy())[0])
    y_t = torch.from_dlpack(y)
    assert y_t.data_ptr() == y.ctypes.data, "torch.from_dlpack must take the output without a copy"


def test_tensors_with_a_pending_negation_are_read_negated():
    """torch's .imag of a conjugate is a real tensor whose negation is pending (is_neg()):
    its __dlpack__ gives the memory without it, and elman read x, h0 and weights with the
    wrong sign."""
    torch.manual_seed(0)

    def negated(*shape):
        t = torch.randn(*shape, dtype=torch.complex64).conj().imag
        assert t.is_neg()
        return t, t.resolve_neg().numpy()

    (x, x_np), (h0, h0_np), (w, w_np) = negated(T, B, I), negated(1, B, H), negated(H, H)
    layer = elman.RNN(I, H, seed=5)
    layer.w_y_l0 = w
    np.testing.assert_array_equal(layer.w_y_l0, w_np)
    expected = layer(x_np, h0_np)
    for got, want in zip(layer(x, h0), expected):
        np.testing.assert_array_equal(got, want)


def test_tensor_that_requires_grad_is_type_error_naming_the_argument():
    """torch refuses to show such a tensor as an array (RuntimeError); elman says which
    argument it was, keeping torch's advice (detach)."""
    layer = elman.RNN(I, H, seed=5)
    x = torch.randn(T, B, I, requires_grad=True)
    h0 = torch.zeros(1, B, H, requires_grad=True)
    with pytest.raises(TypeError, match="x: expected an array of real numbers.*detach"):
        layer(x)
    with pytest.raises(TypeError, match="h0: expected an array of real numbers.*detach"):
        layer(x.detach(), h0)
    with pytest.raises(TypeError, match="x_t: expected an array of real numbers.*detach"):
        layer.step(x[0])
    with pytest.raises(TypeError, match="w_y_l0: expected an array of real numbers.*detach"):
        layer.w_y_l0 = torch.zeros(H, H, requires_grad=True)
    np.testing.assert_array_equal(layer(x.detach())[0], layer(x.detach().numpy())[0])


@pytest.mark.parametrize("module,match", [
    (lambda: nn.LSTM(I, H), "torch.nn.RNN or torch.nn.RNNCell"),
    (lambda: nn.GRU(I, H), "torch.nn.RNN or torch.nn.RNNCell"),
    (lambda: nn.Linear(I, H), "torch.nn.RNN or torch.nn.RNNCell"),
])
def test_unsupported_module(module, match):
    with pytest.raises(TypeError, match=match):
        elman.from_torch(module())


@pytest.mark.parametrize("module", [lambda: nn.RNN(I, H, device="meta"), lambda: nn.RNNCell(I, H, device="meta")])
def test_meta_module_is_refused(module):
    with pytest.raises(ValueError, match="module: .*meta device"):
        elman.from_torch(module())


def test_dropout_in_training_mode_is_refused():
    module = nn.RNN(I, H, 2, dropout=0.3)
    with pytest.raises(ValueError, match="dropout=0.3 in training mode"):
        elman.from_torch(module)
    elman.from_torch(module.eval())


def test_to_torch_refuses_what_torch_lacks():
    with pytest.raises(ValueError, match="tanh and relu"):
        elman.RNN(I, H, nonlinearity="sigmoid").to_torch()
    with pytest.raises(ValueError, match="clip"):
        elman.RNN(I, H, clip=1.0).to_torch()
