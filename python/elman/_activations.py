"""The activation of a layer: its name, parameters and clip, checked once.

The names and parameter defaults are those of the oracle (elman.reference), which takes
them from the ONNX RNN operator; ONNX_NAMES maps them to ONNX's spelling.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _core
from .reference import PARAMETERS

ONNX_NAMES = {
    "tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "affine": "Affine",
    "leaky_relu": "LeakyRelu", "thresholded_relu": "ThresholdedRelu", "scaled_tanh": "ScaledTanh",
    "hard_sigmoid": "HardSigmoid", "elu": "Elu", "softsign": "Softsign", "softplus": "Softplus",
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Activation(NamedTuple):
    """phi(clip(z)): alpha and beta are None where phi takes no such parameter; clip None =
    no clip."""
    name: str
    alpha: float | None = None
    beta: float | None = None
    clip: float | None = None

    def native(self):
        """The engine's form of it."""
        return _core.ActivationParams(getattr(_core.Activation, self.name), self.alpha or 0.0,
                                      self.beta or 0.0, self.clip)

    def as_tuple(self):
        """The CUDA backend's form of it: (kind, alpha, beta, clip or None)."""
        return (int(getattr(_core.Activation, self.name)), self.alpha or 0.0, self.beta or 0.0,
                self.clip)

    def require_within(self, dtype) -> "Activation":
        """Itself, if float32 arithmetic holds its alpha and beta: beyond that they round to
        inf, and inf * 0 gives NaN where the formula gives a number."""
        if np.dtype(dtype) == np.float32:
            for param, value in (("alpha", self.alpha), ("beta", self.beta)):
                if value is not None and abs(value) > _FLOAT32_MAX:
                    raise ValueError(f"activation_{param}: {value!r} is beyond float32's range "
                                     f"(+-{_FLOAT32_MAX:.4g}), in which this computes")
        return self

    def non_default(self) -> dict:
        """The parameters that differ from their defaults, by their keyword names."""
        defaults = PARAMETERS[self.name]
        out = {f"activation_{p}": v for p, v in (("alpha", self.alpha), ("beta", self.beta))
               if p in defaults and v != defaults[p]}
        if self.clip is not None:
            out["clip"] = self.clip
        return out


def resolve(arg: str, name, alpha=None, beta=None, clip=None) -> Activation:
    """An Activation from user arguments (None = default); `arg` is what the caller calls
    the name, for the messages."""
    if not isinstance(name, str) or name not in PARAMETERS:
        raise ValueError(f"{arg}: expected one of {', '.join(map(repr, PARAMETERS))}, got {name!r}")
    takes = PARAMETERS[name]
    values = {}
    for param, value in (("alpha", alpha), ("beta", beta)):
        if value is None:
            values[param] = takes.get(param)
        elif param not in takes:
            raise ValueError(f"activation_{param}: {name!r} takes no {param}, got {value!r}")
        else:
            values[param] = _finite(f"activation_{param}", value)
    if clip is not None:
        clip = _finite("clip", clip)
        if clip < 0:
            raise ValueError(f"clip: expected a number >= 0, got {clip}")
    return Activation(name, values["alpha"], values["beta"], clip)


def _finite(arg: str, value) -> float:
    # A bool or a string is a mistake, not a number (TypeError, as for other arguments).
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg}: expected a finite real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{arg}: expected a finite real number, got {value!r}")
    return float(value)
