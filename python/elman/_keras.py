"""Keras interop: SimpleRNN and Bidirectional(SimpleRNN) in (elman.from_keras).

Keras keeps the weights in elman's orientation (kernel (I, H), recurrent_kernel (H, H),
one bias) and its inputs batch-first, so the weights load as they are. What differs is
how Keras shapes its outputs, which KerasRNN reproduces around an elman layer:
go_backwards returns the outputs in processing order (reversed), return_sequences /
return_state choose what comes back, Bidirectional merges its directions, and at masked
steps a SimpleRNN outputs its state, unchanged since the last valid step (the initial
state before the first, as Keras's default, scanned loop does), or zeros with
zero_output_for_mask (which Bidirectional turns on when it returns sequences).
"""

from __future__ import annotations

import numpy as np

from . import _checks
from ._functional import rnn
from ._layer import RNN

# Keras activation (function name) -> elman nonlinearity and its alpha, beta.
_ACTIVATIONS = {
    "tanh": ("tanh", None, None), "relu": ("relu", None, None), "sigmoid": ("sigmoid", None, None),
    "linear": ("affine", 1.0, 0.0), "softsign": ("softsign", None, None),
    "softplus": ("softplus", None, None), "elu": ("elu", 1.0, None),
    "leaky_relu": ("leaky_relu", 0.2, None),
    "hard_sigmoid": ("hard_sigmoid", 1.0 / 6.0, 0.5),  # Keras 3: relu6(x + 3) / 6
}
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _keras():
    return _checks.framework("keras", "Keras", "; Keras runs on the backend that KERAS_BACKEND "
                                               "(or ~/.keras/keras.json) names, tensorflow by default, "
                                               "which must be installed")


def _simple_rnn_parts(layer):
    """(options, weights) of a built keras SimpleRNN, for an elman.RNN direction."""
    cell = layer.cell
    if not layer.built:
        raise ValueError(f"layer: {layer.name} is not built; call it on data (or build it) first")
    if layer.stateful:
        raise ValueError(f"layer: {layer.name} is stateful, which elman.from_keras does not "
                         f"import (elman.RNN.stream keeps state between chunks)")
    name = getattr(cell.activation, "__name__", repr(cell.activation))
    if name not in _ACTIVATIONS:
        raise ValueError(f"layer: activation {name!r} of {layer.name} has no elman equivalent; "
                         f"supported: {', '.join(_ACTIVATIONS)}")
    nonlinearity, alpha, beta = _ACTIVATIONS[name]
    kernel = np.asarray(cell.kernel.numpy())
    weights = {"w_x": kernel, "w_y": np.asarray(cell.recurrent_kernel.numpy())}
    if cell.use_bias:
        weights["b"] = np.asarray(cell.bias.numpy())
    dtype = np.float64 if kernel.dtype == np.float64 else np.float32
    options = dict(input_size=kernel.shape[0], hidden_size=kernel.shape[1], bias=cell.use_bias,
                   nonlinearity=nonlinearity, activation_alpha=alpha, activation_beta=beta,
                   dtype=dtype)
    return options, weights


def from_keras(layer) -> "KerasRNN":
    keras = _keras()
    if isinstance(layer, keras.layers.Bidirectional):
        forward, backward = layer.forward_layer, layer.backward_layer
        if not (isinstance(forward, keras.layers.SimpleRNN) and isinstance(backward, keras.layers.SimpleRNN)):
            raise TypeError(f"layer: Bidirectional of {type(forward).__name__}; elman imports "
                            f"Bidirectional(SimpleRNN)")
        if layer.merge_mode not in _MERGE_MODES:
            raise ValueError(f"layer: merge_mode {layer.merge_mode!r} is not one of {_MERGE_MODES}")
        (opt_f, w_f), (opt_b, w_b) = _simple_rnn_parts(forward), _simple_rnn_parts(backward)
        if opt_f != opt_b or forward.go_backwards or not backward.go_backwards:
            raise ValueError("layer: the directions of this Bidirectional differ in size, activation "
                             "or bias (or run in the same direction); elman.RNN's are alike")
        weights = {f"{k}_l0": w for k, w in w_f.items()} | {f"{k}_l0_reverse": w for k, w in w_b.items()}
        elman_layer = RNN.from_weights(weights, bidirectional=True, batch_first=True, **opt_f)
        return KerasRNN(elman_layer, layer.return_sequences, layer.return_state, False,
                        layer.merge_mode, zero_output_for_mask=layer.return_sequences)
    if not isinstance(layer, keras.layers.SimpleRNN):
        raise TypeError(f"layer: expected keras.layers.SimpleRNN or Bidirectional(SimpleRNN), got "
                        f"{type(layer).__module__}.{type(layer).__qualname__}")
    options, weights = _simple_rnn_parts(layer)
    elman_layer = RNN.from_weights({f"{k}_l0": w for k, w in weights.items()}, batch_first=True, **options)
    return KerasRNN(elman_layer, layer.return_sequences, layer.return_state, layer.go_backwards,
                    None, zero_output_for_mask=layer.zero_output_for_mask)


