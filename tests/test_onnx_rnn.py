"""elman.onnx.rnn, the ONNX RNN operator: against the oracle written from the ONNX
definitions (every activation, direction, layout, clip, sequence_lens, initial_h), against
ONNX Runtime (layout 0: it refuses layout 1) and against onnx.reference (which knows only
Tanh and Affine and ignores clip and sequence_lens)."""

import numpy as np
import pytest

import elman
import elman.onnx
from helpers import assert_close, assert_padding_zero, ref, rng_for, uniform

ONNX_NAMES = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
              "HardSigmoid", "Elu", "Softsign", "Softplus"]
SNAKE = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Affine": "affine",
         "LeakyRelu": "leaky_relu", "ThresholdedRelu": "thresholded_relu",
         "ScaledTanh": "scaled_tanh", "HardSigmoid": "hard_sigmoid", "Elu": "elu",
         "Softsign": "softsign", "Softplus": "softplus"}
T, B, I, H = 6, 4, 3, 5


def problem(key, D, dtype=np.float32, layout=0, with_lens=False, with_h0=False):
    rng = rng_for(*key)
    X = uniform(rng, (T, B, I), 2.0, dtype)
    args = dict(X=X, W=uniform(rng, (D, H, I), 0.6, dtype), R=uniform(rng, (D, H, H), 0.4, dtype),
                B=uniform(rng, (D, 2 * H), 0.5, dtype),
                sequence_lens=np.array([T, 2, 1, 5], np.int32) if with_lens else None,
                initial_h=uniform(rng, (D, B, H), 1.0, dtype) if with_h0 else None)
    if layout == 1:
        args["X"] = X.transpose(1, 0, 2).copy()
        if with_h0:
            args["initial_h"] = args["initial_h"].transpose(1, 0, 2).copy()
    return args


def params_for(names, alphas, betas):
    """Per direction (alpha, beta) as the spec's consumption order assigns them."""
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for n in names:
        takes = ref.PARAMETERS[SNAKE[n]]
        out.append((alphas.pop(0) if "alpha" in takes and alphas else None,
                    betas.pop(0) if "beta" in takes and betas else None))
    return out


def oracle(args, direction, layout, activations, alphas=None, betas=None, clip=None, dtype=np.float64):
    """The operator from elman.reference, one direction at a time."""
    D = 2 if direction == "bidirectional" else 1
    X, h0 = args["X"], args["initial_h"]
    if layout == 1:
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
    params = params_for(activations, alphas, betas)
    ys, hs = [], []
    for d in range(D):
        b = args["B"][d, :H].astype(np.float64) + args["B"][d, H:]
        y, h = ref.rnn(X, args["W"][d].T, args["R"][d].T, b, None if h0 is None else h0[d],
                       activation=SNAKE[activations[d]], activation_alpha=params[d][0],
                       activation_beta=params[d][1], clip=clip, lengths=args["sequence_lens"],
                       reverse=direction == "reverse" or d == 1, dtype=dtype)
        ys.append(y)
        hs.append(h)
    Y, Y_h = np.stack(ys, 1), np.stack(hs, 0)
    if layout == 1:
        return Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2)
    return Y, Y_h


