"""One path from user arrays to the engine and back, shared by elman.RNN and elman.rnn.

It handles what the engine does not: batch_first and unbatched layouts, dtype
conversion, and validation of x, h0 and lengths against the network's sizes.
"""

from __future__ import annotations

import numpy as np

from . import _checks, _core


def run(net, dtype: np.dtype, x, h0, lengths, *, batch_first: bool, names=("x", "h0")):
    """(y, h_n) of `net` on x, in the caller's layout (see RNN.__call__).

    names: what the caller calls x and h0, for the error messages.
    """
    states, hidden = net.num_layers * net.num_directions, net.hidden_size
    x_name, h0_name = names
    x = _checks.real_array(x_name, x, dtype)
    if x.ndim == 2:
        if lengths is not None:
            raise ValueError("lengths: not accepted with unbatched input x of shape (T, I); "
                             "slice x to the valid steps instead")
        h0 = _unbatched_state(h0_name, h0, dtype, (states, hidden))
        y, h_n = run(net, dtype, x[:, None, :], h0, None, batch_first=False, names=names)
        return y[:, 0, :], h_n[:, 0, :]
    if x.ndim != 3:
        layout = "(B, T, I)" if batch_first else "(T, B, I)"
        raise ValueError(f"{x_name}: expected 3 dimensions {layout}, or 2 (T, I) for an unbatched "
                         f"sequence, got shape {_checks.shape_str(x.shape)}")
    if batch_first:
        x = x.transpose(1, 0, 2)
    steps, batch, features = x.shape
    if features != net.input_size:
        raise ValueError(f"{x_name}: expected {net.input_size} input features (input_size) in the last "
                         f"dimension, got {features}")
    if steps == 0 or batch == 0:
        raise ValueError(f"{x_name}: expected at least one step and one sequence, got T={steps}, B={batch}")
    _checks.fits_in_memory(
        x_name, x.itemsize * steps * batch * net.num_directions * hidden * (1 + min(net.num_layers - 1, 2)))
    if h0 is not None:
        h0 = _checks.real_array(h0_name, h0, dtype)
        _checks.exact_shape(h0_name, h0, (states, batch, hidden), "(num_layers * num_directions, B, H)")
    if lengths is not None:
        lengths = _checks.lengths_array(lengths, steps, batch)
    y, h_n = net.forward(np.ascontiguousarray(x), h0, lengths)
    return (y.transpose(1, 0, 2) if batch_first else y), h_n


def _unbatched_state(name, h0, dtype, shape):
    if h0 is None:
        return None
    h0 = _checks.real_array(name, h0, dtype)
    _checks.exact_shape(name, h0, shape, "(num_layers * num_directions, H) for unbatched x")
    return h0[:, None, :]


def network(dtype: np.dtype, input_size: int, hidden_size: int, num_layers: int,
            num_directions: int, cells: list):
    """A native network; cells: (w_x, w_y, b or None, reverse, _activations.Activation) per
    layer and direction."""
    native = _core.NetworkF32 if dtype == np.float32 else _core.NetworkF64
    return native(input_size, hidden_size, num_layers, num_directions,
                  [(w_x, w_y, b, reverse, act.native()) for w_x, w_y, b, reverse, act in cells])
