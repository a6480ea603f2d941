"""elman.rnn: one layer in one direction, weights given per call."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _activations, _checks, _run


def rnn(x: Any, W_x: Any, W_y: Any, b: Any = None, h0: Any = None, *, activation: str = "tanh",
        activation_alpha: float | None = None, activation_beta: float | None = None,
        clip: float | None = None, lengths: Any = None, reverse: bool = False,
        batch_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run y_t = act(x_t @ W_x + y_{t-1} @ W_y + b) over a sequence.

    x: (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched.
    W_x: (I, H); W_y: (H, H); b: (H,) or None; h0: (B, H) ((H,) unbatched) or None = zeros.
    activation: one of elman.reference.ACTIVATIONS (those of ONNX's RNN), with its
    activation_alpha and activation_beta (None = ONNX's defaults); clip: bound the
    pre-activation to [-clip, clip] (None = no bound).
    lengths: (B,) integers in [1, T]: steps >= lengths[b] give exactly 0 and h_T holds
    the state after step lengths[b] - 1. reverse: run from the last valid step to the
    first; y stays in the original time order (as ONNX direction="reverse").
    Returns (y, h_T): y (T, B, H) in x's layout, h_T (B, H) ((H,) unbatched). The result is
    float64 if any argument is float64, else float32. The weights are copied on every
    call: for repeated calls, elman.RNN packs them once.
    """
    act = _activations.resolve("activation", activation, activation_alpha, activation_beta, clip)
    reverse, batch_first = _checks.flag("reverse", reverse), _checks.flag("batch_first", batch_first)
    (x, W_x, W_y, b, h0), dtype = _checks.host_arrays({"x": x, "W_x": W_x, "W_y": W_y, "b": b, "h0": h0})
    act.require_within(dtype)
    W_x = _checks.real_array("W_x", W_x, dtype)
    if W_x.ndim != 2:
        raise ValueError(f"W_x: expected 2 dimensions (I, H), got shape {_checks.shape_str(W_x.shape)}")
    inputs, hidden = W_x.shape
    if inputs < 1 or hidden < 1:
        raise ValueError(f"W_x: expected a non-empty (I, H) matrix, got shape {_checks.shape_str(W_x.shape)}")
    W_y = _checks.real_array("W_y", W_y, dtype)
    if W_y.ndim == 2 and W_y.shape[0] == W_y.shape[1] == inputs != hidden:  # W_x as torch has it
        raise ValueError(f"W_x: expected shape (I, H), got {_checks.shape_str(W_x.shape)}, which is "
                         f"(H, I) with H = {inputs} from W_y: transposed (as torch's weight_ih is)?")
    _checks.exact_shape("W_y", W_y, (hidden, hidden), "(H, H), with H from W_x")
    if b is not None:
        b = _checks.real_array("b", b, dtype)
        _checks.exact_shape("b", b, (hidden,), "(H,), with H from W_x")
    net = _run.network(dtype, inputs, hidden, 1, 1, [(W_x, W_y, b, reverse, act)])
    if h0 is not None:
        h0 = _checks.real_array("h0", h0, dtype)
        x_shape = x.shape
        if len(x_shape) == 2:
            _checks.exact_shape("h0", h0, (hidden,), "(H,) for unbatched x")
        elif len(x_shape) == 3:
            batch = x_shape[0] if batch_first else x_shape[1]
            _checks.exact_shape("h0", h0, (batch, hidden), "(B, H)")
        h0 = h0[None]  # the engine takes one state per layer and direction
    y, h_n = _run.run(net, dtype, x, h0, lengths, batch_first=batch_first)
    return y, h_n[0]
