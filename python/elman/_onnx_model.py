"""ONNX models in (elman.from_onnx) and out (RNN.to_onnx), through the standard RNN operator.

to_onnx writes one RNN node per layer with layout 0 (the only layout ONNX Runtime runs),
explicit activation_alpha/beta (ONNX Runtime's defaults differ from the specification's),
and Transpose/Reshape nodes that give the outputs elman's shapes:
  input  "X"   (T, B, I), or (B, T, I) for a batch_first layer;
  output "Y"   (T, B, D*H), or (B, T, D*H);  "h_n" (L*D, B, H), as layer(X) returns them.
from_onnx reads the RNN nodes of a model, in graph order, as the layers of one stack
(each must read the previous one's output), with their weights from the model's
initializers.
"""

from __future__ import annotations

import numpy as np

from . import _activations, _checks
from ._layer import RNN
from .onnx import DIRECTIONS, activations_from_attributes

_BATCH_FIRST = "elman.batch_first"
_ATTRIBUTES = {"activations", "activation_alpha", "activation_beta", "clip", "direction",
               "hidden_size", "layout"}


def _onnx():
    return _checks.framework("onnx", "ONNX model")


def to_onnx(layer: RNN, path=None, *, opset: int = 22):
    onnx = _onnx()
    # From RNN-7 (RNN-1 differs, and ONNX Runtime runs it no more) to the newest opset that
    # this onnx defines.
    opsets = f"an integer in [7, {onnx.defs.onnx_opset_version()}]"
    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected {opsets}, got {opset!r}")
    if not 7 <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset: expected {opsets}, got {opset}")
    from onnx import TensorProto, helper, numpy_helper
    elem = TensorProto.DOUBLE if layer.dtype == np.float64 else TensorProto.FLOAT
    D, H = layer.num_directions, layer.hidden_size
    act = layer._activation
    attrs = dict(hidden_size=H, activations=[_activations.ONNX_NAMES[act.name]] * D,
                 direction="bidirectional" if D == 2 else "forward")
    if act.alpha is not None:
        attrs["activation_alpha"] = [act.alpha] * D
    if act.beta is not None:
        attrs["activation_beta"] = [act.beta] * D
    if act.clip is not None:
        attrs["clip"] = act.clip
    nodes, inits = [], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_directions")]
    x = "X"
    if layer.batch_first:
        nodes.append(helper.make_node("Transpose", ["X"], ["X_time_major"], perm=[1, 0, 2]))
        x = "X_time_major"
    states = []
    for k in range(layer.num_layers):
        suffixes = ("", "_reverse")[:D]
        w = np.stack([getattr(layer, f"w_x_l{k}{s}").T for s in suffixes])
        r = np.stack([getattr(layer, f"w_y_l{k}{s}").T for s in suffixes])
        inputs = [x, f"W_l{k}", f"R_l{k}"]
        inits += [numpy_helper.from_array(np.ascontiguousarray(w), f"W_l{k}"),
                  numpy_helper.from_array(np.ascontiguousarray(r), f"R_l{k}")]
        if layer.bias:
            b = np.stack([np.concatenate([getattr(layer, f"b_l{k}{s}"), np.zeros(H, layer.dtype)])
                          for s in suffixes])
            inputs.append(f"B_l{k}")
            inits.append(numpy_helper.from_array(b, f"B_l{k}"))
        nodes.append(helper.make_node("RNN", inputs, [f"Y_l{k}", f"h_n_l{k}"], name=f"rnn_l{k}",
                                      **attrs))
        # [T, D, B, H] -> [T, B, D, H] -> [T, B, D*H]: directions side by side, as elman
        nodes.append(helper.make_node("Transpose", [f"Y_l{k}"], [f"Y_l{k}_tbdh"], perm=[0, 2, 1, 3]))
        last = k + 1 == layer.num_layers
        x = "Y_time_major" if last and layer.batch_first else ("Y" if last else f"X_l{k + 1}")
        nodes.append(helper.make_node("Reshape", [f"Y_l{k}_tbdh", "merge_directions"], [x]))
        states.append(f"h_n_l{k}")
    if layer.batch_first:
        nodes.append(helper.make_node("Transpose", ["Y_time_major"], ["Y"], perm=[1, 0, 2]))
    nodes.append(helper.make_node("Concat", states, ["h_n"], axis=0))
    x_dims = ["B", "T", layer.input_size] if layer.batch_first else ["T", "B", layer.input_size]
    y_dims = ["B", "T", D * H] if layer.batch_first else ["T", "B", D * H]
    graph = helper.make_graph(
        nodes, "elman_rnn", [helper.make_tensor_value_info("X", elem, x_dims)],
        [helper.make_tensor_value_info("Y", elem, y_dims),
         helper.make_tensor_value_info("h_n", elem, [layer.num_layers * D, "B", H])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="elman")
    # The RNN nodes say nothing of the Transposes around them: remember it for from_onnx.
    helper.set_model_props(model, {_BATCH_FIRST: str(int(layer.batch_first))})
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, _checks.file_argument("path", path, "write"))
    return model


