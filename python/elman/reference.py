"""The specification of elman, as plain float64 NumPy.

This module *is* the spec: every kernel in elman is tested against it. It is
written straight from the equation, one explicit Python loop over time, with no
attempt at speed, so that anyone can read it and check it by hand.

One layer, one direction (``rnn``)::

    h_{-1} = h0                     (zeros if h0 is None)
    h_t    = phi(x_t @ W_x + h_{t-1} @ W_y + b)
    y_t    = h_t

    x_t: (B, I)   W_x: (I, H)   W_y: (H, H)   b: (H,)   h_t, y_t: (B, H)
    phi:  one of ACTIVATIONS below (those of the ONNX RNN operator), with its
          parameters alpha and beta (defaults: those of the ONNX operator of the
          same name); with ``clip`` c, phi(min(max(z, -c), c)) (as ONNX).

Options (same meaning in ``elman.rnn`` and ``elman.RNN``):

* ``lengths`` (B,) ints, 1 <= lengths[b] <= T: sequence b has lengths[b] valid
  steps. Outputs at steps >= lengths[b] are exactly 0; the final state of row b
  is the state after its step lengths[b]-1.
* ``reverse=True``: each sequence is read from its own last valid step
  lengths[b]-1 down to step 0; the output stays in the original time order
  (as ONNX ``direction="reverse"``), i.e. y[t] is the state after reading x[t].
* ``batch_first=True``: x and y are (B, T, ...) instead of (T, B, ...).
* Unbatched input: x (T, I), h0 (H,) -> y (T, H), h_T (H,); ``lengths`` is
  then an error.

A layer (``forward``) stacks ``num_layers`` such layers; layer k > 0 reads the
previous layer's whole output. A bidirectional layer runs a forward and a
reverse direction over the same input and concatenates their outputs as
[forward, backward] on the last axis. h0 and h_n are (D*L, B, H), ordered
layer-major, direction-minor (index k*D + d), as in PyTorch.

Everything is computed in float64. The keywords ``dtype`` and ``store`` exist only so
that the tests can measure how far a *naive* computation of the same loop drifts from
this float64 spec (the baseline of the tolerances): ``dtype`` computes in float32,
``store`` (a function of an array) rounds every value an engine keeps (h0, each output,
which is the next state) as a narrower storage type would. They are not part of the spec.
"""

import numpy as np

def _sigmoid(z):
    e = np.exp(-np.abs(z))  # never overflows; e / (1 + e) keeps small results accurate
    return np.where(z < 0, e, 1.0) / (1 + e)


# The activations of the ONNX RNN operator, with their parameters alpha and beta.
# NaN stays NaN in every one (np.maximum, np.where and the ufuncs propagate it).
ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": lambda z: _sigmoid(z),
    "affine": lambda z, alpha, beta: alpha * z + beta,
    "leaky_relu": lambda z, alpha: np.where(z < 0, alpha * z, z),
    "thresholded_relu": lambda z, alpha: np.where(z <= alpha, 0.0, z),
    "scaled_tanh": lambda z, alpha, beta: alpha * np.tanh(beta * z),
    "hard_sigmoid": lambda z, alpha, beta: np.minimum(np.maximum(alpha * z + beta, 0), 1),
    "elu": lambda z, alpha: np.where(z < 0, alpha * np.expm1(np.minimum(z, 0)), z),
    "softsign": lambda z: np.where(np.isinf(z), np.sign(z), z / (1 + np.abs(z))),  # limit at Inf
    "softplus": lambda z: np.logaddexp(0, z),
}

# The parameters each activation takes, with their defaults: those of the ONNX operator
# of the same name (ScaledTanh has none in ONNX: alpha = beta = 1, i.e. plain tanh).
PARAMETERS: dict[str, dict[str, float]] = {name: {} for name in ACTIVATIONS} | {
    "affine": {"alpha": 1.0, "beta": 0.0},
    "leaky_relu": {"alpha": 0.01},
    "thresholded_relu": {"alpha": 1.0},
    "scaled_tanh": {"alpha": 1.0, "beta": 1.0},
    "hard_sigmoid": {"alpha": 0.2, "beta": 0.5},
    "elu": {"alpha": 1.0},
}


