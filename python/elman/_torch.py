"""PyTorch interop: torch.nn.RNN / RNNCell in (elman.from_torch), nn.RNN out (RNN.to_torch).

PyTorch keeps weights out x in, (H, I), with two biases; elman keeps them in the equation's
orientation, W_x (I, H), and one bias b = bias_ih + bias_hh.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from ._layer import RNN, WEIGHT_NAME


def _torch():
    return _checks.framework("torch", "PyTorch")


def _numpy(t, dtype) -> np.ndarray:
    return t.detach().cpu().to(dtype=_torch().float64).numpy().astype(dtype)


def from_torch(module) -> RNN:
    """An elman.RNN that computes what `module` (torch.nn.RNN or torch.nn.RNNCell) computes
    in evaluation mode. For an RNNCell, the layer's ``step(x, h[None])[0]`` equals
    ``cell(x, h)``."""
    torch = _torch()
    nn = torch.nn
    if isinstance(module, nn.Module) and any(p.is_meta for p in module.parameters()):
        raise ValueError("module: its parameters are on the meta device (shapes without values); "
                         "give them values first (module.to_empty(device='cpu'), then load them)")
    if isinstance(module, nn.RNNCell):
        return _from_cell(module)
    if type(module) is not nn.RNN:  # nn.LSTM and nn.GRU share nn.RNNBase but are no Elman layers
        raise TypeError(f"module: expected torch.nn.RNN or torch.nn.RNNCell, got "
                        f"{type(module).__module__}.{type(module).__qualname__}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"module: proj_size={module.proj_size} is not supported (torch allows it "
                         f"only for LSTM)")
    if module.training and module.dropout > 0 and module.num_layers > 1:
        raise ValueError(f"module: dropout={module.dropout} in training mode is random at every "
                         f"call; elman runs inference: call module.eval() first")
    dtype = np.float64 if module.weight_hh_l0.dtype == torch.float64 else np.float32
    weights = {}
    for k in range(module.num_layers):
        for suffix in ("", "_reverse")[:2 if module.bidirectional else 1]:
            weights[f"w_x_l{k}{suffix}"] = _numpy(getattr(module, f"weight_ih_l{k}{suffix}"), dtype).T
            weights[f"w_y_l{k}{suffix}"] = _numpy(getattr(module, f"weight_hh_l{k}{suffix}"), dtype).T
            if module.bias:
                weights[f"b_l{k}{suffix}"] = (
                    _numpy(getattr(module, f"bias_ih_l{k}{suffix}"), np.float64)
                    + _numpy(getattr(module, f"bias_hh_l{k}{suffix}"), np.float64)).astype(dtype)
    return RNN.from_weights(weights, input_size=module.input_size, hidden_size=module.hidden_size,
                            num_layers=module.num_layers, nonlinearity=module.nonlinearity,
                            bias=module.bias, batch_first=module.batch_first,
                            bidirectional=module.bidirectional, dtype=dtype)


def _from_cell(cell) -> RNN:
    dtype = np.float64 if cell.weight_hh.dtype == _torch().float64 else np.float32
    weights = {"w_x_l0": _numpy(cell.weight_ih, dtype).T, "w_y_l0": _numpy(cell.weight_hh, dtype).T}
    if cell.bias:
        weights["b_l0"] = (_numpy(cell.bias_ih, np.float64) + _numpy(cell.bias_hh, np.float64)).astype(dtype)
    return RNN.from_weights(weights, input_size=cell.input_size, hidden_size=cell.hidden_size,
                            nonlinearity=cell.nonlinearity, bias=cell.bias, dtype=dtype)


def to_torch(layer: RNN):
    """A torch.nn.RNN (in evaluation mode) equal to `layer`: bias_ih = b, bias_hh = 0."""
    torch = _torch()
    if layer.nonlinearity not in ("tanh", "relu") or layer.clip is not None:
        raise ValueError(f"layer: torch.nn.RNN has only tanh and relu without clip; this layer has "
                         f"nonlinearity={layer.nonlinearity!r}, clip={layer.clip}")
    dtype = torch.float64 if layer.dtype == np.float64 else torch.float32
    module = torch.nn.RNN(layer.input_size, layer.hidden_size, layer.num_layers,
                          nonlinearity=layer.nonlinearity, bias=layer.bias,
                          batch_first=layer.batch_first, bidirectional=layer.bidirectional,
                          dtype=dtype)
    with torch.no_grad():
        for name, w in layer.weights().items():
            kind, k, suffix = WEIGHT_NAME.fullmatch(name).groups()  # type: ignore[union-attr]  # weights() names match
            where = f"l{k}{suffix or ''}"
            if kind == "b":
                getattr(module, f"bias_ih_{where}").copy_(torch.tensor(w))
                getattr(module, f"bias_hh_{where}").zero_()
            else:
                torch_name = "weight_ih" if kind == "w_x" else "weight_hh"
                getattr(module, f"{torch_name}_{where}").copy_(torch.tensor(w.T))
    return module.eval()
