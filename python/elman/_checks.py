"""Turning user input into arrays the engine accepts, or into a clear exception.

Every message names the argument and says what was expected.
"""

from __future__ import annotations

import functools
import importlib
import numbers
import os

import numpy as np

# The engine passes these sizes to BLAS, whose integers are 32-bit.
MAX_FEATURES = 2**31 - 1


def layer_dtype(dtype) -> np.dtype:
    # NumPy reads None as float64 (torch reads it as its default, float32) and a scalar
    # value as its type: neither names a dtype, so both are refused rather than guessed.
    if not isinstance(dtype, (np.dtype, type, str)):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from e
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def positive_int(name: str, value, limit: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value}")
    if limit is not None and value > limit:
        raise ValueError(f"{name}: expected at most {limit}, got {value}")
    return value


def flag(name: str, value) -> bool:
    """True or False (NumPy's bools and the integers 0 and 1 too). Anything else is refused
    rather than read by truthiness: batch_first="False" would otherwise mean True."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {value!r}")


def framework(name: str, interop: str, hint: str = ""):
    """The module `name`, imported for elman's `interop`, or ImportError saying what to
    do: install it where it is missing; where it is there but its import failed (Keras
    without its backend), the failure, and `hint`."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == name:  # (not: a name inside it)
            raise ImportError(f"elman's {interop} interop needs {name} (pip install {name})") from e
        raise ImportError(f"elman's {interop} interop could not import {name}, which is "
                          f"installed: {e}{hint}") from e


def file_argument(name: str, value, method: str, also: str = ""):
    """value if it is a file name (str, bytes, os.PathLike) or a file object with `method`
    ("read" or "write"); else TypeError naming the argument and what it also takes (an
    int would otherwise be taken for a file descriptor by some readers, and refused by
    others without a name)."""
    if isinstance(value, (str, bytes, os.PathLike)) or callable(getattr(value, method, None)):
        return value
    raise TypeError(f"{name}: expected a file name (str, bytes or os.PathLike) or a binary file "
                    f"object with .{method}(){also}, got {type(value).__name__}")


def random_generator(seed) -> np.random.Generator:
    """np.random.default_rng(seed), with a bad seed named in the exception."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise type(e)(f"seed: expected None, an integer >= 0 or a NumPy random generator, got {seed!r} ({e})") from e


def real_array(name: str, value, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of `dtype` (a copy only where needed): NumPy arrays, anything
    with __dlpack__ on the CPU (torch, JAX: shared, not copied) or the buffer protocol."""
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous \
            and value.flags.aligned:
        return value  # already what the engine takes (the common case: ~1 us saved a call)
    a = host_array(name, value)
    fits_in_memory(name, a.size * np.dtype(dtype).itemsize)  # before a copy is tried
    # Contiguous and aligned: the kernels load whole items (and vectors) from it.
    # (np.ascontiguousarray would also make a 0-d array 1-d; np.require is slow.)
    a = a.astype(dtype, order="C", copy=False)
    return a if a.flags.aligned else a.copy()


def host_array(name: str, value) -> np.ndarray:
    """`value` as a NumPy array of real numbers in its own dtype, sharing its memory where
    it can (see real_array)."""
    if np.ma.is_masked(value):  # np.asarray would drop the mask and read what is under it
        raise ValueError(f"{name}: a masked array with masked values; elman does not read masks "
                         "(pass the array filled, e.g. .filled(0), and for sequences that end "
                         "early their lengths)")
    try:
        a = _shared(value)
    except (ValueError, TypeError, RuntimeError) as e:  # RuntimeError: e.g. torch, requires_grad
        _refuse_gpu_array(name, value)
        raise TypeError(f"{name}: expected an array of real numbers ({e})") from e
    # (kind "V" with a safe cast to float32: an extension float type, e.g. ml_dtypes' bfloat16)
    if a.dtype.kind not in "biuf" and not (a.dtype.kind == "V" and np.can_cast(a.dtype, np.float32)):
        _refuse_gpu_array(name, value)
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {a.dtype}")
    return a


def host_arrays(named: dict) -> tuple[list, np.dtype]:
    """Each value of `named` ({name: value or None}) as host_array gives it (None stays
    None), and the dtype of arithmetic on them: float64 if any is float64, else float32."""
    arrays = [None if value is None else host_array(name, value) for name, value in named.items()]
    float64 = any(a is not None and a.dtype == np.float64 for a in arrays)
    return arrays, np.dtype(np.float64 if float64 else np.float32)


def _refuse_gpu_array(name: str, value) -> None:
    """Where `value` could not be read as a host array: if it is a GPU array, says so
    (NumPy's own complaint would be about its dtype, or the producer's about copying)."""
    from . import cuda  # here, not at the top: elman.cuda imports this module

    if cuda.on_device(value):
        raise TypeError(f"{name}: expected an array in host memory, got one in GPU memory "
                        f"({type(value).__name__}); copy it to the host first")


def negation_pending(value) -> bool:
    """Whether `value` is a torch tensor with a pending negation (is_neg(), e.g. the .imag
    of a conjugate): its __dlpack__ and __cuda_array_interface__ give its memory without
    the negation."""
    is_neg = getattr(value, "is_neg", None)
    return callable(is_neg) and hasattr(value, "resolve_neg") and is_neg() is True


def _shared(value) -> np.ndarray:
    """`value` as an ndarray, sharing its memory where it can."""
    if negation_pending(value):
        value = value.resolve_neg()  # a copy with the negation applied
    if not isinstance(value, np.ndarray) and hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (BufferError, RuntimeError, TypeError):
            pass  # e.g. on a GPU, or a dtype NumPy lacks: np.asarray copies, or explains
    return np.asarray(value)


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def exact_shape(name: str, a: np.ndarray, shape: tuple, meaning: str = "") -> None:
    if a.shape != tuple(shape):
        meaning = f" {meaning}" if meaning else ""
        raise ValueError(
            f"{name}: expected shape {shape_str(shape)}{meaning}, got {shape_str(a.shape)}")


def lengths_array(value, steps: int, batch: int) -> np.ndarray:
    a = host_array("lengths", value)
    if a.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {a.dtype}")
    exact_shape("lengths", a, (batch,), "(B,), one length per sequence")
    if a.size and (a.min() < 1 or a.max() > steps):
        raise ValueError(f"lengths: expected values in [1, T={steps}], got values in "
                         f"[{a.min()}, {a.max()}]")
    a = np.ascontiguousarray(a, dtype=np.int64)
    return a if a.flags.aligned else a.copy()


@functools.lru_cache(maxsize=None)
def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**63 - 1


def fits_in_memory(what: str, nbytes: int) -> None:
    """Refuse early, with a message, what could never be allocated."""
    total = _physical_memory()
    if nbytes > total:
        raise MemoryError(f"{what}: needs {nbytes / 2**30:.3g} GiB, more than this machine's "
                          f"{total / 2**30:.3g} GiB of memory")
