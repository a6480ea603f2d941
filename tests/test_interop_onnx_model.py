"""ONNX models: RNN.to_onnx runs in ONNX Runtime with elman's outputs; elman.from_onnx reads
them (and hand-made models) back; unsupported nodes are refused with the reason."""

import numpy as np
import pytest

import elman
from helpers import rng_for, uniform

onnx = pytest.importorskip("onnx", reason="onnx is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def run_onnxruntime(model, x):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["Y", "h_n"], {"X": x})


@pytest.mark.parametrize("options", [
    dict(),
    dict(num_layers=3, bidirectional=True),
    dict(num_layers=2, batch_first=True, bias=False, nonlinearity="relu"),
    dict(nonlinearity="leaky_relu", activation_alpha=0.2, clip=2.0, bidirectional=True),
    dict(nonlinearity="hard_sigmoid", num_layers=2),
    dict(nonlinearity="softplus"),
    dict(nonlinearity="scaled_tanh", activation_alpha=1.5, activation_beta=0.5, batch_first=True),
])
def test_to_onnx_runs_in_onnxruntime_with_elmans_outputs(options, tmp_path):
    layer = elman.RNN(5, 8, seed=7, **options)
    path = tmp_path / "model.onnx"
    layer.to_onnx(path)
    x = uniform(rng_for("to_onnx", repr(options)), (3, 6, 5) if layer.batch_first else (6, 3, 5), 1.5)
    y_ort, h_ort = run_onnxruntime(onnx.load(path), x)
    y, h_n = layer(x)
    np.testing.assert_allclose(y_ort, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_ort, h_n, rtol=1e-5, atol=1e-6)
    back = elman.from_onnx(path)  # elman -> ONNX -> elman: same options, same weights
    for option in ("num_layers", "bidirectional", "batch_first", "bias", "nonlinearity", "dtype"):
        assert getattr(back, option) == getattr(layer, option), option
    for option in ("activation_alpha", "activation_beta", "clip"):  # float32 in ONNX
        want = getattr(layer, option)
        assert getattr(back, option) == (None if want is None else float(np.float32(want))), option
    for name, w in layer.weights().items():
        np.testing.assert_array_equal(back.weights()[name], w)


@pytest.mark.parametrize("opset,error", [("22", TypeError), (22.0, TypeError), (True, TypeError),
                                          (None, TypeError), (6, ValueError), (10**3, ValueError)])
def test_to_onnx_opset_checked(opset, error):
    # (NumPy's, protobuf's or onnx's errors came first, or a model ONNX Runtime cannot run)
    with pytest.raises(error, match="^opset: expected an integer in \\[7, "):
        elman.RNN(2, 3, seed=0).to_onnx(opset=opset)


def rnn_model(attrs, D=1, H=4, I=3, extra_inputs=(), constant_weights=True):
    rng = np.random.default_rng(0)
    W, R = rng.uniform(-1, 1, (D, H, I)).astype(np.float32), rng.uniform(-1, 1, (D, H, H)).astype(np.float32)
    B = rng.uniform(-1, 1, (D, 2 * H)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"))]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])]
    if not constant_weights:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [D, H, I]))
        inits = inits[1:]
    node = helper.make_node("RNN", ["X", "W", "R", "B", *extra_inputs], ["Y", "Y_h"], name="rnn",
                            hidden_size=H, **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]), (W, R, B)


def test_from_onnx_hand_made_node_equals_onnx_rnn():
    model, (W, R, B) = rnn_model(dict(direction="bidirectional", activations=["Elu", "Elu"],
                                      activation_alpha=[0.5, 0.5], clip=3.0), D=2)
    layer = elman.from_onnx(model)
    assert (layer.nonlinearity, layer.activation_alpha, layer.clip, layer.bidirectional) == ("elu", 0.5, 3.0, True)
    x = uniform(rng_for("from_onnx"), (5, 2, 3), 2.0)
    Y, Y_h = elman.onnx.rnn(x, W, R, B, direction="bidirectional", activations=["Elu", "Elu"],
                            activation_alpha=[0.5, 0.5], clip=3.0)
    y, h_n = layer(x)
    np.testing.assert_allclose(y, Y.transpose(0, 2, 1, 3).reshape(5, 2, 8), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_n, Y_h, rtol=1e-6, atol=1e-7)


