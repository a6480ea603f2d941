"""elman: the fastest way to run a simple recurrent (Elman) layer.

    y_t = act(x_t @ W_x + y_{t-1} @ W_y + b)

elman.RNN is a stack of such layers shaped like torch.nn.RNN; elman.rnn runs one layer
from weights given per call; elman.reference is the float64 NumPy oracle.
"""

from . import _core
from ._functional import rnn
from ._layer import RNN, Stream

__version__ = "0.1.0"

from . import _threadpoolctl  # noqa: E402

_threadpoolctl.register()
__all__ = ["RNN", "Stream", "rnn", "set_num_threads", "get_num_threads", "reference"]


def set_num_threads(n: int) -> None:
    """Use n threads in elman's kernels (and its own copy of OpenBLAS)."""
    from ._checks import positive_int
    _core.set_num_threads(positive_int("n", n))


def get_num_threads() -> int:
    """The number of threads elman's kernels use."""
    return _core.get_num_threads()


def __getattr__(name):
    # elman.reference is plain NumPy; load it on first use.
    if name == "reference":
        import importlib
        return importlib.import_module(".reference", __name__)
    raise AttributeError(f"module 'elman' has no attribute {name!r}")
