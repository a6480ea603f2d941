"""Layer attributes, weight names/shapes, assignment, initialisation, seeds, repr."""

import gc
import weakref

import numpy as np
import pytest

import elman
from helpers import check_layer, ref, rng_for, uniform


def expected_names(L, bidirectional, bias):
    names = []
    for k in range(L):
        for suffix in ("", "_reverse") if bidirectional else ("",):
            names += [f"w_x_l{k}{suffix}", f"w_y_l{k}{suffix}"] + ([f"b_l{k}{suffix}"] if bias else [])
    return names


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L,bidirectional,bias", [(1, False, True), (2, True, True), (3, False, False), (2, True, False)])
def test_weight_names_shapes_dtypes(L, bidirectional, bias, dtype):
    I, H = 5, 7
    layer = elman.RNN(I, H, L, bias=bias, bidirectional=bidirectional, dtype=dtype, seed=1)
    D = 2 if bidirectional else 1
    w = layer.weights()
    assert isinstance(w, dict)
    assert sorted(w) == sorted(expected_names(L, bidirectional, bias))
    for name, arr in w.items():
        k = int(name.split("_l")[1][0])
        shape = {"w_x": (I if k == 0 else D * H, H), "w_y": (H, H), "b": (H,)}[name.split("_l")[0]]
        assert arr.shape == shape, name
        assert arr.dtype == dtype, name
        assert np.array_equal(getattr(layer, name), arr), name


def test_attributes():
    layer = elman.RNN(80, 256, num_layers=2, nonlinearity="relu", bias=False, batch_first=True,
                      bidirectional=True, dtype=np.float64, seed=0)
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (80, 256, 2)
    assert layer.nonlinearity == "relu" and layer.bias is False and layer.batch_first is True
    assert layer.bidirectional is True and layer.num_directions == 2
    assert isinstance(layer.dtype, np.dtype) and layer.dtype == np.float64
    d = elman.RNN(3, 4)
    assert (d.num_layers, d.nonlinearity, d.bias, d.batch_first, d.bidirectional) == (1, "tanh", True, False, False)
    assert d.num_directions == 1 and d.dtype == np.float32


def test_repr():
    layer = elman.RNN(input_size=80, hidden_size=256, num_layers=2, seed=0)
    assert repr(layer) == ("RNN(input_size=80, hidden_size=256, num_layers=2, nonlinearity='tanh', "
                           "bias=True, batch_first=False, bidirectional=False, dtype=float32)")
    layer = elman.RNN(3, 5, 1, "relu", False, True, True, dtype=np.float64)
    assert repr(layer) == ("RNN(input_size=3, hidden_size=5, num_layers=1, nonlinearity='relu', "
                           "bias=False, batch_first=True, bidirectional=True, dtype=float64)")


def test_weights_read_only():
    layer = elman.RNN(3, 4, seed=0)
    w = layer.w_y_l0
    assert not w.flags.writeable
    with pytest.raises(ValueError):
        w[0, 0] = 1.0
    for arr in layer.weights().values():
        assert not arr.flags.writeable