def _load(onnx, path):
    """onnx.load, with a file that is not an ONNX model named in a ValueError (protobuf's
    own DecodeError names neither the file nor what it expected)."""
    from google.protobuf.message import DecodeError
    try:
        return onnx.load(path)
    except DecodeError as e:
        raise ValueError(f"{path}: not a readable ONNX model: {e}") from e


def from_onnx(model_or_path) -> RNN:
    onnx = _onnx()
    from onnx import helper, numpy_helper
    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else \
        _load(onnx, _checks.file_argument("model_or_path", model_or_path, "read", ", or an onnx.ModelProto"))
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "RNN" and n.domain in ("", "ai.onnx")]
    if not nodes:
        raise ValueError("model: has no RNN node")
    layers = []
    for node in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        unknown = set(attrs) - _ATTRIBUTES
        if unknown:
            raise ValueError(f"model: RNN node {node.name!r} has attributes {sorted(unknown)} that "
                             f"the RNN operator does not define")
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in DIRECTIONS:
            raise ValueError(f"model: RNN node {node.name!r} has direction {direction!r}; the RNN "
                             f"operator defines {', '.join(map(repr, DIRECTIONS))}")
        if direction == "reverse":
            raise ValueError(f"model: RNN node {node.name!r} runs direction='reverse' alone; elman.RNN "
                             f"has forward and bidirectional layers (elman.onnx.rnn runs it)")
        D = 2 if direction == "bidirectional" else 1
        names = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])] or None
        acts = activations_from_attributes(D, names, attrs.get("activation_alpha"),
                                           attrs.get("activation_beta"), attrs.get("clip"))
        if len(set(acts)) != 1:
            raise ValueError(f"model: RNN node {node.name!r} has a different activation per direction "
                             f"({names}); elman.RNN has one for all (elman.onnx.rnn runs it)")
        # A layer runs the lengths and starts from the h0 of each call: a node's own are not
        # part of a layer, but for a zero initial_h (as torch's exporter writes).
        for i, what in ((4, "sequence_lens"), (5, "initial_h")):
            name = node.input[i] if len(node.input) > i else ""
            if name and not (what == "initial_h" and _all_zeros(model.graph, initializers, name)):
                raise ValueError(f"model: RNN node {node.name!r} takes {what} ({name!r}); elman.RNN "
                                 f"takes lengths and h0 at each call (elman.onnx.rnn takes {what})")
        weights = []
        for i, what in ((1, "W"), (2, "R"), (3, "B")):
            name = node.input[i] if len(node.input) > i else ""
            if name and name not in initializers:
                raise ValueError(f"model: RNN node {node.name!r}: {what} ({name!r}) is not an "
                                 f"initializer; elman imports constant weights only")
            weights.append(initializers.get(name) if name else None)
        W = weights[0]
        if W is None or W.ndim != 3:
            got = "no W" if W is None else f"W of shape {W.shape}"
            raise ValueError(f"model: RNN node {node.name!r} has {got}; the RNN operator's W is "
                             f"(num_directions, hidden_size, input_size)")
        if "hidden_size" in attrs and attrs["hidden_size"] != W.shape[1]:
            raise ValueError(f"model: RNN node {node.name!r} has hidden_size {attrs['hidden_size']}, "
                             f"but W of shape {W.shape} (num_directions, hidden_size, input_size)")
        layers.append((node, D, attrs.get("layout", 0), acts[0], *weights))
    # The nodes must make one stack: each reads the previous one's Y with its directions
    # side by side (ops elsewhere do not change the stack; ops between its layers would).
    for previous, node in zip(nodes, nodes[1:]):
        if not _reads_layer_output(model.graph, initializers, node.input[0], previous.output[0],
                                   layers[0][2]):
            raise ValueError(f"model: RNN node {node.name!r} does not read the output Y of "
                             f"{previous.name!r} as the next layer of a stack does (through a "
                             f"Squeeze, or a Transpose and Reshape); elman.RNN stacks layers only")
    # batch_first: as to_onnx records it, or as the Transpose before the first node says
    # (torch's exporter writes one).
    before = _producer(model.graph, nodes[0].input[0])
    batch_first = ({p.key: p.value for p in model.metadata_props}.get(_BATCH_FIRST) == "1"
                   or _is_op(before, "Transpose") and _attribute(before, "perm") == [1, 0, 2])
    return _stack(layers, batch_first)


def _producer(graph, name: str):
    """The node that outputs tensor `name` (None for a graph input or an initializer)."""
    return next((n for n in graph.node if name in n.output), None)