def test_from_onnx_layout_1_is_batch_first():
    model, (W, R, B) = rnn_model(dict(layout=1))
    layer = elman.from_onnx(model)
    assert layer.batch_first
    x = uniform(rng_for("layout1"), (2, 5, 3), 1.5)  # (B, T, I)
    Y, Y_h = elman.onnx.rnn(x, W, R, B, layout=1)
    y, h_n = layer(x)
    np.testing.assert_allclose(y, Y[:, :, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_n[0], Y_h[:, 0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("attrs,kwargs,match", [
    (dict(direction="reverse"), {}, "direction='reverse'"),
    (dict(direction="bidirectional", activations=["Tanh", "Relu"]), dict(D=2), "different activation per direction"),
    (dict(activations=["Swish"]), {}, "activations"),
    ({}, dict(constant_weights=False), "not an initializer"),
])
def test_from_onnx_refuses_with_reason(attrs, kwargs, match):
    model, _ = rnn_model(attrs, **kwargs)
    with pytest.raises(ValueError, match=match):
        elman.from_onnx(model)


def with_initializer(model, name, value):
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


@pytest.mark.parametrize("initial_h", [np.full((1, 2, 4), 0.5, np.float32), None])  # None: a graph input
def test_from_onnx_refuses_an_initial_h_that_may_not_be_zero(initial_h):
    # (it was ignored: the layer started from zeros where the model did not)
    model, _ = rnn_model({}, extra_inputs=["", "h0"])
    if initial_h is None:
        model.graph.input.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "N", 4]))
    else:
        with_initializer(model, "h0", initial_h)
    with pytest.raises(ValueError, match="takes initial_h \\('h0'\\)"):
        elman.from_onnx(model)


def test_from_onnx_takes_a_zero_initial_h():
    model, (W, R, B) = rnn_model({}, extra_inputs=["", "h0"])
    model.graph.node.insert(0, helper.make_node("ConstantOfShape", ["h0_shape"], ["h0_zeros"]))
    model.graph.node.insert(1, helper.make_node("Expand", ["h0_zeros", "h0_shape"], ["h0"]))
    with_initializer(model, "h0_shape", np.array([1, 2, 4], np.int64))
    x = uniform(rng_for("zero initial_h"), (5, 2, 3), 1.5)
    Y, Y_h = elman.onnx.rnn(x, W, R, B)
    y, h_n = elman.from_onnx(model)(x)
    np.testing.assert_allclose(y, Y[:, 0], rtol=1e-6, atol=1e-7)
    ones = numpy_helper.from_array(np.ones(1, np.float32))
    model.graph.node[0].attribute.append(helper.make_attribute("value", ones))  # (protobuf inserted a copy)
    with pytest.raises(ValueError, match="takes initial_h"):  # ones, expanded
        elman.from_onnx(model)


def test_from_onnx_initial_h_zeros_that_an_input_overrides_or_a_cycle():
    model, _ = rnn_model({}, extra_inputs=["", "h0"])
    with_initializer(model, "h0", np.zeros((1, 2, 4), np.float32))
    elman.from_onnx(model)  # zeros
    model.graph.input.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "N", 4]))
    with pytest.raises(ValueError, match="takes initial_h"):  # an input of that name overrides them
        elman.from_onnx(model)
    model, _ = rnn_model({}, extra_inputs=["", "h0"])
    model.graph.node.extend([helper.make_node("Identity", ["a"], ["h0"]), helper.make_node("Identity", ["h0"], ["a"])])
    with pytest.raises(ValueError, match="takes initial_h"):  # not RecursionError
        elman.from_onnx(model)


def test_from_onnx_refuses_nodes_that_do_not_make_a_stack():
    """Ops between the RNN nodes, or nodes side by side, are not one stack (they were read
    as one, the ops left out)."""
    model, _ = rnn_model({}, H=3)  # I = H: the second node's weights fit either way
    first = model.graph.node[0]
    first.output[0] = "Y0"
    second = onnx.NodeProto()
    second.CopyFrom(first)
    second.name, second.output[:] = "rnn2", ["Y", "Y_h2"]
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    model.graph.initializer.append(axes)
    for between, ok in (([helper.make_node("Squeeze", ["Y0", "axes"], ["X1"])], True),
                        ([helper.make_node("Squeeze", ["Y0", "axes"], ["S"]),
                          helper.make_node("Neg", ["S"], ["X1"])], False),
                        ([helper.make_node("Identity", ["X"], ["X1"])], False)):  # side by side
        del model.graph.node[1:]
        model.graph.node.extend(between)
        second.input[0] = "X1"
        model.graph.node.append(second)
        if ok:
            assert elman.from_onnx(model).num_layers == 2
        else:
            with pytest.raises(ValueError, match="does not read the output Y of 'rnn'"):
                elman.from_onnx(model)


