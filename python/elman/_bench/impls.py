"""elman and its peers. Each build() does all one-time work (weight conversion,
compiling a graph), so that the run() it returns costs only what a user pays per call.

Every implementation is an ``Impl``: a name, the modules it needs and a
``build(weights, config) -> run`` function, where ``run(x)`` maps x (T, B, I)
float32 to y (T, B, H).
"""

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Impl:
    name: str
    modules: tuple        # what must import for it to run; their versions are reported
    build: Callable       # build(weights, config) -> run(x) -> y
    role: str = "peer"    # "elman", or "peer" (counts for the speed-up)


def build_elman(weights, config):
    import elman
    layer = elman.RNN(config.I, config.H)
    layer.w_x_l0, layer.w_y_l0, layer.b_l0 = weights.w_x, weights.w_y, weights.b
    layer(np.zeros((1, 1, config.I), np.float32))  # packs the weights, once
    return lambda x: layer(x)[0]


def build_numpy(weights, config):
    w_x, w_y, b = weights.w_x, weights.w_y, weights.b

    def run(x):
        # Same algorithm as elman: one GEMM for all input projections, then per step
        # one (B, H) x (H, H) product, written in place to avoid allocations.
        T, B, I = x.shape
        y = (x.reshape(T * B, I) @ w_x).reshape(T, B, -1)
        y += b
        acc = np.empty_like(y[0])
        np.tanh(y[0], out=y[0])
        for t in range(1, T):
            np.matmul(y[t - 1], w_y, out=acc)
            acc += y[t]
            np.tanh(acc, out=y[t])
        return y
    return run


def build_torch(weights, config):
    import torch
    torch.set_num_threads(config.threads)
    rnn = torch.nn.RNN(config.I, config.H, nonlinearity="tanh")
    with torch.no_grad():
        # torch keeps (out, in) matrices and two biases that it adds.
        rnn.weight_ih_l0.copy_(torch.from_numpy(weights.w_x.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(weights.w_y.T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(weights.b))
        rnn.bias_hh_l0.zero_()

    def run(x):
        with torch.inference_mode():
            return rnn(torch.from_numpy(x))[0].numpy()
    return run


def build_onnxruntime(weights, config):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    T, B, I, H = config.T, config.B, config.I, config.H
    # ONNX: W [D, H, I], R [D, H, H], B [D, 2H] = [input bias, recurrent bias].
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(weights.w_x.T[None]), "W"),
        numpy_helper.from_array(np.ascontiguousarray(weights.w_y.T[None]), "R"),
        numpy_helper.from_array(np.concatenate([weights.b, np.zeros_like(weights.b)])[None], "B"),
    ]
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    graph = helper.make_graph(
        [node], "elman_bench",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])],  # [T, D, B, H]
        initializer=initializers)
    # An old, fixed opset and IR version: any onnxruntime of the last years reads them.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"X": x})[0][:, 0]


def build_jax(weights, config):
    import jax
    import jax.numpy as jnp

    @jax.jit
    def forward(x, w_x, w_y, b):
        def step(h, xw_t):
            h = jnp.tanh(xw_t + h @ w_y)
            return h, h
        xw = x @ w_x + b                                   # one input GEMM for all steps
        h0 = jnp.zeros((x.shape[1], w_y.shape[0]), x.dtype)
        return jax.lax.scan(step, h0, xw)[1]

    params = [jax.device_put(w) for w in (weights.w_x, weights.w_y, weights.b)]
    return lambda x: np.asarray(forward(x, *params))      # np.asarray waits for the result


def build_keras(weights, config):
    import keras
    model = keras.Sequential([
        keras.Input((config.T, config.I), batch_size=config.B),
        keras.layers.SimpleRNN(config.H, activation="tanh", return_sequences=True),
    ])
    # Keras uses the seed's orientation: kernel (I, H), recurrent_kernel (H, H), bias (H,).
    model.layers[0].set_weights([weights.w_x, weights.w_y, weights.b])
    # Keras is batch-major; the two transposes are part of what a time-major caller pays.
    return lambda x: np.swapaxes(model.predict_on_batch(np.swapaxes(x, 0, 1)), 0, 1)


def choose_keras_backend():
    """Keras defaults to TensorFlow; fall back to another installed backend."""
    if "KERAS_BACKEND" in os.environ or importlib.util.find_spec("tensorflow"):
        return
    for backend in ("jax", "torch"):
        if importlib.util.find_spec(backend):
            os.environ["KERAS_BACKEND"] = backend
            return


IMPLS = [
    Impl("elman", ("elman",), build_elman, role="elman"),
    Impl("numpy", ("numpy",), build_numpy),  # a loop over time
    Impl("torch", ("torch",), build_torch),
    Impl("onnxruntime", ("onnxruntime", "onnx"), build_onnxruntime),
    # XLA has no thread setting; it sizes its pool to the CPUs the process may use.
    Impl("jax", ("jax", "jaxlib"), build_jax),
    Impl("keras", ("keras",), build_keras),
]
PEER_NAMES = [impl.name for impl in IMPLS if impl.role == "peer"]


def select(peers=None):
    """elman and the named peers (all of them for None), in IMPLS order."""
    return [impl for impl in IMPLS if impl.role == "elman" or peers is None or impl.name in peers]


def findable(impls):
    """Those whose modules are on the path, without importing them (cheap)."""
    return [impl for impl in impls if all(importlib.util.find_spec(m) for m in impl.modules)]


def import_error(impl):
    """None if every module the implementation needs imports, else why not."""
    for module in impl.modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken install raises more than ImportError
            return f"{type(exc).__name__}: {exc}"
    return None


def versions(impls):
    """Installed versions of the modules these implementations loaded, and NumPy's."""
    names = {m.split(".")[0] for impl in impls for m in impl.modules} | {"numpy"}
    return {name: package_version(name) for name in sorted(names) if name in sys.modules}


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return getattr(sys.modules.get(name), "__version__", None)
