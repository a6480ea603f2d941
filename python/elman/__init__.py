"""elman: the fastest way to run a simple recurrent (Elman) layer.

    y_t = act(x_t @ W_x + y_{t-1} @ W_y + b)

elman.RNN is a stack of such layers shaped like torch.nn.RNN; elman.rnn runs one layer
from weights given per call; elman.reference is the float64 NumPy oracle.
"""

import os
from typing import TYPE_CHECKING, Any, BinaryIO

from . import _core, cuda
from ._functional import rnn
from ._layer import RNN, Stream

__version__ = "0.1.0"

if TYPE_CHECKING:  # the Keras wrapper's module imports only when from_keras is called
    from ._keras import KerasRNN

from . import _threadpoolctl  # noqa: E402

_threadpoolctl.register()
__all__ = ["RNN", "Stream", "rnn", "set_num_threads", "get_num_threads", "reference", "onnx", "cuda",
           "from_torch", "from_keras", "from_onnx", "load"]


# The importers load their framework only when called (never at `import elman`).
def from_torch(module: Any) -> RNN:
    """An elman.RNN equal to a torch.nn.RNN or torch.nn.RNNCell (see elman/_torch.py)."""
    from . import _torch
    return _torch.from_torch(module)


def from_keras(layer: Any) -> "KerasRNN":
    """An elman.RNN equal to a Keras SimpleRNN or Bidirectional(SimpleRNN); see
    elman/_keras.py for how its outputs map to Keras's."""
    from . import _keras
    return _keras.from_keras(layer)


def from_onnx(model_or_path: Any) -> RNN:
    """An elman.RNN from the RNN node(s) of an ONNX model (a path or a ModelProto)."""
    from . import _onnx_model
    return _onnx_model.from_onnx(model_or_path)


def load(path: str | bytes | os.PathLike | BinaryIO) -> RNN:
    """A layer written by RNN.save."""
    from . import _io
    return _io.load(path)


def set_num_threads(n: int) -> None:
    """Use n threads in elman's kernels: the input projection and the recurrence are split
    over them (elman's own copy of OpenBLAS stays on one thread, inside them, whatever
    OPENBLAS_NUM_THREADS says). n is at most 1024, or the number of CPUs this process may
    run on where that is larger."""
    from ._checks import positive_int
    _core.set_num_threads(positive_int("n", n, limit=_core.max_num_threads()))


def get_num_threads() -> int:
    """The number of threads elman's kernels use: by default, the number of CPUs this
    process may run on (its affinity mask, read once)."""
    return _core.get_num_threads()


def __getattr__(name):
    # elman.reference (plain NumPy) and elman.onnx load on first use.
    if name in ("reference", "onnx"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'elman' has no attribute {name!r}")