def test_from_onnx_refuses_sequence_lens():
    model, _ = rnn_model({}, extra_inputs=["lengths"])
    with_initializer(model, "lengths", np.array([5, 3], np.int32))
    with pytest.raises(ValueError, match="takes sequence_lens"):
        elman.from_onnx(model)


def test_from_onnx_checks_the_shapes_of_b_and_hidden_size():
    model, (W, R, B) = rnn_model({})
    model.graph.initializer[2].CopyFrom(numpy_helper.from_array(np.concatenate([B, B[:, :1]], 1), "B"))
    with pytest.raises(ValueError, match=r"B \(1, 9\)"):  # (its 9th value was added to every bias)
        elman.from_onnx(model)
    model, _ = rnn_model({})
    model.graph.node[0].attribute[0].i = 7  # hidden_size, against W's 4
    with pytest.raises(ValueError, match="hidden_size 7"):
        elman.from_onnx(model)
    model, _ = rnn_model(dict(direction="sideways"))
    with pytest.raises(ValueError, match="direction 'sideways'"):
        elman.from_onnx(model)


def test_from_onnx_unknown_attribute_and_no_rnn():
    model, _ = rnn_model({})
    model.graph.node[0].attribute.append(helper.make_attribute("input_forget", 1))
    with pytest.raises(ValueError, match=r"attributes \['input_forget'\]"):
        elman.from_onnx(model)
    model.graph.node[0].op_type = "GRU"
    with pytest.raises(ValueError, match="no RNN node"):
        elman.from_onnx(model)


def test_from_onnx_of_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX model"):
        elman.from_onnx(path)


@pytest.mark.parametrize("not_a_file", [123, None, 1.5, ["m.onnx"]])
def test_onnx_path_that_is_not_a_file_names_the_argument(not_a_file):
    # (onnx took an int for a file descriptor: OSError "Bad file descriptor"; None: a
    # TypeError naming nothing)
    with pytest.raises(TypeError, match="^model_or_path: expected a file name .* or an onnx.ModelProto, got"):
        elman.from_onnx(not_a_file)
    if not_a_file is not None:  # (None: no file)
        with pytest.raises(TypeError, match="^path: expected a file name"):
            elman.RNN(3, 4).to_onnx(not_a_file)


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation notices
@pytest.mark.parametrize("options", [dict(num_layers=2, bidirectional=True), dict(num_layers=3),
                                     dict(num_layers=2, batch_first=True),  # a Transpose before
                                     dict(bidirectional=True, batch_first=True)])
@pytest.mark.parametrize("dynamic_batch", [False, True])  # True: initial_h from a Slice of zeros
def test_from_onnx_of_a_torch_export_equals_torch(dynamic_batch, options):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    import io
    module = torch.nn.RNN(3, 4, nonlinearity="relu", **options).eval()
    batch_axis = 0 if module.batch_first else 1
    shape = [5, 5, 3]
    shape[batch_axis] = 2
    buffer = io.BytesIO()
    torch.onnx.export(module, (torch.randn(*shape),), buffer, dynamo=False, input_names=["X"],
                      dynamic_axes={"X": {batch_axis: "B"}} if dynamic_batch else None)
    layer = elman.from_onnx(onnx.load_from_string(buffer.getvalue()))
    assert (layer.num_layers, layer.bidirectional, layer.batch_first, layer.nonlinearity) == (
        module.num_layers, module.bidirectional, module.batch_first, "relu")
    shape[batch_axis] = 3 if dynamic_batch else 2
    x = torch.from_numpy(uniform(rng_for("torch-export", repr(options)), tuple(shape), 1.5))
    with torch.no_grad():
        y_t, h_t = module(x)
    y, h_n = layer(x)
    np.testing.assert_allclose(y, y_t.numpy(), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(h_n, h_t.numpy(), rtol=2e-5, atol=2e-6)