@pytest.mark.parametrize("name", ["w_y_l0", "b_l0", "hidden_size", "_weights", "_net"])
def test_attributes_cannot_be_deleted(name):
    layer = elman.RNN(3, 4, seed=0)
    x = np.ones((2, 1, 3), np.float32)
    before = layer(x)[0]
    with pytest.raises(AttributeError, match=f"{name}: RNN attributes cannot be deleted"):
        delattr(layer, name)
    np.testing.assert_array_equal(layer(x)[0], before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H", [1, 16, 257])
def test_init_distribution(H, dtype):
    layer = elman.RNN(64, H, 2, bidirectional=True, dtype=dtype, seed=2)
    bound = 1 / np.sqrt(H)
    allw = np.concatenate([a.ravel().astype(np.float64) for a in layer.weights().values()])
    assert np.all(np.abs(allw) <= bound * (1 + 1e-6))
    # uniform on [-bound, bound]: fills the interval, mean ~ 0, variance ~ bound^2 / 3;
    # thresholds at ~5 standard errors for n samples, so any seed passes
    n = allw.size
    assert allw.max() > bound * (1 - 20 / n) and allw.min() < -bound * (1 - 20 / n)
    assert abs(allw.mean()) < 5 * bound / np.sqrt(3 * n)
    assert abs(allw.var() / (bound ** 2 / 3) - 1) < 5 * np.sqrt(0.8 / n)
    # weights are not all the same tensor repeated
    assert not np.array_equal(layer.w_y_l0, layer.w_y_l0_reverse)
    assert not np.array_equal(layer.w_y_l0, layer.w_y_l1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seeds(dtype):
    a = elman.RNN(6, 5, 2, bidirectional=True, dtype=dtype, seed=42).weights()
    b = elman.RNN(6, 5, 2, bidirectional=True, dtype=dtype, seed=42).weights()
    c = elman.RNN(6, 5, 2, bidirectional=True, dtype=dtype, seed=43).weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert all(not np.array_equal(a[k], c[k]) for k in a)
    n1 = elman.RNN(6, 5, dtype=dtype).weights()
    n2 = elman.RNN(6, 5, dtype=dtype).weights()
    assert not np.array_equal(n1["w_y_l0"], n2["w_y_l0"])     # seed=None: fresh entropy


def test_seeded_layers_compute_the_same():
    x = uniform(rng_for("seedcall"), (5, 2, 6), 1.0, np.float32)
    y1, _ = elman.RNN(6, 5, 2, seed=7)(x)
    y2, _ = elman.RNN(6, 5, 2, seed=7)(x)
    assert np.array_equal(y1, y2)


BIDIR2 = dict(
    w_x_l0=[[0.5]], w_y_l0=[[0.5]], b_l0=[0.0],
    w_x_l0_reverse=[[1.0]], w_y_l0_reverse=[[0.25]], b_l0_reverse=[0.5],
    w_x_l1=[[1.0], [0.5]], w_y_l1=[[0.5]], b_l1=[1.0],
    w_x_l1_reverse=[[-1.0], [1.0]], w_y_l1_reverse=[[1.0]], b_l1_reverse=[0.0],
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assigned_weights_by_hand(dtype):
    """Hand-computed (exact binary fractions; see test_reference.py for the derivation)."""
    layer = elman.RNN(1, 1, 2, nonlinearity="relu", bidirectional=True, dtype=dtype, seed=0)
    for name, value in BIDIR2.items():
        setattr(layer, name, np.array(value))                  # float64 in, converted
    y, h_n = layer(np.array([[1.0], [2.0]], dtype=dtype))
    assert y.dtype == dtype
    assert np.array_equal(y, [[2.5625, 2.875], [4.78125, 1.25]])
    assert np.array_equal(h_n, [[1.25], [2.125], [4.78125], [2.875]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assignment_used_by_next_call(dtype):
    I, H = 4, 6
    layer = elman.RNN(I, H, 2, bidirectional=True, dtype=dtype, seed=3)
    rng = rng_for("assign", dtype)
    x = uniform(rng, (5, 3, I), 1.0, dtype)
    layer(x)                                                     # a call before the change
    new = {"w_x_l1_reverse": uniform(rng, (2 * H, H), 0.4, np.float64),
           "w_y_l0": uniform(rng, (H, H), 0.4, np.float64),
           "b_l1": uniform(rng, (H,), 0.4, np.float64)}
    for name, arr in new.items():
        setattr(layer, name, arr)
    for name, arr in new.items():
        got = getattr(layer, name)
        assert got.dtype == dtype and np.array_equal(got, arr.astype(dtype))
        arr[...] = 0.0                                           # the layer holds its own copy
        assert np.any(getattr(layer, name) != 0)
    check_layer(layer, x)


def test_assignment_and_pickles_free_the_old_engine():
    """The engine's network (packed weights, perhaps on a GPU) built for the old weights is
    freed at an assignment, not kept until the next call; a pickle of an older elman
    (with _net and no _version in its state) still runs."""
    layer = elman.RNN(4, 6, seed=3)
    x = np.ones((2, 1, 4), np.float32)
    layer(x)
    old = weakref.ref(layer._network())
    layer.w_y_l0 = layer.w_y_l0 * 0.5
    gc.collect()
    assert old() is None, "the old network outlived the assignment"
    older = elman.RNN.__new__(elman.RNN)
    state = layer.__getstate__()
    assert "_version" not in state
    older.__setstate__(dict(state, _net=None))
    np.testing.assert_array_equal(older(x)[0], layer(x)[0])


def test_assignment_accepts_non_contiguous_and_lists():
    layer = elman.RNN(3, 4, dtype=np.float64, seed=4)
    big = uniform(rng_for("nc"), (8, 8), 0.5, np.float64)
    layer.w_y_l0 = big[::2, 1::2]
    assert np.array_equal(layer.w_y_l0, big[::2, 1::2])
    layer.w_x_l0 = big[:4, :3].T                                 # transposed view (3, 4)
    assert np.array_equal(layer.w_x_l0, big[:4, :3].T)
    layer.b_l0 = [0.5, -0.5, 0.25, 0.0]
    assert np.array_equal(layer.b_l0, [0.5, -0.5, 0.25, 0.0])
    check_layer(layer, uniform(rng_for("nc2"), (4, 2, 3), 1.0, np.float64))


@pytest.mark.parametrize("name,shape", [("w_y_l0", (4, 5)), ("w_y_l0", (4, 4, 1)), ("w_x_l0", (4, 3)),
                                        ("b_l0", (5,)), ("b_l0", (1, 4)), ("w_x_l1", (3, 4)),
                                        ("w_y_l0_reverse", (3, 3))])
def test_assignment_wrong_shape(name, shape):
    layer = elman.RNN(3, 4, 2, bidirectional=True, seed=5)
    before = getattr(layer, name).copy()
    with pytest.raises(ValueError) as raised:
        setattr(layer, name, np.zeros(shape))
    assert str(raised.value) == f"{name}: expected shape {before.shape}, got {shape}"
    assert np.array_equal(getattr(layer, name), before)         # unchanged after the error


def test_assignment_wrong_dtype():
    layer = elman.RNN(3, 4, seed=5)
    with pytest.raises(TypeError, match="w_y_l0"):
        layer.w_y_l0 = np.zeros((4, 4), dtype=np.complex64)
    with pytest.raises(TypeError, match="w_x_l0"):
        layer.w_x_l0 = np.array([["a"] * 4] * 3)


def test_oracle_reads_weights_not_engine():
    """The oracle uses only attributes; check it against a hand-built scalar case."""
    layer = elman.RNN(1, 1, dtype=np.float64, seed=0)
    layer.w_x_l0, layer.w_y_l0, layer.b_l0 = [[0.5]], [[0.5]], [0.0]
    y, _ = ref.forward(layer, np.array([[1.0], [2.0], [4.0]]))
    assert np.allclose(y[:, 0], [np.tanh(0.5), np.tanh(1 + 0.5 * np.tanh(0.5)),
                                 np.tanh(2 + 0.5 * np.tanh(1 + 0.5 * np.tanh(0.5)))], rtol=0, atol=1e-15)
    check_layer(layer, np.array([[1.0], [2.0], [4.0]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assigned_weights_h0_by_hand(dtype):
    """As test_reference.test_forward_h0_order_two_layers_by_hand, through the engine."""
    layer = elman.RNN(1, 1, 2, nonlinearity="relu", bidirectional=True, dtype=dtype, seed=0)
    for name, value in BIDIR2.items():
        setattr(layer, name, np.array(value))
    y, h_n = layer(np.array([[1.0], [2.0]], dtype=dtype), np.array([[1.0], [2.0], [0.5], [0.25]], dtype=dtype))
    assert np.array_equal(y, [[3.375, 3.0], [5.6875, 1.75]])
    assert np.array_equal(h_n[:, 0], [1.5, 2.25, 5.6875, 3.0])
    # batched, with lengths: row 1 has only its first step (backward starts at t=0)
    x = np.array([[[1.0], [1.0]], [[2.0], [7.0]]], dtype=dtype)
    layer1 = elman.RNN(1, 1, 1, nonlinearity="relu", bidirectional=True, dtype=dtype, seed=0)
    for name, value in BIDIR2.items():
        if "l0" in name:
            setattr(layer1, name, np.array(value))
    y, h_n = layer1(x, lengths=[2, 1])
    assert np.array_equal(y[:, 0], [[0.5, 2.125], [1.25, 2.5]])
    assert np.array_equal(y[:, 1], [[0.5, 1.5], [0.0, 0.0]])
    assert np.array_equal(h_n[:, :, 0], [[1.25, 0.5], [2.125, 1.5]])
