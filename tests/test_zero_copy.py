"""Inputs from other libraries are read in place where dtype and layout allow: anything with
__dlpack__ on the CPU (JAX here; torch in test_interop_torch.py) and the buffer protocol."""

import array
import subprocess
import sys

import numpy as np
import pytest

import elman
from elman import _checks


def test_import_elman_loads_no_framework():
    code = ("import sys, elman, elman.onnx; "
            "print(sorted({'torch', 'onnx', 'onnxruntime', 'keras', 'jax'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_buffer_protocol_is_shared():
    buf = array.array("f", np.arange(12, dtype=np.float32).tobytes())
    view = memoryview(buf).cast("B").cast("f", (3, 1, 4))
    a = _checks.real_array("x", view, np.dtype(np.float32))
    assert np.shares_memory(a, np.frombuffer(buf, np.float32))
    layer = elman.RNN(4, 3, seed=0)
    np.testing.assert_array_equal(layer(view)[0], layer(np.asarray(view))[0])


def test_jax_array_is_shared():
    jax = pytest.importorskip("jax", reason="jax is not installed")
    # On the CPU: where JAX has a GPU, its arrays default to it (and must be copied).
    x = jax.device_put(jax.numpy.arange(24, dtype=jax.numpy.float32).reshape(3, 2, 4) / 10,
                       jax.devices("cpu")[0])
    a = _checks.real_array("x", x, np.dtype(np.float32))
    assert a.ctypes.data == x.unsafe_buffer_pointer(), "a JAX CPU array must be read in place"
    layer = elman.RNN(4, 3, seed=0)
    np.testing.assert_array_equal(layer(x)[0], layer(np.asarray(x))[0])


def test_other_dtype_is_converted_not_shared():
    jnp = pytest.importorskip("jax.numpy", reason="jax is not installed")
    x = jnp.ones((2, 1, 4), dtype=jnp.int32)
    a = _checks.real_array("x", x, np.dtype(np.float32))
    assert a.dtype == np.float32 and np.array_equal(a, np.ones((2, 1, 4)))