def _is_op(node, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


def _attribute(node, name: str):
    from onnx import helper
    found = [helper.get_attribute_value(a) for a in node.attribute if a.name == name]
    return list(found[0]) if found else None


def _constant(graph, initializers, name: str):
    """The value of tensor `name` as a list, if an initializer or a Constant node gives it."""
    from onnx import numpy_helper
    if name in initializers and name not in {i.name for i in graph.input}:
        return initializers[name].tolist()
    node = _producer(graph, name)
    if _is_op(node, "Constant"):
        values = [a.t for a in node.attribute if a.name == "value"]
        return numpy_helper.to_array(values[0]).tolist() if values else None
    return None


def _reads_layer_output(graph, initializers, x: str, y: str, layout: int) -> bool:
    """Whether tensor x is the RNN output y ([T, D, B, H], or [B, T, D, H] with layout 1)
    as the next layer's input ([T, B, D*H] or [B, T, D*H]): a Squeeze of the directions'
    axis (one direction), or a Reshape to [0, 0, -1] after (layout 0) a Transpose that puts
    the directions beside H."""
    node = _producer(graph, x)
    axis = 1 if layout == 0 else 2
    if _is_op(node, "Squeeze"):
        axes = _attribute(node, "axes") if len(node.input) < 2 else _constant(graph, initializers, node.input[1])
        return node.input[0] == y and axes in ([axis], [axis - 4])
    if not (_is_op(node, "Reshape") and _constant(graph, initializers, node.input[1]) == [0, 0, -1]):
        return False
    if layout == 1:
        return node.input[0] == y
    swap = _producer(graph, node.input[0])
    return _is_op(swap, "Transpose") and _attribute(swap, "perm") == [0, 2, 1, 3] and swap.input[0] == y


# Nodes whose outputs are all zeros when their first input is (shapes and indices aside).
_ZEROS_IN_ZEROS_OUT = {"Cast", "Expand", "Gather", "Identity", "Reshape", "Slice", "Split", "Squeeze",
                       "Tile", "Transpose", "Unsqueeze"}


def _all_zeros(graph, initializers, name: str, seen=frozenset()) -> bool:
    """Whether the tensor `name` is all zeros whatever the model's inputs: a constant of
    zeros, perhaps reshaped, sliced or expanded (torch's exporter writes an initial_h so)."""
    from onnx import numpy_helper
    if name in seen:  # a cycle
        return False
    value = _constant(graph, initializers, name)  # (None for a graph input)
    if value is not None:
        return not np.any(value)
    producer = _producer(graph, name)
    if _is_op(producer, "ConstantOfShape"):
        values = [a.t for a in producer.attribute if a.name == "value"]
        return not values or not np.any(numpy_helper.to_array(values[0]))  # default: a zero
    return (producer is not None and producer.op_type in _ZEROS_IN_ZEROS_OUT
            and producer.domain in ("", "ai.onnx")
            and _all_zeros(graph, initializers, producer.input[0], seen | {name}))


def _stack(layers, batch_first: bool) -> RNN:
    """One elman.RNN from the (node, D, layout, activation, W, R, B) of successive nodes;
    batch_first with layout 1, or as from_onnx found it (the metadata, a Transpose)."""
    node0, D, layout, act, W0, _, B0 = layers[0]
    H, dtype = W0.shape[1], np.float64 if W0.dtype == np.float64 else np.float32
    weights = {}
    for k, (node, d, lay, a, W, R, B) in enumerate(layers):
        if (d, lay, a, B is None) != (D, layout, act, B0 is None) or W.shape[1] != H:
            raise ValueError(f"model: RNN node {node.name!r} differs from {node0.name!r} in direction, "
                             f"layout, activation, bias or hidden size; elman.RNN stacks equal layers")
        if (W.shape[0] != D or R is None or R.shape != (D, H, H) or (k > 0 and W.shape[2] != D * H)
                or (B is not None and B.shape != (D, 2 * H))):
            raise ValueError(f"model: RNN node {node.name!r} has weights of shapes W {W.shape}, R "
                             f"{None if R is None else R.shape}, B {None if B is None else B.shape}, "
                             f"which do not make layer {k} of a stack (W (D, H, I), R (D, H, H), B "
                             f"(D, 2H), D = {D})")
        for d, suffix in enumerate(("", "_reverse")[:D]):
            weights[f"w_x_l{k}{suffix}"] = W[d].T.astype(dtype)
            weights[f"w_y_l{k}{suffix}"] = R[d].T.astype(dtype)
            if B is not None:
                weights[f"b_l{k}{suffix}"] = (B[d, :H].astype(np.float64) + B[d, H:]).astype(dtype)
    return RNN.from_weights(weights, input_size=W0.shape[2], hidden_size=H, num_layers=len(layers),
                            nonlinearity=act.name, bias=B0 is not None, batch_first=layout == 1 or batch_first,
                            bidirectional=D == 2, dtype=dtype, activation_alpha=act.alpha,
                            activation_beta=act.beta, clip=act.clip)