def _phi(activation, alpha=None, beta=None, clip=None):
    """z -> phi(clip(z)) with the given parameters (None = the default)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    given = {"alpha": alpha, "beta": beta}
    params = {p: default if given[p] is None else given[p]
              for p, default in PARAMETERS[activation].items()}
    f = ACTIVATIONS[activation]
    if clip is None:
        return lambda z: f(z, **params)
    return lambda z: f(np.clip(z, -clip, clip), **params)


def rnn(x, W_x, W_y, b=None, h0=None, *, activation="tanh", activation_alpha=None,
        activation_beta=None, clip=None, lengths=None, reverse=False, batch_first=False,
        dtype=np.float64, store=None):
    """One Elman layer, one direction. Returns (y, h_T).

    x: (T, B, I), or (B, T, I) if batch_first, or unbatched (T, I).
    h0: (B, H), or (H,) for unbatched x. lengths: (B,) ints in [1, T].
    y: same layout as x with H features; h_T: (B, H) or (H,).
    """
    phi = _phi(activation, activation_alpha, activation_beta, clip)
    x = np.asarray(x, dtype=dtype)
    W_x = np.asarray(W_x, dtype=dtype)
    W_y = np.asarray(W_y, dtype=dtype)
    H = W_y.shape[0]
    b = np.zeros(H, dtype) if b is None else np.asarray(b, dtype=dtype)

    unbatched = x.ndim == 2
    if unbatched:
        if lengths is not None:
            raise ValueError("lengths is not allowed with unbatched x")
        x = x[:, None, :]                                  # (T, 1, I)
        if h0 is not None:
            h0 = np.asarray(h0)[None, :]                   # (1, H)
    elif batch_first:
        x = x.transpose(1, 0, 2)                           # -> (T, B, I)
    T, B, _ = x.shape

    lengths = np.full(B, T) if lengths is None else np.asarray(lengths).astype(np.int64)
    if np.any(lengths < 1) or np.any(lengths > T):
        raise ValueError("lengths must be in [1, T]")
    store = store or (lambda a: a)
    h = np.zeros((B, H), dtype) if h0 is None else store(np.array(h0, dtype=dtype))
    y = np.zeros((T, B, H), dtype)
    rows = np.arange(B)

    for s in range(T):                                     # s-th step of every sequence
        active = s < lengths                               # rows still inside their sequence
        t = lengths - 1 - s if reverse else np.full(B, s)  # the time index each row reads now
        t = np.where(active, t, 0)
        h_new = store(phi(x[t, rows] @ W_x + h @ W_y + b))
        h = np.where(active[:, None], h_new, h)            # finished rows keep their state
        y[t[active], rows[active]] = h_new[active]         # padded outputs stay exactly 0

    if unbatched:
        return y[:, 0, :], h[0]
    if batch_first:
        y = y.transpose(1, 0, 2)
    return y, h


def forward(layer, x, h0=None, lengths=None, *, dtype=np.float64, store=None):
    """What ``layer(x, h0, lengths)`` must return, from the layer's weights and options.

    ``layer`` is anything with the attributes of ``elman.RNN``: num_layers,
    hidden_size, nonlinearity, bias, batch_first, bidirectional (and, if it has them,
    activation_alpha, activation_beta, clip: None = default) and the weights
    w_x_l{k}, w_y_l{k}, b_l{k} (suffix ``_reverse`` for the backward direction).
    Returns (y, h_n): y (T, B, D*H) (or (B, T, D*H), or (T, D*H) unbatched),
    h_n (D*L, B, H) (or (D*L, H) unbatched).
    """
    L, H = layer.num_layers, layer.hidden_size
    D = 2 if layer.bidirectional else 1
    x = np.asarray(x, dtype=dtype)

    unbatched = x.ndim == 2
    if unbatched:
        if lengths is not None:
            raise ValueError("lengths is not allowed with unbatched x")
        x = x[:, None, :]
        if h0 is not None:
            h0 = np.asarray(h0)[:, None, :]
    elif layer.batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    h0 = np.zeros((D * L, B, H), dtype) if h0 is None else np.asarray(h0, dtype=dtype)

    h_n = np.zeros((D * L, B, H), dtype)
    inp = x
    for k in range(L):
        outputs = []
        for d in range(D):
            suffix = "_reverse" if d == 1 else ""
            W_x = getattr(layer, f"w_x_l{k}{suffix}")
            W_y = getattr(layer, f"w_y_l{k}{suffix}")
            b = getattr(layer, f"b_l{k}{suffix}") if layer.bias else None
            y, h_T = rnn(inp, W_x, W_y, b, h0[k * D + d], activation=layer.nonlinearity,
                         activation_alpha=getattr(layer, "activation_alpha", None),
                         activation_beta=getattr(layer, "activation_beta", None),
                         clip=getattr(layer, "clip", None),
                         lengths=lengths, reverse=(d == 1), dtype=dtype, store=store)
            outputs.append(y)
            h_n[k * D + d] = h_T
        inp = np.concatenate(outputs, axis=-1)             # [forward, backward]

    y = inp
    if unbatched:
        return y[:, 0, :], h_n[:, 0, :]
    if layer.batch_first:
        y = y.transpose(1, 0, 2)
    return y, h_n