class KerasRNN:
    """An elman layer with a Keras layer's output conventions: ``obj(x, initial_state=None,
    mask=None)`` returns what the Keras layer returns, as NumPy arrays. ``obj.rnn`` is the
    elman.RNN (batch_first) that computes it."""

    def __init__(self, rnn_layer: RNN, return_sequences, return_state, go_backwards, merge_mode,
                 zero_output_for_mask):
        self.rnn = rnn_layer
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.merge_mode = go_backwards, merge_mode
        self.zero_output_for_mask = zero_output_for_mask

    def __repr__(self):
        return (f"KerasRNN(return_sequences={self.return_sequences}, return_state={self.return_state}, "
                f"go_backwards={self.go_backwards}, merge_mode={self.merge_mode!r}, rnn={self.rnn!r})")

    def _initial_states(self, initial_state, batch: int) -> np.ndarray:
        """initial_state as the layer's h0: (num_directions, B, H)."""
        states = list(initial_state) if self.rnn.bidirectional else [initial_state]
        if len(states) != self.rnn.num_directions:
            raise ValueError(f"initial_state: expected [forward, backward] states for Bidirectional, "
                             f"got {len(states)} state(s)")
        states = [_checks.real_array("initial_state", h, self.rnn.dtype) for h in states]
        for h in states:
            _checks.exact_shape("initial_state", h, (batch, self.rnn.hidden_size), "(B, H)")
        return np.stack(states)

    def __call__(self, x, initial_state=None, mask=None):
        """x (B, T, I); initial_state: (B, H), or [forward, backward] for Bidirectional;
        mask (B, T) bool that keeps a prefix of each sequence (right padding)."""
        x = _checks.real_array("x", x, self.rnn.dtype)
        if x.ndim != 3:
            raise ValueError(f"x: expected 3 dimensions (B, T, I), got shape {_checks.shape_str(x.shape)}")
        lengths = None if mask is None else _mask_to_lengths(mask, x.shape[:2])
        h0 = None if initial_state is None else self._initial_states(initial_state, x.shape[0])
        if self.rnn.bidirectional:
            y, h_n = self.rnn(x, h0, lengths)
            H = self.rnn.hidden_size
            outputs = [y[..., :H], y[..., H:]] if self.return_sequences else [h_n[0], h_n[1]]
            merged = _merge(outputs, self.merge_mode)  # [forward, backward] when merge_mode is None
            if self.return_state:
                return [*merged, h_n[0], h_n[1]]
            return merged if self.merge_mode is None else merged[0]
        if self.go_backwards:  # processing order: the reverse direction's outputs, flipped
            w = self.rnn.weights()
            y, h = rnn(x, w["w_x_l0"], w["w_y_l0"], w.get("b_l0"), None if h0 is None else h0[0],
                       activation=self.rnn.nonlinearity, activation_alpha=self.rnn.activation_alpha,
                       activation_beta=self.rnn.activation_beta, clip=self.rnn.clip,
                       lengths=lengths, reverse=True, batch_first=True)
            y = y[:, ::-1]
            if lengths is not None and not self.zero_output_for_mask:
                # the masked steps come first here, and hold the initial state
                first = np.arange(y.shape[1])[None, :] < (y.shape[1] - lengths)[:, None]
                y = np.where(first[:, :, None], 0 if h0 is None else h0[0][:, None, :], y)
        else:
            y, h_n = self.rnn(x, h0, lengths)
            h = h_n[0]
            if lengths is not None and not self.zero_output_for_mask:
                y = _repeat_last_valid(y, lengths)
        # Keras's output without sequences is the last one in processing order, which
        # zero_output_for_mask makes 0 for a sequence that ends early: not always h.
        out = y if self.return_sequences else y[:, -1].copy()
        return [out, h] if self.return_state else out


def _mask_to_lengths(mask, shape) -> np.ndarray:
    mask = _checks.host_array("mask", mask)
    if mask.dtype != bool and not (mask.dtype.kind in "iu" and np.isin(mask, (0, 1)).all()):
        raise TypeError(f"mask: expected booleans (or the integers 0 and 1), got {mask.dtype} values")
    mask = mask.astype(bool)
    _checks.exact_shape("mask", mask, shape, "(B, T), like x's first two dimensions")
    lengths = mask.sum(axis=1)
    prefix = np.arange(shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(mask, prefix) or np.any(lengths < 1):  # (min() fails on no rows)
        raise ValueError("mask: elman takes masks that keep a non-empty prefix of each sequence "
                         "(right padding); this one masks other steps")
    return lengths


def _repeat_last_valid(y, lengths):
    """Keras's masked steps repeat the previous output: y[b, t] = y[b, lengths[b] - 1] past the end."""
    steps = np.minimum(np.arange(y.shape[1])[None, :], lengths[:, None] - 1)
    return np.take_along_axis(y, steps[:, :, None], axis=1)


def _merge(outputs, mode):
    forward, backward = outputs
    if mode is None:
        return [forward, backward]
    merged = {"concat": lambda: np.concatenate(outputs, axis=-1), "sum": lambda: forward + backward,
              "mul": lambda: forward * backward, "ave": lambda: (forward + backward) / 2}[mode]()
    return [merged]
