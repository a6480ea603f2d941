# Types of the compiled module (csrc/bindings.cpp), for type checkers: without them mypy
# could not resolve `_core` in the package it checks (an internal error that stopped it).
import enum
from typing import TypeVar

import numpy as np
import numpy.typing as npt

class Activation(enum.Enum):
    tanh = 0
    relu = 1
    sigmoid = 2
    affine = 3
    leaky_relu = 4
    thresholded_relu = 5
    scaled_tanh = 6
    hard_sigmoid = 7
    elu = 8
    softsign = 9
    softplus = 10

class ActivationParams:
    def __init__(self, kind: Activation, alpha: float = 0.0, beta: float = 0.0,
                 clip: float | None = None) -> None: ...

class _Network:
    # cells: per layer and direction, (w_x, w_y, b or None, reverse, ActivationParams)
    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_directions: int,
                 cells: list[tuple[object, ...]]) -> None: ...
    def forward(self, x: npt.NDArray[np.floating], h0: npt.NDArray[np.floating] | None = None,
                lengths: npt.NDArray[np.int64] | None = None
                ) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def num_directions(self) -> int: ...

class NetworkF32(_Network): ...
class NetworkF64(_Network): ...

def activation(v: npt.ArrayLike, activation: Activation, alpha: float = 0.0, beta: float = 0.0,
               clip: float | None = None) -> npt.NDArray[np.floating]: ...
_Float = TypeVar("_Float", np.float32, np.float64)

def matmul(a: npt.NDArray[_Float], b: npt.NDArray[_Float]) -> npt.NDArray[_Float]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def max_num_threads() -> int: ...
def packed_products() -> str | None: ...  # "avx512f", "avx2", or None (OpenBLAS)

def slice_work() -> int: ...  # multiply-adds per slice of a pass, between its checks for Ctrl-C
def _set_slice_work(work: int) -> None: ...  # tests only