def check(args, direction, layout, activations, alphas=None, betas=None, clip=None):
    Y, Y_h = elman.onnx.rnn(**args, activations=activations, activation_alpha=alphas,
                            activation_beta=betas, clip=clip, direction=direction, layout=layout)
    dtype = args["X"].dtype
    expected = oracle(args, direction, layout, activations, alphas, betas, clip)
    naive = oracle(args, direction, layout, activations, alphas, betas, clip, dtype=np.float32)
    assert_close(Y, expected[0], naive[0], dtype=dtype, what="Y")
    assert_close(Y_h, expected[1], naive[1], dtype=dtype, what="Y_h")
    return Y, Y_h


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("name", ONNX_NAMES)
def test_every_activation_direction_layout(name, direction, layout):
    D = 2 if direction == "bidirectional" else 1
    args = problem(("onnx", name, direction, layout), D, layout=layout, with_lens=True, with_h0=True)
    Y, _ = check(args, direction, layout, [name] * D, clip=None)
    Y_t = Y if layout == 0 else Y.transpose(1, 2, 0, 3)  # -> [T, D, B, H]
    for d in range(D):
        assert_padding_zero(Y_t[:, d], args["sequence_lens"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [None, 0.25, 3.0])
def test_mixed_activations_params_and_clip(clip, dtype):
    args = problem(("mixed", clip, dtype), 2, dtype=dtype, with_h0=True)
    check(args, "bidirectional", 0, ["HardSigmoid", "LeakyRelu"], alphas=[0.3, 0.2], betas=[0.4],
          clip=clip)
    check(args, "bidirectional", 0, ["Affine", "Elu"], alphas=[0.5], betas=[0.1], clip=clip)


def test_shapes_and_defaults():
    args = problem(("shapes",), 2)
    Y, Y_h = elman.onnx.rnn(args["X"], args["W"], args["R"], direction="bidirectional")
    assert Y.shape == (T, 2, B, H) and Y_h.shape == (2, B, H) and Y.dtype == np.float32
    Y1, Y_h1 = elman.onnx.rnn(args["X"].transpose(1, 0, 2), args["W"], args["R"],
                              direction="bidirectional", layout=1)
    assert Y1.shape == (B, T, 2, H) and Y_h1.shape == (B, 2, H)
    np.testing.assert_array_equal(Y1, Y.transpose(2, 0, 1, 3))


@pytest.mark.parametrize("kwargs,arg", [
    (dict(direction="both"), "direction"),
    (dict(layout=2), "layout"),
    (dict(activations=["Swish"]), "activations"),
    (dict(activations=["Tanh", "Tanh"]), "activations"),
    (dict(activations=["Tanh"], activation_alpha=[1.0]), "activation_alpha"),
    (dict(hidden_size=7), "hidden_size"),
    (dict(sequence_lens=np.array([0, 1, 2, 3])), "sequence_lens"),
    (dict(clip=-1.0), "clip"),
    (dict(B=np.zeros((1, H))), "B"),
])
def test_bad_arguments_name_the_argument(kwargs, arg):
    args = problem(("bad",), 1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{arg}:"):
        elman.onnx.rnn(**args)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(layout=True), "layout"),  # not read as layout 1
    (dict(layout=1.0), "layout"),
    (dict(layout="1"), "layout"),
    (dict(hidden_size=float(H)), "hidden_size"),
    (dict(hidden_size=True), "hidden_size"),
])
def test_attributes_of_the_wrong_type_name_the_argument(kwargs, arg):
    args = problem(("bad",), 1)
    args.update(kwargs)
    with pytest.raises(TypeError, match=f"^{arg}: expected"):
        elman.onnx.rnn(**args)


@pytest.mark.parametrize("arg,value,exc", [
    ("X", [[[0.0] * I] * B, [[0.0] * I] * (B - 1)], TypeError),  # ragged: no array at all
    ("R", "not an array", TypeError),
    ("initial_h", np.array([None]), TypeError),
    ("sequence_lens", np.ma.masked_array([T] * B, mask=[True] + [False] * (B - 1)), ValueError),
    ("W", np.ma.masked_array(np.zeros((1, H, I)), mask=True), ValueError),
])
def test_unreadable_arrays_name_the_argument(arg, value, exc):
    """An array argument that cannot be read (or whose mask would be dropped) is named
    before the arrays' common dtype is chosen."""
    args = problem(("bad",), 1, with_h0=True)
    args[arg] = value
    with pytest.raises(exc, match=f"^{arg}:"):
        elman.onnx.rnn(**args)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(activations="Tanh"), "activations"),  # list("Tanh") would be four names
    (dict(activations=["LeakyRelu"], activation_alpha=0.1), "activation_alpha"),
    (dict(activations=["Affine"], activation_beta=1), "activation_beta"),
])
def test_attribute_lists_given_as_scalars(kwargs, arg):
    args = problem(("bad",), 1)
    args.update(kwargs)
    with pytest.raises(TypeError, match=f"^{arg}: expected a list"):
        elman.onnx.rnn(**args)


# -- against ONNX Runtime ------------------------------------------------------------------

