"""elman.onnx: the ONNX ``RNN`` operator, computed by elman's engine.

``rnn`` follows the operator as the latest ONNX specification defines it (RNN-22): its
inputs, attributes, defaults and output shapes. ``from_onnx`` / ``to_onnx`` (also
``elman.from_onnx`` and ``RNN.to_onnx``) bring models in and out; they need the ``onnx``
package, ``rnn`` does not.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from . import _activations, _checks, _run

DIRECTIONS = ("forward", "reverse", "bidirectional")
# ONNX's spelling (case-insensitive, as ONNX Runtime) -> elman's name.
_FROM_ONNX_NAME = {onnx.lower(): name for name, onnx in _activations.ONNX_NAMES.items()}


def activations_from_attributes(num_directions: int, activations=None, activation_alpha=None,
                                activation_beta=None, clip=None) -> list:
    """One _activations.Activation per direction from the operator's attributes.

    As the specification says, activation_alpha and activation_beta are consumed in the
    order of the activations, each by those that take such a parameter; those left
    without one get ONNX's default. One activation for two directions serves both, with
    its parameters.
    """
    for name, value, entries in (("activations", activations, "names, one per direction"),
                                 ("activation_alpha", activation_alpha, "numbers"),
                                 ("activation_beta", activation_beta, "numbers")):
        if isinstance(value, (str, bytes, numbers.Number)):  # lists, as ONNX's attributes
            raise TypeError(f"{name}: expected a list of {entries}, got {value!r}")
    names = ["Tanh"] * num_directions if activations is None else list(activations)
    shared = len(names) == 1 and num_directions == 2
    if len(names) != num_directions and not shared:
        raise ValueError(f"activations: expected {num_directions} (one per direction), got {names!r}")
    resolved = []
    for onnx_name in names:
        if not isinstance(onnx_name, str) or onnx_name.lower() not in _FROM_ONNX_NAME:
            raise ValueError(f"activations: expected names among "
                             f"{', '.join(_activations.ONNX_NAMES.values())}, got {onnx_name!r}")
        resolved.append(_FROM_ONNX_NAME[onnx_name.lower()])
    # (not `or []`: an array's truth is not whether it is given)
    queues = {"alpha": [] if activation_alpha is None else list(activation_alpha),
              "beta": [] if activation_beta is None else list(activation_beta)}
    out = []
    for name in resolved:
        takes = _activations.PARAMETERS[name]
        given = {p: queues[p].pop(0) if p in takes and queues[p] else None for p in queues}
        out.append(_activations.resolve("activations", name, given["alpha"], given["beta"], clip))
    for p, rest in queues.items():
        if rest:
            raise ValueError(f"activation_{p}: {len(rest)} more value(s) than the activations "
                             f"{names!r} take")
    return out * 2 if shared else out


def rnn(X: Any, W: Any, R: Any, B: Any = None, sequence_lens: Any = None, initial_h: Any = None, *,
        hidden_size: int | None = None, activations: Sequence[str] | None = None,
        activation_alpha: Sequence[float] | None = None, activation_beta: Sequence[float] | None = None,
        clip: float | None = None, direction: str = "forward",
        layout: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ONNX RNN operator: returns (Y, Y_h).

    layout 0: X [T, B, I], initial_h [D, B, H], Y [T, D, B, H], Y_h [D, B, H];
    layout 1: X [B, T, I], initial_h [B, D, H], Y [B, T, D, H], Y_h [B, D, H].
    W [D, H, I], R [D, H, H], B [D, 2H] (Wb then Rb; None = zeros), sequence_lens [B]
    (integers in [1, T]; None = all T; steps past a sequence's end give Y = 0),
    D = 2 for direction="bidirectional", else 1. activations: one ONNX name per
    direction (default Tanh); clip bounds the pre-activation to [-clip, clip].
    float64 if any array is float64, else float32. Y is in original time order for every
    direction.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {', '.join(map(repr, DIRECTIONS))}, got {direction!r}")
    if isinstance(layout, (bool, np.bool_)) or not isinstance(layout, numbers.Integral):
        raise TypeError(f"layout: expected the integer 0 or 1, got {layout!r}")
    if layout not in (0, 1):
        raise ValueError(f"layout: expected 0 or 1, got {layout!r}")
    D = 2 if direction == "bidirectional" else 1
    (X, W, R, B, initial_h), dtype = _checks.host_arrays({"X": X, "W": W, "R": R, "B": B,
                                                          "initial_h": initial_h})
    X = _checks.real_array("X", X, dtype)
    if X.ndim != 3:
        raise ValueError(f"X: expected 3 dimensions, got shape {_checks.shape_str(X.shape)}")
    if layout == 1:
        X = X.transpose(1, 0, 2)
    T, batch, I = X.shape
    W = _checks.real_array("W", W, dtype)
    if W.ndim != 3 or W.shape[0] != D or W.shape[2] != I or W.shape[1] < 1:
        raise ValueError(f"W: expected shape (num_directions={D}, hidden_size, input_size={I}), "
                         f"got {_checks.shape_str(W.shape)}")
    H = W.shape[1]
    if hidden_size is not None and _checks.positive_int("hidden_size", hidden_size) != H:
        raise ValueError(f"hidden_size: {hidden_size} differs from W's {H}")
    R = _checks.real_array("R", R, dtype)
    _checks.exact_shape("R", R, (D, H, H), "(num_directions, hidden_size, hidden_size)")
    if B is not None:
        B = _checks.real_array("B", B, dtype)
        _checks.exact_shape("B", B, (D, 2 * H), "(num_directions, 2 * hidden_size)")
    if initial_h is not None:
        initial_h = _checks.real_array("initial_h", initial_h, dtype)
        want = (batch, D, H) if layout == 1 else (D, batch, H)
        _checks.exact_shape("initial_h", initial_h, want, f"for layout={layout}")
        if layout == 1:
            initial_h = initial_h.transpose(1, 0, 2)
    if sequence_lens is not None:
        sequence_lens = _checks.host_array("sequence_lens", sequence_lens)
        if sequence_lens.dtype.kind not in "iu" or sequence_lens.shape != (batch,):
            raise ValueError(f"sequence_lens: expected {batch} integers (one per sequence), got "
                             f"dtype {sequence_lens.dtype}, shape {_checks.shape_str(sequence_lens.shape)}")
        if sequence_lens.size and (sequence_lens.min() < 1 or sequence_lens.max() > T):
            raise ValueError(f"sequence_lens: expected values in [1, T={T}] (elman runs no empty "
                             f"sequence), got values in [{sequence_lens.min()}, {sequence_lens.max()}]")
    acts = [a.require_within(dtype)
            for a in activations_from_attributes(D, activations, activation_alpha, activation_beta, clip)]
    cells = [(W[d].T, R[d].T, None if B is None else B[d, :H] + B[d, H:],
              direction == "reverse" or d == 1, acts[d]) for d in range(D)]
    net = _run.network(dtype, I, H, 1, D, cells)
    y, Y_h = _run.run(net, dtype, X, initial_h, sequence_lens, batch_first=False,
                      names=("X", "initial_h"))
    y = y.reshape(T, batch, D, H)
    if layout == 1:
        return y.transpose(1, 0, 2, 3), Y_h.transpose(1, 0, 2)
    return y.transpose(0, 2, 1, 3), Y_h
