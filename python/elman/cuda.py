"""elman on NVIDIA GPUs: whether the CUDA backend is built, and the GPUs it sees.

Layers move with ``elman.RNN(..., device="cuda")`` or ``layer.to("cuda")``. NumPy input
is copied to the GPU and the outputs come back as NumPy arrays; input that exposes
``__cuda_array_interface__`` (a torch CUDA tensor, a CuPy array) is read in place and
the outputs are DeviceArray objects, which torch.as_tensor and cupy.asarray view
without a copy.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from . import _checks

try:
    from . import _cuda
    _load_error = None
except ImportError as e:  # not built, or its libraries (cuBLAS, the driver) are missing
    _cuda = None
    _load_error = e

DeviceArray = _cuda.DeviceArray if _cuda else None

DEVICES = ("cpu", "cuda")


def is_built() -> bool:
    """Whether this elman was built with its CUDA backend."""
    return _cuda is not None


def device_count() -> int:
    """GPUs elman can use: 0 when not built with CUDA or without driver or device."""
    return _cuda.device_count() if _cuda else 0


def is_available() -> bool:
    return device_count() > 0


def require() -> None:
    """Raises RuntimeError saying why layers cannot go to the GPU, if they cannot."""
    if _cuda is None:
        if importlib.util.find_spec(f"{__package__}._cuda") is None:
            raise RuntimeError("device: elman was built without CUDA (rebuild with nvcc and "
                               "cuBLAS present, or ELMAN_CUDA=ON to fail when they are not)")
        raise RuntimeError(f"device: elman's CUDA module could not be loaded: {_load_error}")
    if device_count() == 0:
        raise RuntimeError("device: no CUDA device is visible to this process")


def check_device(device) -> str:
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(map(repr, DEVICES))}, got {device!r}")
    return device


def network(input_size, hidden_size, num_layers, num_directions, cells):
    """A layer stack on the GPU; cells as elman._run.network takes them."""
    return _cuda.NetworkF32(input_size, hidden_size, num_layers, num_directions,
                            [(w_x, w_y, b, reverse, act.as_tuple())
                             for w_x, w_y, b, reverse, act in cells])


def on_device(value) -> bool:
    return hasattr(value, "__cuda_array_interface__")


def _pointer(name: str, value, shape) -> int:
    """The data pointer of a dense float32 CUDA array of this shape."""
    if not on_device(value):
        raise TypeError(f"{name}: expected a CUDA array (with __cuda_array_interface__) as x "
                        f"is one, got {type(value).__name__}")
    cai = value.__cuda_array_interface__
    got = tuple(cai["shape"])
    if cai["typestr"] != "<f4":
        raise TypeError(f"{name}: expected a float32 CUDA array, got typestr {cai['typestr']!r}")
    if got != tuple(shape):
        raise ValueError(f"{name}: expected shape {_checks.shape_str(shape)}, got {_checks.shape_str(got)}")
    strides = cai.get("strides")
    if strides is not None and tuple(strides) != tuple(np.empty(got, np.float32).strides):
        raise ValueError(f"{name}: expected a C-contiguous CUDA array (make it contiguous first)")
    return int(cai["data"][0])


def run_device(net, x, h0, lengths, *, batch_first: bool):
    """(y, h_n) as DeviceArrays for x on the GPU, (T, B, I) float32, read in place."""
    if batch_first:
        raise ValueError("x: a CUDA array is taken as (T, B, I) only; this layer is "
                         "batch_first (transpose x, or pass a NumPy array)")
    shape = tuple(x.__cuda_array_interface__["shape"])
    if len(shape) != 3 or shape[2] != net.input_size or 0 in shape:
        raise ValueError(f"x: expected a CUDA array of shape (T, B, {net.input_size}), "
                         f"got {_checks.shape_str(shape)}")
    steps, batch = shape[0], shape[1]
    x_ptr = _pointer("x", x, shape)
    states = net.num_layers * net.num_directions
    h0_ptr = 0 if h0 is None else _pointer("h0", h0, (states, batch, net.hidden_size))
    if lengths is not None:
        lengths = _checks.lengths_array(lengths, steps, batch)
    return net.forward_device(x_ptr, steps, batch, h0_ptr, lengths)