def run_onnxruntime(args, **attrs):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from onnx import TensorProto, helper
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    present = [n if args.get(n) is not None else "" for n in names]
    while present[-1] == "":
        present.pop()
    inputs = []
    for n in present:
        if n:
            a = args[n]
            elem = TensorProto.INT32 if n == "sequence_lens" else TensorProto.FLOAT
            inputs.append(helper.make_tensor_value_info(n, elem, list(a.shape)))
    node = helper.make_node("RNN", present, ["Y", "Y_h"], hidden_size=H, **attrs)
    graph = helper.make_graph([node], "rnn", inputs, [
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {n: args[n] for n in present if n})


def test_attribute_lists_given_as_arrays():
    # An array's truth value is not whether it is given: [0.0] was taken for none (the
    # default alpha, 0.01) and a longer array raised NumPy's "truth value is ambiguous".
    args = problem(("array attributes",), 2)
    as_lists = dict(activations=["LeakyRelu", "Affine"], activation_alpha=[0.0, 2.0], activation_beta=[0.5])
    as_arrays = dict(as_lists, activation_alpha=np.array([0.0, 2.0]), activation_beta=np.array([0.5]))
    expected = elman.onnx.rnn(**args, direction="bidirectional", **as_lists)
    got = elman.onnx.rnn(**args, direction="bidirectional", **as_arrays)
    np.testing.assert_array_equal(got[0], expected[0])
    check(args, "bidirectional", 0, as_lists["activations"], alphas=[0.0, 2.0], betas=[0.5])


def test_one_activation_serves_both_directions_with_its_parameters():
    # (the backward direction got ONNX's default alpha, 0.01; ONNX Runtime refuses one
    # activation for two directions)
    args = problem(("one activation",), 2)
    one = elman.onnx.rnn(**args, direction="bidirectional", activations=["LeakyRelu"], activation_alpha=[0.5])
    two = elman.onnx.rnn(**args, direction="bidirectional", activations=["LeakyRelu"] * 2,
                         activation_alpha=[0.5, 0.5])
    np.testing.assert_array_equal(one[0], two[0])
    with pytest.raises(ValueError, match="^activation_alpha: 1 more value"):
        elman.onnx.rnn(**args, direction="bidirectional", activations=["LeakyRelu"], activation_alpha=[0.5, 0.3])


def test_empty_batch_with_sequence_lens_names_x():
    # (NumPy's "zero-size array to reduction operation minimum" came first)
    args = problem(("empty batch",), 1)
    with pytest.raises(ValueError, match="^X: expected at least one step and one sequence"):
        elman.onnx.rnn(np.zeros((T, 0, I), np.float32), args["W"], args["R"],
                       sequence_lens=np.zeros(0, np.int64))


@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("name", ONNX_NAMES)
def test_equals_onnxruntime(name, direction, clip):
    D = 2 if direction == "bidirectional" else 1
    args = problem(("ort", name, direction, clip), D, with_lens=True, with_h0=True)
    # ONNX Runtime's defaults for alpha/beta differ from the spec's: give them explicitly.
    takes = ref.PARAMETERS[SNAKE[name]]
    attrs = dict(activations=[name] * D, direction=direction)
    if "alpha" in takes:
        attrs["activation_alpha"] = [0.3] * D
    if "beta" in takes:
        attrs["activation_beta"] = [0.2] * D
    if clip is not None:
        attrs["clip"] = clip
    Y_ort, Y_h_ort = run_onnxruntime(args, **attrs)
    Y, Y_h = elman.onnx.rnn(**args, **attrs)
    np.testing.assert_allclose(Y, Y_ort, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Y_h, Y_h_ort, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("name", ["Tanh", "Affine"])
def test_equals_onnx_reference(name, direction, layout):
    pytest.importorskip("onnx", reason="onnx is not installed")
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    D = 2 if direction == "bidirectional" else 1
    args = problem(("onnxref", name, direction, layout), D, dtype=np.float64, layout=layout, with_h0=True)
    attrs = dict(activations=[name] * D, direction=direction, layout=layout, hidden_size=H)
    if name == "Affine":
        # exact in float32, the type of ONNX's float attributes
        attrs.update(activation_alpha=[0.75] * D, activation_beta=[0.125] * D)
    node = helper.make_node("RNN", ["X", "W", "R", "B", "", "initial_h"], ["Y", "Y_h"], **attrs)
    feeds = {k: args[k] for k in ("X", "W", "R", "B", "initial_h")}
    Y_ref, Y_h_ref = ReferenceEvaluator(node).run(None, feeds)
    Y, Y_h = elman.onnx.rnn(**feeds, **attrs)
    np.testing.assert_allclose(Y, Y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Y_h, Y_h_ref, rtol=1e-12, atol=1e-12)
