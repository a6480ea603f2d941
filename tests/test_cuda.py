"""The CUDA backend (elman.cuda, RNN(device="cuda")).

Two parts:

* Always run (CI has no GPU): what a build without CUDA, or a CUDA build on a machine
  without a GPU, must say (RuntimeError naming the reason: no driver, or, with stand-in
  driver libraries, a driver too old for the build's CUDA or one CUDA cannot start
  with), the functions of elman.cuda,
  device names ("cuda:N", unknown strings: ValueError), and, with elman._cuda faked,
  the refusal of memory and streams of another GPU. The "no device" case is also exercised on a
  GPU machine, in a subprocess with CUDA_VISIBLE_DEVICES="".
* GPU tests, skipped unless elman.cuda.is_available() (set ELMAN_REQUIRE_CUDA=1 to make
  them fail instead of skip, as bench/gpu_check.sh does): the CUDA layer against the
  float64 oracle over a grid of shapes chosen to break kernels (T = 1, B = 1 / 3 / 17 /
  64 / 256, H just below and above 32, 256 / 257, 512, 640, 1024, 1760, odd I), every
  option, every activation with clip, step and stream, NaN isolation, the same layer on
  CPU and CUDA, threads, the device path (torch CUDA tensors and CuPy arrays in,
  elman.cuda.DeviceArray out), and, with two GPUs, a layer on the second.

Tolerance: tests/helpers.py's float32 rule unchanged (4 x the plain float32 NumPy loop's
error + floor). The CUDA kernels use FMA and another summation order (per-warp partial
sums, tree reductions); their rounding error is of the same kind and size as a blocked
CPU sgemm's, so no larger multiple is assumed. A failure here states err and the naive
error: if a case exceeds 4x for a reason that is not a bug (e.g. a longer reduction
chain), raise the multiple for that case with the reason written next to it.
"""

import copy
import ctypes
import gc
import itertools
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import types

import numpy as np
import pytest

import elman
import elman.cuda
from helpers import ROOT, assert_close, assert_padding_zero, check_layer, random_lengths, ref, rng_for, uniform

BUILT = elman.cuda.is_built()
AVAILABLE = elman.cuda.is_available()
REQUIRED = os.environ.get("ELMAN_REQUIRE_CUDA") == "1"

if AVAILABLE:
    _WHY = ""
elif BUILT:
    _WHY = "elman.cuda is built but no CUDA device is visible"
else:
    _WHY = "elman was built without CUDA (ELMAN_CUDA=OFF, or no CUDA toolkit at build time)"

# With ELMAN_REQUIRE_CUDA=1 the GPU tests run (and fail) rather than skip.
gpu = pytest.mark.skipif(not AVAILABLE and not REQUIRED, reason=f"needs a CUDA GPU: {_WHY}")


def make_input(rng, T, B, I, H, batch_first=False):
    # keep pre-activations O(1) when I >> H (weights ~ U(-1/sqrt(H), 1/sqrt(H)))
    scale = min(1.0, np.sqrt(H / I))
    return uniform(rng, (B, T, I) if batch_first else (T, B, I), scale, np.float32)


def assert_host_result(result, shapes):
    """A CUDA layer called with NumPy input returns NumPy float32 arrays, like the CPU layer."""
    assert isinstance(result, tuple) and len(result) == 2
    for a, shape in zip(result, shapes):
        assert isinstance(a, np.ndarray), f"expected numpy.ndarray, got {type(a)}"
        assert a.dtype == np.float32 and a.shape == shape


# ======================================================================================
# Always run
# ======================================================================================

def test_module_functions_are_consistent():
    built, available, count = elman.cuda.is_built(), elman.cuda.is_available(), elman.cuda.device_count()
    assert type(built) is bool and type(available) is bool and type(count) is int
    assert count >= 0
    assert available == (built and count > 0)
    if not built:
        assert count == 0


def test_default_device_is_cpu_and_to_cpu_is_identity():
    layer = elman.RNN(3, 4, seed=0)
    assert layer.device == "cpu"
    assert elman.RNN(3, 4, device="cpu").device == "cpu"
    x = uniform(rng_for("to-cpu"), (5, 2, 3))
    y0, h0 = layer(x)
    assert layer.to("cpu") is layer and layer.device == "cpu"
    y1, h1 = layer(x)
    assert np.array_equal(y0, y1) and np.array_equal(h0, h1)


def test_stream_argument_needs_gpu_input():
    layer = elman.RNN(3, 4, seed=1)
    x = np.zeros((2, 1, 3), np.float32)
    with pytest.raises(ValueError, match="stream: only for input on the GPU"):
        layer(x, stream=5)
    for bad in ("s", -1, 1.5, True, 2**64, object()):
        with pytest.raises(TypeError, match="stream:"):
            elman.cuda.stream_handle(bad)
    assert elman.cuda.stream_handle(None) == 0 and elman.cuda.stream_handle(7) == 7


class _FakeCUDA:
    """A __cuda_array_interface__ with nothing behind it: what elman reads from it is
    checked without a GPU (no kernel ever sees the pointer)."""

    def __init__(self, shape, typestr="<f4", strides=None, **extra):
        self.__cuda_array_interface__ = dict(shape=shape, typestr=typestr, strides=strides,
                                             data=(4096, False), version=3, **extra)


@pytest.mark.skipif(not BUILT, reason="needs the CUDA module (it holds the DLPack reader)")
def test_device_input_views_without_a_gpu(monkeypatch):
    """elman.cuda's reading of __cuda_array_interface__ and DLPack descriptions: pointer,
    shape, dtype by storage, contiguity; refusals name the argument. Where the memory is
    (no GPU here to ask) is test_device_path_refuses_memory_and_streams_of_another_gpu's."""
    asked = []
    monkeypatch.setattr(elman.cuda, "_require_on", lambda gpu, name, pointer: asked.append((gpu, name, pointer)))
    view = elman.cuda._view
    assert view("x", _FakeCUDA((2, 3, 4)), None, 0, "float32", 0)[:2] == (4096, (2, 3, 4))
    assert view("x", _FakeCUDA((2, 3, 4), strides=(48, 16, 4)), (2, 3, 4), 0, "float32", 0)[0] == 4096
    assert view("x", _FakeCUDA((2, 1, 4), strides=(16, 999, 4)), None, 0, "float32", 0)[1] == (2, 1, 4)
    assert view("x", _FakeCUDA((2, 3), typestr="<f2", strides=(6, 2)), None, 0, "float16", 0)[1] == (2, 3)
    assert asked == [(0, "x", 4096)] * 4
    assert view("x", _FakeCUDA((2, 0, 4)), None, 0, "float32", 0)[1] == (2, 0, 4) and len(asked) == 4
    with pytest.raises(TypeError, match="x: expected a float32 CUDA array.*<f8"):
        view("x", _FakeCUDA((2, 3), typestr="<f8"), None, 0, "float32", 0)
    with pytest.raises(TypeError, match="h0: expected a bfloat16 CUDA array.*<f4"):
        view("h0", _FakeCUDA((2, 3)), None, 0, "bfloat16", 0)
    with pytest.raises(ValueError, match="h0: expected shape \\(1, 2, 3\\)"):
        view("h0", _FakeCUDA((2, 3)), (1, 2, 3), 0, "float32", 0)
    with pytest.raises(ValueError, match="x: expected a C-contiguous"):
        view("x", _FakeCUDA((2, 3), strides=(4, 8)), None, 0, "float32", 0)
    with pytest.raises(TypeError, match="x: expected a CUDA array"):
        view("x", np.zeros((2, 3), np.float32), None, 0, "float32", 0)

    # DLPack: the C++ reader of the capsule, on host arrays (device type 1)
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    pointer, shape, strides, dtype, device = elman.cuda._cuda.dlpack_view(a.__dlpack__(), "x")
    assert pointer == a.ctypes.data and shape == (2, 3, 4) and tuple(dtype) == (2, 32, 1)
    assert tuple(device) == (1, 0) and strides in (None, (12, 4, 1))
    b = a[:, ::2]
    pointer, shape, strides, _, _ = elman.cuda._cuda.dlpack_view(b.__dlpack__(), "x")
    assert pointer == b.ctypes.data and shape == (2, 2, 4) and strides == (12, 8, 1)
    assert tuple(elman.cuda._cuda.dlpack_view(a.astype(np.float16).__dlpack__(), "x")[3]) == (2, 16, 1)

    class HostDLPack:                              # claims CUDA, hands out a host capsule
        def __dlpack__(self, stream=None):
            return a.__dlpack__()

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(TypeError, match="x: expected a CUDA array, got a DLPack array on device"):
        view("x", HostDLPack(), None, 0, "float32", 0)
    assert elman.cuda.on_device(HostDLPack()) and not elman.cuda.on_device(a)

    class OpaqueBytes(HostDLPack):                 # torch's bfloat16: typestr "<V2"
        __cuda_array_interface__ = _FakeCUDA((2, 3), typestr="<V2").__cuda_array_interface__

    assert elman.cuda._interface(OpaqueBytes()) is None                # goes by DLPack
    assert elman.cuda._interface(_FakeCUDA((2, 3), typestr="<V2")) is not None  # no DLPack: as is


class _DLTensor(ctypes.Structure):  # DLPack's C struct, as csrc/cuda/dlpack.h has it
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32),
                ("ndim", ctypes.c_int32), ("code", ctypes.c_uint8), ("bits", ctypes.c_uint8),
                ("lanes", ctypes.c_uint16), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64),
                ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class _CraftedDLPack:
    """A CUDA DLPack producer whose capsule says what a test makes it say (a producer's
    bug): the capsule has no destructor, and the struct and shape stay alive with self."""

    def __init__(self, ndim, shape, name=b"dltensor"):
        self.sizes = (ctypes.c_int64 * max(len(shape), 1))(*shape)
        self.tensor = _DLTensor(data=4096, device_type=2, ndim=ndim, code=2, bits=32, lanes=1,
                                shape=ctypes.cast(self.sizes, ctypes.POINTER(ctypes.c_int64)) if shape else None)
        self.name = name

    def __dlpack__(self, stream=None):
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        return new(ctypes.addressof(self.tensor), self.name, None)

    def __dlpack_device__(self):
        return (2, 0)


@pytest.mark.skipif(not BUILT, reason="needs the CUDA module (it holds the DLPack reader)")
def test_malformed_dlpack_is_refused_naming_the_argument(monkeypatch):
    """A DLPack capsule whose tensor is malformed (ndim negative or absurd, no shape, a
    negative size), one already consumed or versioned (another name), or a __dlpack__ that
    gives no capsule, is refused with a TypeError naming the argument, before its shape is
    read: a negative ndim or a missing shape made the reader read memory it must not."""
    monkeypatch.setattr(elman.cuda, "_require_on", lambda gpu, name, pointer: None)
    view = elman.cuda._view
    assert view("x", _CraftedDLPack(2, (3, 4)), None, 0, "float32", 0)[:2] == (4096, (3, 4))
    for producer, match in ((_CraftedDLPack(-1, (3, 4)), r"malformed DLPack tensor \(ndim -1"),
                            (_CraftedDLPack(1000, (3, 4)), r"malformed DLPack tensor \(ndim 1000"),
                            (_CraftedDLPack(2, ()), r"malformed DLPack tensor \(ndim 2, shape missing"),
                            (_CraftedDLPack(2, (3, -4)), r"malformed DLPack tensor \(a negative size"),
                            (_CraftedDLPack(2, (3, 4), b"used_dltensor"), "unconsumed DLPack capsule"),
                            (_CraftedDLPack(2, (3, 4), b"dltensor_versioned"), "unconsumed DLPack capsule")):
        for name in ("x", "h0"):
            with pytest.raises(TypeError, match=f"^{name}: .*{match}"):
                view(name, producer, None, 0, "float32", 0)

    class NoCapsule(_CraftedDLPack):
        def __dlpack__(self, stream=None):
            return 4096

    with pytest.raises(TypeError, match="^h0: its __dlpack__ gave an object of type int, not a DLPack capsule"):
        view("h0", NoCapsule(2, (3, 4)), None, 0, "float32", 0)


def test_gpu_array_that_refuses_to_be_read_names_the_argument():
    """What torch does with a CUDA tensor that requires grad: __cuda_array_interface__ and
    __dlpack__ raise RuntimeError; elman reads no pointer and says which argument it was."""

    class RequiresGrad:
        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")

        def __dlpack__(self, stream=None):
            raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")

        def __dlpack_device__(self):
            return (2, 0)

    assert elman.cuda.on_device(RequiresGrad())
    for name in ("x", "h0"):
        with pytest.raises(TypeError, match=f"{name}: could not be read through DLPack.*detach"):
            elman.cuda._view(name, RequiresGrad(), None, 0, "float32", 0)


class _FakeNetwork:
    """elman._cuda.Network's face to the device path, recording forward_device calls."""
    storage, input_size, hidden_size, num_layers, num_directions, device = "float32", 4, 5, 2, 1, 0

    def __init__(self):
        self.calls = []

    def forward_device(self, *args):
        self.calls.append(args)
        return "y", "h_n"


def _fake_module(monkeypatch, memory, streams=None, capturing=()):
    """Replaces elman._cuda where the device path asks where memory and streams are:
    memory maps a pointer to its GPU (or ANY_DEVICE, NOT_DEVICE_MEMORY), streams a handle
    to its GPU; the handles in `capturing` are capturing a CUDA graph."""
    fake = types.SimpleNamespace(ANY_DEVICE=-1, NOT_DEVICE_MEMORY=-2,
                                 memory_device=lambda pointer, device: memory[pointer],
                                 stream_device=lambda handle, device: (streams or {})[handle],
                                 stream_capturing=lambda handle, device: handle in capturing)
    monkeypatch.setattr(elman.cuda, "_cuda", fake)
    return fake


def test_device_step_and_chunks_without_a_gpu(monkeypatch):
    """step_device reads x_t (B, I) as one step of (1, B, I) and h (L, B, H); run_device
    checks a stream's batch size; refusals name the argument."""
    _fake_module(monkeypatch, {4096: 0, 8192: 0})
    net = _FakeNetwork()
    state = _FakeCUDA((2, 3, 5))
    state.__cuda_array_interface__["data"] = (8192, False)  # told apart from x's pointer
    assert elman.cuda.step_device(net, _FakeCUDA((3, 4)), None) == "h_n"
    assert net.calls[-1] == (4096, 1, 3, 0, None, 0, False)
    assert elman.cuda.step_device(net, _FakeCUDA((3, 4)), state) == "h_n"
    assert net.calls[-1] == (4096, 1, 3, 8192, None, 0, False)
    with pytest.raises(ValueError, match=r"x_t: expected a CUDA array of shape \(B, I\) with I=4"):
        elman.cuda.step_device(net, _FakeCUDA((1, 3, 4)), None)
    with pytest.raises(ValueError, match=r"h: expected shape \(2, 3, 5\)"):
        elman.cuda.step_device(net, _FakeCUDA((3, 4)), _FakeCUDA((2, 5)))
    with pytest.raises(TypeError, match="h: expected a CUDA array"):
        elman.cuda.step_device(net, _FakeCUDA((3, 4)), np.zeros((2, 3, 5), np.float32))
    names = ("x_chunk", "state", "T_c")
    assert elman.cuda.run_device(net, _FakeCUDA((6, 3, 4)), state, None, batch_first=False,
                                 names=names, batch=3) == ("y", "h_n")
    assert net.calls[-1] == (4096, 6, 3, 8192, None, 0, False)
    elman.cuda.run_device(net, _FakeCUDA((3, 6, 4)), None, None, batch_first=True, names=names, batch=3)
    assert net.calls[-1] == (4096, 6, 3, 0, None, 0, True)
    with pytest.raises(ValueError, match=r"x_chunk: expected shape \(B, T_c, I\) with B=2"):
        elman.cuda.run_device(net, _FakeCUDA((3, 6, 4)), None, None, batch_first=True,
                              names=names, batch=2)
    with pytest.raises(ValueError, match=r"state: expected shape \(2, 3, 5\)"):
        elman.cuda.run_device(net, _FakeCUDA((6, 3, 4)), _FakeCUDA((1, 3, 5)), None,
                              batch_first=False, names=names, batch=3)


@pytest.mark.parametrize("key,value,match", [
    ("shape", None, "'shape'"), ("shape", (2.0, 4), "'shape'"), ("shape", "34", "'shape'"),
    ("shape", (-1, 4), "'shape'"), ("shape", (True, 4), "'shape'"),
    ("typestr", None, "'typestr'"), ("typestr", 4, "'typestr'"),
    ("data", None, "'data'"), ("data", (4096,), "'data'"), ("data", (4096.0, False), "'data'"),
    ("data", (-1, False), "'data'"), ("data", (2**64, False), "'data'"),
    ("strides", (16,), "'strides'"), ("strides", (64, 16, 4, 4), "'strides'"),
    ("strides", (16.0, 4), "'strides'"), ("strides", ("16", 4), "'strides'"),
    ("stream", -1, "'stream'"), ("stream", 1.0, "'stream'"), ("stream", True, "'stream'"),
    ("stream", "1", "'stream'"), ("stream", 2**63, "'stream'"),
])
def test_malformed_cuda_array_interface_names_the_argument(monkeypatch, key, value, match):
    """A __cuda_array_interface__ that breaks the protocol (version 3) is refused with a
    TypeError naming the argument and the entry, before its pointer or stream reaches
    CUDA: before, a missing entry gave a bare KeyError, a short strides tuple or a float
    shape passed the shape and contiguity checks, and stream -1 was waited for."""
    _fake_module(monkeypatch, {4096: 0})
    waits = []
    monkeypatch.setattr(elman.cuda._cuda, "stream_wait", lambda *args: waits.append(args), raising=False)
    net = _FakeNetwork()
    for name, call in (("x_t", lambda bad: elman.cuda.step_device(net, bad, None)),
                       ("h", lambda bad: elman.cuda.step_device(net, _FakeCUDA((3, 4)), bad))):
        bad = _FakeCUDA((3, 4) if name == "x_t" else (2, 3, 5))
        if value is None:
            del bad.__cuda_array_interface__[key]
        else:
            bad.__cuda_array_interface__[key] = value
        with pytest.raises(TypeError, match=f"^{name}: its __cuda_array_interface__ is malformed: .*{match}"):
            call(bad)
    assert net.calls == [] and waits == []


def test_well_formed_cuda_array_interfaces_are_read(monkeypatch):
    """What the protocol allows is read as it says: lists for tuples, NumPy ints, strides
    None or in bytes, a producer's stream waited for, and a 'mask' of None. A mask is
    refused: elman would read the masked-out values as data."""
    _fake_module(monkeypatch, {4096: 0})
    waits = []
    monkeypatch.setattr(elman.cuda._cuda, "stream_wait", lambda *args: waits.append(args), raising=False)
    net = _FakeNetwork()
    x = _FakeCUDA([np.int64(3), 4], strides=[16, np.int32(4)], mask=None, stream=np.uint64(5))
    x.__cuda_array_interface__["data"] = [np.uint64(4096), True]  # read-only: elman only reads x
    assert elman.cuda.step_device(net, x, None) == "h_n"
    assert net.calls == [(4096, 1, 3, 0, None, 0, False)] and waits == [(0, 5, 0)]
    masked = _FakeCUDA((3, 4), mask=_FakeCUDA((3, 4)))
    with pytest.raises(TypeError, match="^x_t: a masked CUDA array"):
        elman.cuda.step_device(net, masked, None)


def test_device_path_refuses_memory_and_streams_of_another_gpu(monkeypatch):
    """A kernel must never be given memory its GPU cannot read (another GPU's, or host
    memory it cannot read at that address): reading it would be an illegal address, which
    breaks the process's CUDA context. Each refusal names the argument and both GPUs and
    comes before any work is queued; managed or readable host memory (ANY_DEVICE) is
    taken. The GPU side of this (where memory really is) is
    test_host_memory_as_cuda_array_refused and test_layer_on_second_gpu."""
    def at(shape, pointer):
        a = _FakeCUDA(shape)
        a.__cuda_array_interface__["data"] = (pointer, False)
        return a

    # no stream_wait in the fake: a producer's stream must not be waited for before a refusal
    _fake_module(monkeypatch, {100: 1, 200: 0, 300: -1, 400: -2, 500: 1}, streams={7: 1, 9: 0, 11: -1})
    net = _FakeNetwork()
    net.device = 1

    def refused(error, match, call):
        queued = len(net.calls)
        with pytest.raises(error, match=match):
            call()
        assert len(net.calls) == queued, "refused after its work was queued"

    assert elman.cuda.step_device(net, at((3, 4), 100), at((2, 3, 5), 300)) == "h_n"
    refused(ValueError, r"x_t: on GPU 0 \(cuda:0\), but the layer is on GPU 1; move the array or the layer",
            lambda: elman.cuda.step_device(net, at((3, 4), 200), None))
    refused(ValueError, r"h: on GPU 0 \(cuda:0\), but the layer is on GPU 1",
            lambda: elman.cuda.step_device(net, at((3, 4), 100), at((2, 3, 5), 200)))
    refused(TypeError, "x_t: its data is not GPU memory", lambda: elman.cuda.step_device(net, at((3, 4), 400), None))
    with_stream = at((3, 4), 200)
    with_stream.__cuda_array_interface__["stream"] = 5
    refused(ValueError, "x_t: on GPU 0", lambda: elman.cuda.step_device(net, with_stream, None))
    assert elman.cuda.run_device(net, at((6, 3, 4), 100), at((2, 3, 5), 500), None,
                                 batch_first=False, stream=7) == ("y", "h_n")
    assert net.calls[-1] == (100, 6, 3, 500, None, 7, False)
    for handle in (0, 1, 2, 11):  # default streams (the layer's GPU's in its call); unknown
        elman.cuda.run_device(net, at((6, 3, 4), 100), None, None, batch_first=False, stream=handle)
    refused(ValueError, "stream: belongs to GPU 0, but the layer is on GPU 1",
            lambda: elman.cuda.run_device(net, at((6, 3, 4), 100), None, None, batch_first=False, stream=9))
    # A torch or CuPy stream object names its GPU where CUDA cannot: their default streams
    # (handle 0), and handles whose GPU CUDA cannot name (11). CUDA's answer comes first;
    # CuPy's -1 means it does not know.
    def torch_like(handle, gpu):
        return types.SimpleNamespace(cuda_stream=handle, device=_TorchLikeDevice("cuda", gpu))

    def cupy_like(handle, gpu):
        return types.SimpleNamespace(ptr=handle, device_id=gpu)

    for stream in (torch_like(0, 0), cupy_like(0, 0), torch_like(11, 0), cupy_like(9, -1), cupy_like(9, 1)):
        refused(ValueError, "stream: belongs to GPU 0",
                lambda: elman.cuda.run_device(net, at((6, 3, 4), 100), None, None, batch_first=False,
                                              stream=stream))
    for stream in (torch_like(7, 0), cupy_like(0, -1), cupy_like(11, -1), torch_like(0, 1)):
        elman.cuda.run_device(net, at((6, 3, 4), 100), None, None, batch_first=False, stream=stream)
    refused(ValueError, r"state: on GPU 0 \(cuda:0\), but the layer is on GPU 1; a stream's state stays .* reset\(\)",
            lambda: elman.cuda.run_device(net, at((6, 3, 4), 100), at((2, 3, 5), 200), None,
                                          batch_first=False, names=("x_chunk", "state", "T_c")))
    refused(TypeError, "x: its data is not GPU memory",
            lambda: elman.cuda.run_device(net, at((6, 3, 4), 400), None, None, batch_first=False))


def test_capturing_stream_is_refused_before_any_work(monkeypatch):
    """A stream capturing a CUDA graph is refused, naming `stream`, before any producer's
    stream is waited for or any work queued: elman's waits would break the capture, and a
    replay would write into outputs that later calls reuse. The legacy default stream
    (handle 0, no `stream=`) is not asked. The GPU side is test_graph_capture_is_refused."""
    _fake_module(monkeypatch, {100: 0}, streams={7: 0}, capturing={8})  # 8's GPU: not asked
    net = _FakeNetwork()
    net.device = 0
    x = _FakeCUDA((6, 3, 4))
    x.__cuda_array_interface__["data"] = (100, False)
    x.__cuda_array_interface__["stream"] = 5  # no stream_wait in the fake: must not be reached
    with pytest.raises(ValueError, match="stream: is capturing a CUDA graph"):
        elman.cuda.run_device(net, x, None, None, batch_first=False, stream=8)
    assert net.calls == []
    del x.__cuda_array_interface__["stream"]
    for handle in (0, 7):
        elman.cuda.run_device(net, x, None, None, batch_first=False, stream=handle)
    assert [call[5] for call in net.calls] == [0, 7]


@pytest.mark.parametrize("device", ["tpu", "gpu", "metal", "", "cuda cuda", "CUDA", "cuda:", "cuda:-1",
                                    "cuda:01", "cuda:x", "cuda:0 ", " cuda", "cpu:0", None, 0, 1.0])
def test_unknown_device_string_is_value_error(device):
    with pytest.raises(ValueError, match="device"):
        elman.RNN(3, 4, device=device)
    layer = elman.RNN(3, 4, seed=1)
    with pytest.raises(ValueError, match="device"):
        layer.to(device)
    assert layer.device == "cpu"
    check_layer(layer, uniform(rng_for("bad-dev"), (4, 2, 3)))   # still works


class _TorchLikeDevice:
    """What torch.device offers elman: type, index and str()."""

    def __init__(self, type, index=None):
        self.type, self.index = type, index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


def test_device_names():
    """"cpu", "cuda" and "cuda:N" are the names; a torch.device-like object is read by its
    str(). Checked without a GPU: the names themselves, and which GPU each means with the
    GPU count and current GPU replaced."""
    assert [elman.cuda.check_device(d) for d in ("cpu", "cuda", "cuda:0", "cuda:12")] == \
        ["cpu", "cuda", "cuda:0", "cuda:12"]
    assert elman.cuda.check_device(_TorchLikeDevice("cuda", 3)) == "cuda:3"
    assert elman.cuda.check_device(_TorchLikeDevice("cpu")) == "cpu"
    assert elman.RNN(3, 4, device=_TorchLikeDevice("cpu")).device == "cpu"
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'.*'xla:0'"):
        elman.cuda.check_device(_TorchLikeDevice("xla", 0))


def test_gpu_number_of_a_device(monkeypatch):
    monkeypatch.setattr(elman.cuda, "require", lambda: None)
    monkeypatch.setattr(elman.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(elman.cuda, "_cuda", types.SimpleNamespace(current_device=lambda: 1))
    assert [elman.cuda.gpu_number(d) for d in ("cuda:0", "cuda:1", "cuda")] == [0, 1, 1]
    with pytest.raises(ValueError, match="device: no GPU 'cuda:2'; this process sees only cuda:0 to cuda:1"):
        elman.cuda.gpu_number("cuda:2")
    monkeypatch.setattr(elman.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="device: no GPU 'cuda:1'; this process sees only cuda:0$"):
        elman.cuda.gpu_number("cuda:1")


def test_kernel_choice(monkeypatch):
    """set_kernel_choice takes "rule" or "timed" (anything else: ValueError naming
    `choice`, nothing changed) and tells the CUDA module, which keeps it; without the
    module it is kept in Python."""
    module = types.SimpleNamespace(timed=False)
    module.set_timed_choice = lambda timed: setattr(module, "timed", timed)
    module.timed_choice = lambda: module.timed
    monkeypatch.setattr(elman.cuda, "_cuda", module)
    assert elman.cuda.kernel_choice() == "rule"
    elman.cuda.set_kernel_choice("timed")
    assert (elman.cuda.kernel_choice(), module.timed) == ("timed", True)
    for bad in ("Timed", "fastest", "", None, 1, True, ("timed",)):
        with pytest.raises(ValueError, match=r"choice: expected 'rule' or 'timed', got "):
            elman.cuda.set_kernel_choice(bad)
    assert (elman.cuda.kernel_choice(), module.timed) == ("timed", True)
    elman.cuda.set_kernel_choice("rule")
    assert (elman.cuda.kernel_choice(), module.timed) == ("rule", False)
    monkeypatch.setattr(elman.cuda, "_cuda", None)
    monkeypatch.setattr(elman.cuda, "_kernel_choice", "rule")
    elman.cuda.set_kernel_choice("timed")
    assert elman.cuda.kernel_choice() == "timed"


@pytest.mark.skipif(not BUILT, reason="needs the CUDA module (no GPU needed)")
def test_kernel_choice_reaches_the_module():
    try:
        elman.cuda.set_kernel_choice("timed")
        assert elman.cuda._cuda.timed_choice() is True and elman.cuda.kernel_choice() == "timed"
        elman.cuda.set_kernel_choice("rule")
        assert elman.cuda._cuda.timed_choice() is False and elman.cuda.kernel_choice() == "rule"
    finally:
        elman.cuda.set_kernel_choice("rule")


@pytest.mark.skipif(not BUILT, reason="needs the CUDA module (no GPU needed)")
@pytest.mark.parametrize("query", ["recurrence_kernel", "recurrence_trial"])
def test_kernel_queries_check_their_arguments(query):
    """Refused before any GPU is asked (so also on a machine without one)."""
    ask = getattr(elman.cuda._cuda, query)
    for batch, hidden in ((0, 5), (1, 0), (2**31, 5), (1, 2**31), (-1, 5)):
        with pytest.raises(ValueError, match=query + r": batch and hidden must be in \[1, 2\*\*31\)"):
            ask(batch, hidden, False, "float32")
    with pytest.raises(ValueError, match="storage: expected 'float32', 'float16' or 'bfloat16', got 'f32'"):
        ask(1, 5, False, "f32")


def check_refused(message, key):
    """No GPU to use: 0 devices, moves to "cuda", "cuda:0" (or a torch.device-like
    object) refused with `message`, the layer left usable on the CPU."""
    assert elman.cuda.is_available() is False
    assert elman.cuda.device_count() == 0
    for device in ("cuda", "cuda:0", "cuda:1", _TorchLikeDevice("cuda", 0)):
        with pytest.raises(RuntimeError, match=message):
            elman.RNN(3, 4, device=device)
        layer = elman.RNN(3, 4, seed=2)
        with pytest.raises(RuntimeError, match=message):
            layer.to(device)
        assert layer.device == "cpu"
        check_layer(layer, uniform(rng_for(key), (4, 2, 3)))   # the failed move left it usable


@pytest.mark.skipif(BUILT, reason="elman.cuda is built in; this checks a build without CUDA")
def test_built_without_cuda():
    check_refused("built without CUDA", "no-cuda")


def _build_tools():
    """(cmake, pybind11's CMake directory), or None where this environment lacks what a
    build without isolation needs (CI's CUDA step has them; the README's venv does not)."""
    try:
        import pybind11
        import scipy_openblas32  # noqa: F401 (CMakeLists.txt asks it for OpenBLAS)
    except ImportError:
        return None
    bin_dir = os.path.dirname(sys.executable)
    cmake = shutil.which("cmake", path=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    return (cmake, pybind11.get_cmake_dir()) if cmake else None


@pytest.mark.skipif(_build_tools() is None, reason="needs cmake, pybind11 and scipy-openblas32 "
                                                   "in this environment (CI's CUDA step has them)")
@pytest.mark.parametrize("value, outcome", [("OFF", "without"), ("off", "without"), ("0", "without"),
                                            ("false", "without"), ("maybe", "refused"), ("AUTO ON", "refused")])
def test_cuda_build_option_values(tmp_path, value, outcome):
    """ELMAN_CUDA is read in any case, with CMake's names of true and false: a lower-case
    "off" was taken for AUTO and built CUDA. Anything else stops the build, naming the
    option. CMake's configure step only (OFF never looks for nvcc), on this source tree.
    (AUTO and ON depend on the machine's nvcc and cuBLAS: CI's CUDA build is ON's test.)"""
    cmake, pybind11_dir = _build_tools()
    done = subprocess.run([cmake, "-S", str(ROOT), "-B", str(tmp_path), f"-DELMAN_CUDA={value}",
                           "-DSKBUILD_PROJECT_NAME=elman", "-DSKBUILD_PROJECT_VERSION=0.0.0",
                           f"-Dpybind11_DIR={pybind11_dir}", f"-DPython_EXECUTABLE={sys.executable}"],
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    if outcome == "without":
        assert done.returncode == 0, output[-3000:]
        assert f"elman: building without CUDA: ELMAN_CUDA={value}" in output, output[-3000:]
        assert "building the CUDA backend" not in output
    else:
        assert done.returncode != 0
        assert f"ELMAN_CUDA: expected AUTO, ON or OFF, got '{value}'" in output, output[-3000:]


def driver_loads():
    """Whether the NVIDIA driver's library loads here, asked without elman: as the CUDA
    runtime looks for it."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not BUILT or AVAILABLE,
                    reason="checks a CUDA build on a machine without a GPU (the CI case); "
                           "on a GPU machine test_no_visible_device_subprocess covers it")
def test_built_but_no_device():
    check_refused("no CUDA device can be used", "no-dev")
    if not driver_loads():   # the CI case: the reason names the missing driver
        check_refused(r"no CUDA device can be used: no NVIDIA driver was found", "no-driver")


def test_no_visible_device_subprocess():
    """With CUDA_VISIBLE_DEVICES="" the process sees no GPU, whatever the machine: a CUDA
    build must then report no device (and a build without CUDA say so)."""
    if not BUILT:
        expected = "built without CUDA"
    elif driver_loads():
        expected = 'no CUDA device is visible to this process (CUDA_VISIBLE_DEVICES="")'
    else:
        expected = "no NVIDIA driver was found"
    code = textwrap.dedent(f"""
        import numpy as np, elman, elman.cuda
        assert elman.cuda.is_built() is {BUILT}
        assert elman.cuda.is_available() is False
        assert elman.cuda.device_count() == 0
        for make in (lambda: elman.RNN(3, 4, device="cuda"), lambda: elman.RNN(3, 4).to("cuda")):
            try:
                make()
            except RuntimeError as e:
                assert {expected!r} in str(e), str(e)
            else:
                raise AssertionError("no RuntimeError")
        layer = elman.RNN(3, 4, seed=0)
        y, h = layer(np.ones((2, 1, 3), np.float32))
        assert layer.device == "cpu" and y.shape == (2, 1, 4)
        print("ok")
    """)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("ELMAN_REQUIRE_CUDA", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT / "tests",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def stand_in_driver(directory, version):
    """A libcuda.so.1 in `directory` that reports CUDA `version` (1000 x major + 10 x
    minor) and has nothing else: the CUDA runtime loads it from LD_LIBRARY_PATH before any
    real driver, and must then refuse to start."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("needs a C compiler to build a stand-in driver library")
    source = directory / "driver.c"
    source.write_text("int cuDriverGetVersion(int *v) { *v = %d; return 0; }\n"
                      "int cuInit(unsigned flags) { (void)flags; return 0; }\n" % version)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(directory / "libcuda.so.1"), str(source)],
                   check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(not BUILT, reason="needs the CUDA module (no GPU needed)")
@pytest.mark.parametrize("version, reason", [
    # CUDA 11.8: older than any runtime elman builds with (clusters need CUDA 12)
    (11080, r"the NVIDIA driver supports CUDA 11\.8, older than the CUDA 1[2-9]\.\d+ this elman "
            r"was built with: update the driver to one for CUDA 1[2-9]\.0 or newer"),
    # new enough by its number, but without the functions the runtime needs
    (99000, r"CUDA could not start: \S"),
])
def test_unusable_driver_is_named(tmp_path, version, reason):
    """With a GPU machine's driver too old for the CUDA elman was built with (the common
    case: a wheel built with a newer CUDA than the driver's), moving a layer to "cuda"
    says so, rather than that no device is there; a driver CUDA cannot start with gives
    CUDA's own reason."""
    stand_in_driver(tmp_path, version)
    code = textwrap.dedent(f"""
        import re, elman, elman.cuda
        assert elman.cuda.is_available() is False and elman.cuda.device_count() == 0
        try:
            elman.RNN(3, 4, device="cuda")
        except RuntimeError as e:
            assert re.search({"device: no CUDA device can be used: " + reason!r}, str(e)), str(e)
        else:
            raise AssertionError("no RuntimeError")
        print("ok")
    """)
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(
        p for p in (str(tmp_path), os.environ.get("LD_LIBRARY_PATH")) if p))
    env.pop("ELMAN_REQUIRE_CUDA", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT / "tests",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_required_cuda_is_available():
    """bench/gpu_check.sh sets ELMAN_REQUIRE_CUDA=1: there a build or a machine without CUDA
    must fail loudly instead of skipping every GPU test."""
    if not REQUIRED:
        pytest.skip("ELMAN_REQUIRE_CUDA=1 not set")
    assert BUILT, "ELMAN_REQUIRE_CUDA=1 but elman was built without CUDA"
    assert AVAILABLE, "ELMAN_REQUIRE_CUDA=1 but elman.cuda sees no device"


# ======================================================================================
# GPU: the layer against the oracle
# ======================================================================================

# (T, B, I, H, num_layers, bidirectional). Why each is here:
CASES = [
    (1, 1, 1, 1, 1, False),          # smallest everything
    (1, 64, 33, 256, 1, True),       # T = 1, both directions
    (60, 1, 31, 31, 1, False),       # H just below a warp
    (60, 1, 33, 33, 2, True),        # H just above a warp
    (40, 3, 17, 32, 1, False),       # H exactly a warp, odd I
    (40, 3, 255, 256, 2, False),     # H = 256 (the B = 1 showcase size), I just below
    (30, 17, 7, 257, 1, True),       # H = 257: one column over a tile
    (300, 1, 256, 256, 1, False),    # long sequence at B = 1 (the on-chip kernels)
    (20, 1, 512, 512, 1, True),      # H = 512 at B = 1
    (16, 64, 129, 512, 2, True),     # B = 64, layer 2 reads 2H
    (12, 3, 640, 640, 1, False),     # H = 640: not a power of two
    (10, 1, 1023, 1024, 1, True),    # H = 1024 at B = 1, odd I
    (8, 17, 1024, 1024, 3, False),   # three layers, B = 17
    (6, 1, 1760, 1760, 1, False),    # H = 1760: W_y larger than any on-chip budget
    (5, 64, 1760, 1760, 1, False),   # large batch, large H (the tensor-core / GEMM regime)
    (4, 17, 1761, 1760, 2, True),    # odd I, bidirectional, two layers at H = 1760
    (3, 256, 512, 512, 1, False),    # B = 256
    (25, 5, 80, 33, 3, True),        # three bidirectional layers
    (100, 2, 3, 64, 1, False),       # I tiny against H
    (17, 7, 37, 129, 2, True),       # every size odd
]


@gpu
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_shape_grid(case, nonlinearity):
    T, B, I, H, L, bidir = case
    i = CASES.index(case)
    bias, give_h0, give_lengths = i % 3 != 1, i % 2 == 1, i % 4 != 3
    layer = elman.RNN(I, H, L, nonlinearity, bias, bidirectional=bidir, seed=i, device="cuda")
    assert layer.device == _current_gpu()
    rng = rng_for("cuda", case, nonlinearity)
    x = make_input(rng, T, B, I, H)
    D = 2 if bidir else 1
    h0 = uniform(rng, (D * L, B, H)) if give_h0 else None
    lengths = random_lengths(rng, T, B) if give_lengths else None
    result = layer(x, h0, lengths)
    assert_host_result(result, [(T, B, D * H), (D * L, B, H)])
    check_layer(layer, x, h0, lengths, result=result)    # also: exact zeros past lengths


@gpu
@pytest.mark.parametrize("H", [1, 100, 128, 129, 256, 257, 512, 513, 640, 641, 1024, 2200])
def test_one_row_kernels(H):
    """B = 1, where the grid above mostly gives lengths, by default: few_rows (one block for
    H <= 128, a cluster of two for H <= 256, of eight for H <= 512, also with a length),
    past it the CUDA-core column kernel (tiled_fma, up to H ~ 2100 on 132 SMs), and the
    grid kernel with warp dot products past that (on 132 SMs, H = 2200 without a length),
    both directions."""
    T, I = 40, 24
    layer = elman.RNN(I, H, bidirectional=True, seed=31, device="cuda")
    rng = rng_for("cuda-one-row", H)
    x = make_input(rng, T, 1, I, H)
    check_layer(layer, x)
    check_layer(layer, x, uniform(rng, (2, 1, H)))
    check_layer(layer, x, lengths=np.array([T // 2 + 1]))


@gpu
@pytest.mark.parametrize("kernel", ["few_rows", "lean", "lean_async"])
@pytest.mark.parametrize("B", [1, 2, 3, 4])
@pytest.mark.parametrize("H", [1, 100, 128, 129, 256, 257, 512, 513])
def test_few_rows_kernel(B, H, kernel, monkeypatch):
    """1-4 rows: few_rows and lean, its form with fewer threads that the rule takes where it
    runs (H <= 128 in one block; a cluster of two for H <= 256, of eight for H <= 512; a
    group of one row each where they fit at once, test_few_rows_groups covers few_rows's
    larger groups), and lean_async, lean whose blocks send each other their state instead
    of a cluster barrier (clusters only: H > 128), each forced, with h0 and with lengths
    that end rows at different steps; past their range another kernel. Two stacked
    bidirectional layers: the directions' recurrences run side by side on two streams, and
    the second layer must wait for both."""
    monkeypatch.setenv("ELMAN_CUDA_KERNEL", kernel)
    T, I = 30, 20
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=33, device="cuda")
    rng = rng_for("cuda-few-rows", B, H)
    x = make_input(rng, T, B, I, H)
    check_layer(layer, x)
    check_layer(layer, x, uniform(rng, (4, B, H)), random_lengths(rng, T, B))
    if kernel == "lean_async" and H > 128:  # it must run wherever lean runs in clusters
        ran = elman.cuda._cuda.recurrence_kernel(B, H, False, "float32")
        monkeypatch.setenv("ELMAN_CUDA_KERNEL", "lean")
        lean_ran = elman.cuda._cuda.recurrence_kernel(B, H, False, "float32")
        assert (ran == "lean_async") == (lean_ran == "lean"), f"lean_async: {ran}, lean: {lean_ran}"


def few_rows_limit(H, storage="float32"):
    """The largest B that the choice runs on few_rows at this H (it does so for every
    smaller B: groups of 1, 2 or 4 rows, as long as they all fit at once); 0 if none."""
    def few_rows(B):
        return elman.cuda._cuda.recurrence_kernel(B, H, False, storage) == "few_rows"
    if not few_rows(1):
        return 0
    lo, hi = 1, 2
    while few_rows(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if few_rows(mid) else (lo, mid)
    return lo


@gpu
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
@pytest.mark.parametrize("H", [64, 200, 300])
def test_few_rows_groups(H, storage, monkeypatch):
    """More rows than one group: few_rows runs groups of 1 row while G groups fit at once
    (G = the SM count at H <= 128, the clusters of 2 or 8 that fit beyond), of 2 rows up to
    2G, of 4 up to 4G, and leaves more to another kernel. Each grouping, with a partial
    last group, against the oracle, with lengths and h0, both directions. Forced (the rule
    takes lean at H <= 512 where lean runs), so the limit is few_rows's own: past it the rule chooses."""
    monkeypatch.setenv("ELMAN_CUDA_KERNEL", "few_rows")
    limit = few_rows_limit(H, storage)
    if limit == 0 and H > 128:
        pytest.skip("few_rows runs H > 128 in clusters, which need compute capability 9")
    assert limit > 0, f"few_rows is not chosen even for B = 1 at H = {H}"
    assert limit % 4 == 0, f"few_rows up to B = {limit}: not 4 rows x the groups that fit"
    groups = limit // 4
    assert elman.cuda._cuda.recurrence_kernel(limit + 1, H, False, storage) != "few_rows"
    T, I = 9, 12
    layer = elman.RNN(I, H, bidirectional=True, seed=35, device="cuda", storage=storage)
    # groups + 1 or + 2 is odd: a last group of 2 with one row
    for B in sorted({min(5, groups), groups, groups + 1, groups + 2, 2 * groups + 1, limit}):
        rng = rng_for("cuda-few-rows-groups", B, H, storage)
        x = make_input(rng, T, B, I, H)
        args = (x, uniform(rng, (2, B, H)), random_lengths(rng, T, B))
        if storage == "float32":
            check_layer(layer, *args)
        else:
            check_storage_layer(layer, *args, layer(*args))


@gpu
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_directions_side_by_side_on_a_caller_stream(storage):
    """Two stacked bidirectional layers on few_rows (B = 2, H = 200), whose directions run
    side by side on two streams: on a caller's stream, in float32 (projections in place)
    and in bfloat16 (both directions' projections in one buffer, which the second layer
    reuses), the outputs equal the synchronous host path's."""
    torch = _torch_cuda()
    T, B, I, H = 25, 2, 30, 200
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=34, device="cuda", storage=storage)
    rng = rng_for("side-by-side", storage)
    x = torch.from_numpy(make_input(rng, T, B, I, H)).cuda().to(getattr(torch, storage))
    y_host, h_host = layer(x.float().cpu().numpy())  # already rounded to the storage type
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        y, h_n = layer(x, stream=side)
        y_t, h_t = torch.from_dlpack(y).float(), torch.from_dlpack(h_n).float()
    side.synchronize()
    assert np.array_equal(y_t.cpu().numpy(), y_host) and np.array_equal(h_t.cpu().numpy(), h_host)


@gpu
def test_gpu_tensor_with_a_pending_negation_is_refused():
    """torch's CUDA .imag of a conjugate has its negation pending (is_neg()), which its
    __cuda_array_interface__ and __dlpack__ leave out; a copy with it applied could be
    freed before a given stream reads it, so elman refuses it, naming the argument."""
    torch = _torch_cuda()
    layer = elman.RNN(3, 4, seed=0, device="cuda")
    x = torch.randn(5, 2, 3, dtype=torch.complex64, device="cuda").conj().imag
    assert x.is_neg()
    with pytest.raises(TypeError, match="^x: a torch tensor with a pending negation"):
        layer(x)
    y, _ = layer(x.resolve_neg())
    np.testing.assert_allclose(torch.from_dlpack(y).cpu().numpy(), layer(x.resolve_neg().cpu().numpy())[0],
                               rtol=1e-5, atol=1e-6)


OPTIONS = list(itertools.product([1, 2, 3], [False, True], [False, True], [False, True],
                                 [False, True], [False, True]))


@gpu
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,h0,lengths", OPTIONS)
def test_every_option(num_layers, bidirectional, batch_first, bias, h0, lengths):
    T, B, I, H = 6, 5, 7, 33
    layer = elman.RNN(I, H, num_layers, "tanh", bias, batch_first, bidirectional, seed=3,
                      device="cuda")
    rng = rng_for("cuda-opt", num_layers, bidirectional, batch_first, bias, h0, lengths)
    D = 2 if bidirectional else 1
    x = make_input(rng, T, B, I, H, batch_first)
    h = uniform(rng, (D * num_layers, B, H)) if h0 else None
    ln = random_lengths(rng, T, B) if lengths else None
    result = layer(x, h, ln)
    assert_host_result(result, [(B, T, D * H) if batch_first else (T, B, D * H),
                                (D * num_layers, B, H)])
    check_layer(layer, x, h, ln, result=result)


@gpu
@pytest.mark.parametrize("B,H", [(1, 33), (3, 200), (17, 257), (64, 1024)])
def test_lengths_reverse_within_valid_part(B, H):
    """Backward direction reads each sequence from its own last valid step; outputs past
    the end are exactly 0; h_n is the state at each sequence's end. Extreme lengths: all T,
    all 1, and a mix."""
    T, I = 9, 20
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=5, device="cuda")
    rng = rng_for("cuda-len", B, H)
    x = make_input(rng, T, B, I, H)
    for lengths in (np.full(B, T), np.ones(B, np.int64), random_lengths(rng, T, B)):
        y, h_n = check_layer(layer, x, lengths=lengths)
        y_c, _ = layer(x, lengths=lengths)
        assert_padding_zero(y_c, lengths)
        # a padded sequence gives what the same sequence alone, cut to its length, gives
        b = int(np.argmin(lengths))
        n = int(lengths[b])
        y_alone, h_alone = layer(np.ascontiguousarray(x[:n, b:b + 1]))
        ny, nh = ref.forward(layer, x[:n, b:b + 1], dtype=np.float32)
        assert_close(y_alone, y[:n, b:b + 1], ny, dtype=np.float32, what="alone vs padded oracle")
        assert_close(h_alone, h_n[:, b:b + 1], nh, dtype=np.float32, what="alone h_n vs padded oracle")


@gpu
@pytest.mark.parametrize("num_layers,bidirectional,h0,batch_first",
                         list(itertools.product([1, 2], [False, True], [False, True], [False, True])))
def test_unbatched(num_layers, bidirectional, h0, batch_first):
    T, I, H = 8, 5, 40
    layer = elman.RNN(I, H, num_layers, bidirectional=bidirectional, batch_first=batch_first,
                      seed=4, device="cuda")
    rng = rng_for("cuda-unbatched", num_layers, bidirectional, h0, batch_first)
    D = 2 if bidirectional else 1
    x = uniform(rng, (T, I))
    h = uniform(rng, (D * num_layers, H)) if h0 else None
    result = layer(x, h)
    assert_host_result(result, [(T, D * H), (D * num_layers, H)])
    check_layer(layer, x, h, result=result)


NAMES = sorted(ref.PARAMETERS)
CUSTOM = {"affine": (0.5, 0.25), "leaky_relu": (0.2, None), "thresholded_relu": (0.1, None),
          "scaled_tanh": (1.5, 0.75), "hard_sigmoid": (0.3, 0.4), "elu": (0.5, None)}


@gpu
@pytest.mark.parametrize("shape", [(9, 4, 5, 16, 2, True), (5, 17, 33, 257, 1, False),
                                   (4, 64, 64, 1024, 1, False)],
                         ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("name", NAMES)
def test_every_activation(name, clip, shape):
    T, B, I, H, L, bidir = shape
    if name == "thresholded_relu" and B * H > 10_000:
        pytest.skip("thresholded_relu is discontinuous at alpha: over 10^5 outputs, a rounding "
                    "difference near alpha flips an output by alpha with a few % odds per case; "
                    "the smaller shapes test it")
    alpha, beta = CUSTOM.get(name, (None, None))
    layer = elman.RNN(I, H, L, name, bidirectional=bidir, seed=3, activation_alpha=alpha,
                      activation_beta=beta, clip=clip, device="cuda")
    rng = rng_for("cuda-act", name, clip, shape)
    x = uniform(rng, (T, B, I), 2.0)
    check_layer(layer, x, lengths=random_lengths(rng, T, B))
    check_layer(layer, x, h0=uniform(rng, (L * (2 if bidir else 1), B, H)))
    # default parameters too (ONNX's), where the activation takes any
    if alpha is not None or beta is not None:
        check_layer(elman.RNN(I, H, L, name, bidirectional=bidir, seed=4, device="cuda"), x)


# ======================================================================================
# GPU: step, stream, special values
# ======================================================================================

@gpu
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("B,H", [(1, 31), (3, 257), (64, 512)])
def test_step_matches_oracle_and_full_call(B, H, num_layers):
    T, I = 7, 13
    layer = elman.RNN(I, H, num_layers, seed=21, device="cuda")
    rng = rng_for("cuda-step", B, H, num_layers)
    x = make_input(rng, T, B, I, H)
    h0 = uniform(rng, (num_layers, B, H))
    y_full, h_full = layer(x, h0)
    h = h0
    for t in range(T):
        h_new = layer.step(x[t], h)
        assert isinstance(h_new, np.ndarray) and h_new.shape == (num_layers, B, H)
        assert h_new.dtype == np.float32
        _, e = ref.forward(layer, x[:t + 1], h0)
        _, n = ref.forward(layer, x[:t + 1], h0, dtype=np.float32)
        assert_close(h_new, e, n, dtype=np.float32, what=f"step {t}")
        assert_close(h_new[-1], y_full[t].astype(np.float64), n[-1], dtype=np.float32,
                     what=f"step {t} vs full call")
        h = h_new
    assert_close(h, h_full.astype(np.float64), n, dtype=np.float32, what="final step vs h_n")
    hu = layer.step(x[0, 0])                                 # unbatched, h = zeros
    assert hu.shape == (num_layers, H)
    _, e = ref.forward(layer, x[:1, :1])
    _, n = ref.forward(layer, x[:1, :1], dtype=np.float32)
    assert_close(hu, e[:, 0], n[:, 0], dtype=np.float32, what="unbatched step")


@gpu
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_step_and_stream_with_gpu_input(storage):
    """step and stream with their input on the GPU: read in place, the state kept on the
    GPU (DeviceArrays), the same values as the host path's step and stream; a stream's
    chunks are all on the GPU or all on the host."""
    torch = _torch_cuda()
    T, B, I, H, L = 6, 3, 10, 40, 2
    layer = elman.RNN(I, H, L, seed=35, device="cuda", storage=storage)
    rng = rng_for("device-step", storage)
    x = torch.from_numpy(make_input(rng, T, B, I, H)).cuda().to(getattr(torch, storage))
    x_np = x.float().cpu().numpy()                            # rounded to the storage type
    h, h_np = None, None
    for t in range(T):
        h = layer.step(x[t], h)
        h_np = layer.step(x_np[t], h_np)
        assert isinstance(h, elman.cuda.DeviceArray) and h.shape == (L, B, H)
        assert np.array_equal(torch.from_dlpack(h).float().cpu().numpy(), h_np), f"step {t}"
    with pytest.raises(TypeError, match="h: expected a CUDA array"):
        layer.step(x[0], h_np)
    on_gpu, on_host = layer.stream(B), layer.stream(B)
    for chunk in (slice(0, 2), slice(2, T)):
        y = on_gpu(x[chunk])
        assert isinstance(y, elman.cuda.DeviceArray)
        assert np.array_equal(torch.from_dlpack(y).float().cpu().numpy(), on_host(x_np[chunk]))
    assert np.array_equal(on_gpu.state, on_host.state) and on_gpu.state.dtype == np.float32
    with pytest.raises(ValueError, match="x_chunk: a stream's chunks must all be on the GPU"):
        on_gpu(x_np[:1])
    with pytest.raises(ValueError, match="x_chunk: a stream's chunks must all be on the GPU"):
        on_host(x[:1])
    on_host.reset()
    assert np.array_equal(torch.from_dlpack(on_host(x)).float().cpu().numpy(), layer(x_np)[0])
    first = elman.RNN(I, H, seed=36, device="cuda", storage=storage, batch_first=True)
    x_bt = x.transpose(0, 1)                                  # (B, T, I)
    on_gpu, on_host = first.stream(B), first.stream(B)
    for chunk in (slice(0, 4), slice(4, T)):
        y = torch.from_dlpack(on_gpu(x_bt[:, chunk].contiguous())).float().cpu().numpy()
        assert np.array_equal(y, on_host(x_bt[:, chunk].float().cpu().numpy()))


@gpu
@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
def test_gpu_stream_state_set_and_pickled(storage):
    """A stream that ran on the GPU, pickled, or its state set on another stream as a host
    array: both go on with host chunks exactly as it goes on with GPU chunks (the storage
    type's values widened), and a GPU chunk after it is refused until reset(). Its copy,
    and a stream whose state is set to a layer's h_n (a DeviceArray), go on with GPU chunks;
    a DeviceArray of another storage type is refused by name."""
    torch = _torch_cuda()
    T, B, I, H, L = 7, 3, 6, 24, 2
    layer = elman.RNN(I, H, L, seed=37, device="cuda", storage=storage)
    x = torch.from_numpy(make_input(rng_for("gpu-stream-state", storage), T, B, I, H)).cuda()
    x = x.to(getattr(torch, storage))
    x_np = x.float().cpu().numpy()
    on_gpu = layer.stream(B)
    on_gpu(x[:3])
    unpickled, resumed = pickle.loads(pickle.dumps(on_gpu)), layer.stream(B)
    resumed.state = on_gpu.state
    branch, from_h_n = copy.copy(on_gpu), layer.stream(B)
    from_h_n.state = layer(x[:3])[1]
    expected = torch.from_dlpack(on_gpu(x[3:])).float().cpu().numpy()
    for other in (branch, from_h_n):
        assert np.array_equal(torch.from_dlpack(other(x[3:])).float().cpu().numpy(), expected)
    for other in (unpickled, resumed):
        assert np.array_equal(other(x_np[3:]), expected)
        with pytest.raises(ValueError, match="x_chunk: a stream's chunks must all be on the GPU"):
            other(x[:1])
        other.reset()
        assert isinstance(other(x[:1]), elman.cuda.DeviceArray)
    other_storage = "float32" if storage != "float32" else "bfloat16"
    stranger = elman.RNN(I, H, L, seed=37, device="cuda", storage=other_storage)
    _, h_n = stranger(torch.from_numpy(x_np[:3]).cuda().to(getattr(torch, other_storage)))
    with pytest.raises(TypeError, match="state"):
        resumed.state = h_n


@gpu
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("B,H", [(1, 64), (4, 257)])
def test_stream_chunks_equal_one_call(B, H, num_layers, batch_first):
    T, I = 23, 6
    layer = elman.RNN(I, H, num_layers, batch_first=batch_first, seed=24, device="cuda")
    rng = rng_for("cuda-stream", B, H, num_layers, batch_first)
    x = make_input(rng, T, B, I, H)                          # time-major
    ey, eh = ref.forward(layer, x.transpose(1, 0, 2) if batch_first else x)
    ny, nh = ref.forward(layer, x.transpose(1, 0, 2) if batch_first else x, dtype=np.float32)
    y_full, _ = layer(x.transpose(1, 0, 2).copy() if batch_first else x)
    if batch_first:
        ey, ny, y_full = ey.transpose(1, 0, 2), ny.transpose(1, 0, 2), y_full.transpose(1, 0, 2)
    s = layer.stream(batch_size=B)
    for run in range(2):                                     # the second after reset()
        parts, t = [], 0
        for n in (1, 5, 2, 11, 4):                           # uneven chunks, sum 23
            chunk = x[t:t + n]
            y = s(chunk.transpose(1, 0, 2).copy() if batch_first else chunk)
            assert isinstance(y, np.ndarray) and y.dtype == np.float32
            assert y.shape == ((B, n, H) if batch_first else (n, B, H))
            parts.append(y.transpose(1, 0, 2) if batch_first else y)
            t += n
        got = np.concatenate(parts)
        assert_close(got, ey, ny, dtype=np.float32, what=f"stream run {run}")
        assert_close(got, y_full.astype(np.float64), ny, dtype=np.float32, what="stream vs full call")
        assert_close(s.state, eh, nh, dtype=np.float32, what="stream state")
        s.reset()


@gpu
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("B,H", [(4, 33), (17, 257), (64, 1024)])
def test_nan_in_one_row_stays_in_that_row(B, H, bidirectional):
    T, I = 6, 5
    layer = elman.RNN(I, H, 2, bidirectional=bidirectional, seed=41, device="cuda")
    x = uniform(rng_for("cuda-nan", B, H, bidirectional), (T, B, I))
    x[3, 1, 2] = np.nan
    y, h_n = layer(x)
    assert np.all(np.isnan(y[3:, 1, :H]))                    # forward direction: NaN from t=3 on
    assert np.all(np.isfinite(np.delete(y, 1, axis=1))), "NaN leaked into another row"
    assert np.all(np.isfinite(np.delete(h_n, 1, axis=1)))
    check_layer(layer, x, result=(y, h_n))                   # the oracle's NaN pattern, exactly


@gpu
@pytest.mark.parametrize("nonlinearity", ["relu", "leaky_relu", "hard_sigmoid"])
def test_nan_row_isolation_other_activations(nonlinearity):
    """Only isolation is required where max(NaN, 0) may differ (IEEE 754-2008 vs 2019)."""
    T, B, I, H = 5, 17, 9, 129
    layer = elman.RNN(I, H, 1, nonlinearity, seed=44, device="cuda")
    x = uniform(rng_for("cuda-nan-act", nonlinearity), (T, B, I))
    x[2, 2, :] = np.nan
    y, h_n = layer(x)
    others = np.delete(np.arange(B), 2)
    assert np.all(np.isfinite(y[:, others])) and np.all(np.isfinite(h_n[:, others]))
    ey, eh = ref.forward(layer, x[:, others])
    ny, nh = ref.forward(layer, x[:, others], dtype=np.float32)
    assert_close(y[:, others], ey, ny, dtype=np.float32)
    assert_close(h_n[:, others], eh, nh, dtype=np.float32, what="h_n")


@gpu
@pytest.mark.filterwarnings("ignore::RuntimeWarning")       # the oracle's inf - inf
def test_huge_and_infinite_input():
    """tanh of huge finite arguments is exactly +-1 (never NaN); tanh(+-inf) = +-1; inf - inf
    makes that row NaN from there on, as the oracle says."""
    T, B, I, H = 5, 3, 4, 40
    layer = elman.RNN(I, H, 1, seed=42, device="cuda")
    x = uniform(rng_for("cuda-inf"), (T, B, I))
    x[0, 1, :] = [1e30, -1e30, 3e38, -3e38]
    x[2, 0, 1] = np.inf
    x[1, 2, :] = -np.inf
    y, h_n = layer(x)
    assert np.isfinite(y[0, 1]).all() and np.isfinite(y[2, 0]).all()
    check_layer(layer, x, result=(y, h_n))


# ======================================================================================
# GPU: moving layers, CPU vs CUDA, weights, dtype, threads
# ======================================================================================

@gpu
@pytest.mark.parametrize("case", [(20, 1, 64, 256, 1, False), (9, 17, 33, 257, 2, True),
                                  (6, 64, 100, 1024, 1, False)],
                         ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_same_layer_cpu_and_cuda_close(case):
    T, B, I, H, L, bidir = case
    layer = elman.RNN(I, H, L, bidirectional=bidir, seed=7)
    rng = rng_for("cpu-vs-cuda", case)
    x = make_input(rng, T, B, I, H)
    D = 2 if bidir else 1
    h0 = uniform(rng, (D * L, B, H))
    lengths = random_lengths(rng, T, B)
    y_cpu, h_cpu = layer(x, h0, lengths)
    assert layer.to("cuda") is layer and layer.device == _current_gpu()
    y_gpu, h_gpu = layer(x, h0, lengths)
    ey, eh = check_layer(layer, x, h0, lengths, result=(y_gpu, h_gpu))
    ny, nh = ref.forward(layer, x, h0, lengths, dtype=np.float32)
    # CPU and CUDA each within the rule of the oracle, hence within twice it of each other
    for a, b, e, n, what in ((y_cpu, y_gpu, ey, ny, "y"), (h_cpu, h_gpu, eh, nh, "h_n")):
        base = np.abs(n - e).max()
        bound = 2 * (4 * base + 1e-6 * max(1.0, np.abs(e).max()))
        diff = np.abs(a.astype(np.float64) - b).max()
        assert diff <= bound, f"{what}: CPU vs CUDA {diff:.3e} > {bound:.3e}"
    assert layer.to("cpu") is layer and layer.device == "cpu"
    y_back, h_back = layer(x, h0, lengths)                    # the CPU engine again, exactly
    assert np.array_equal(y_back, y_cpu) and np.array_equal(h_back, h_cpu)
    # the weights never changed on the way
    fresh = elman.RNN(I, H, L, bidirectional=bidir, seed=7).weights()
    assert all(np.array_equal(w, fresh[k]) for k, w in layer.weights().items())


@gpu
def test_weight_assignment_on_cuda_layer_takes_effect():
    T, B, I, H = 8, 3, 10, 64
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=8, device="cuda")
    x = make_input(rng_for("cuda-assign"), T, B, I, H)
    y0, _ = check_layer(layer, x)
    layer.w_y_l0 = 0.5 * layer.w_y_l0
    layer.b_l1_reverse = layer.b_l1_reverse + 0.25
    y1, _ = check_layer(layer, x)                             # the new weights are used
    assert not np.allclose(y0, y1)
    assert layer.device == _current_gpu()


def _current_gpu():
    """What layer.device says of a layer moved to "cuda" now."""
    return f"cuda:{elman.cuda._cuda.current_device()}"


@gpu
def test_layer_on_numbered_gpu():
    """"cuda:N" (or a torch.device) is GPU N: with N current, the same results as "cuda",
    which the layer reports as "cuda:N"; a GPU past the last is refused with ValueError,
    the layer left as it was."""
    T, B, I, H = 7, 3, 9, 48
    x = make_input(rng_for("cuda-n"), T, B, I, H)
    name = _current_gpu()
    layer = elman.RNN(I, H, seed=21, device=name)
    assert layer.device == name
    y, h_n = layer(x)
    check_layer(layer, x, result=(y, h_n))
    same = elman.RNN(I, H, seed=21).to("cuda")
    assert same.device == name and all(np.array_equal(a, b) for a, b in zip(same(x), (y, h_n)))
    count = elman.cuda.device_count()
    with pytest.raises(ValueError, match=f"device: no GPU 'cuda:{count}'; this process sees only cuda:0"):
        layer.to(f"cuda:{count}")
    with pytest.raises(ValueError, match=f"no GPU 'cuda:{count}'"):
        elman.RNN(I, H, device=f"cuda:{count}")
    assert layer.device == name and all(np.array_equal(a, b) for a, b in zip(layer(x), (y, h_n)))
    torch = pytest.importorskip("torch")
    assert elman.RNN(I, H, device=torch.device("cuda", int(name[5:]))).device == name


@gpu
def test_second_gpu_alone_leaves_gpu_0_without_a_context():
    """A process that uses only "cuda:1" must not create a context on GPU 0 (hundreds of
    MB there, in every process of a one-process-per-GPU job): asked of the driver."""
    count = elman.cuda.device_count()
    if count < 2:
        pytest.skip(f"needs two GPUs; this machine has {count}")
    code = textwrap.dedent("""
        import ctypes, numpy as np, elman
        layer = elman.RNN(5, 40, seed=0, device="cuda:1")
        y, _ = layer(np.ones((4, 2, 5), np.float32))
        layer.step(np.ones((2, 5), np.float32))
        driver = ctypes.CDLL("libcuda.so.1")
        device, flags, active = ctypes.c_int(), ctypes.c_uint(), ctypes.c_int()
        assert driver.cuInit(0) == 0 and driver.cuDeviceGet(ctypes.byref(device), 0) == 0
        assert driver.cuDevicePrimaryCtxGetState(device, ctypes.byref(flags), ctypes.byref(active)) == 0
        print(active.value)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stdout + proc.stderr


@gpu
def test_forked_child_is_refused_and_leaves_the_parents_memory_alone():
    """In a child forked after CUDA use, a call raises RuntimeError saying why, elman sees no
    GPU there (and says why), the layer runs on after .to("cpu"), and dropping it and the
    outputs it inherited returns, as does exiting through the interpreter's normal exit
    (half the children). Another layer keeps calling while the parent forks, 20 times, so
    its locks (the layer's, the memory pool's) may be held at a fork; a release that took
    one would hang that child. A release that called CUDA and failed at once would not show."""
    code = textwrap.dedent("""
        import gc, os, sys, threading, time, warnings, weakref, numpy as np, elman, elman.cuda
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        layer = elman.RNN(3, 4, device="cuda", seed=0)
        x = np.ones((2, 1, 3), np.float32)
        on_cpu = elman.RNN(3, 4, seed=0)(x)[0]  # the same weights
        outputs = list(layer(x))
        try:
            import torch
            if torch.cuda.is_available():
                outputs += layer(torch.ones(2, 1, 3, device="cuda"))  # DeviceArrays
        except ImportError:
            pass
        # Its own layer: a forked child keeps the thread's frames, and so what they hold.
        churning = elman.RNN(3, 4, device="cuda", seed=1)
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                churning(x)
        thread = threading.Thread(target=churn)
        thread.start()
        children = []
        for i in range(20):
            pid = os.fork()
            if pid == 0:
                status = 3
                try:
                    layer(x)
                except RuntimeError as e:
                    status = 0 if "forked from one that had used CUDA" in str(e) else 4
                if status == 0 and elman.cuda.is_available():
                    status = 5
                try:
                    elman.cuda.require()
                except RuntimeError as e:
                    status = status if "forked from one that had used CUDA" in str(e) else 6
                if not np.array_equal(layer.to("cpu")(x)[0], on_cpu):  # drops its GPU network
                    status = 8
                dropped = weakref.ref(layer)
                del outputs[:]
                del layer
                gc.collect()
                status = status if dropped() is None else 7
                if i % 2:
                    sys.exit(status)  # the interpreter drops what is left (churning)
                os._exit(status)
            children.append(pid)
        stop.set()
        thread.join()
        statuses, deadline = {}, time.monotonic() + 120
        while len(statuses) < len(children) and time.monotonic() < deadline:
            for pid in set(children) - set(statuses):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses[pid] = os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        for pid in set(children) - set(statuses):
            os.kill(pid, 9)
            statuses[pid] = "hung"
        print([statuses[pid] for pid in children])
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == str([0] * 20), proc.stdout + proc.stderr


@gpu
def test_pickled_and_copied_gpu_layer():
    """A GPU layer's pickle or deep copy comes back on the same device name and storage,
    with bit-identical results (the same kernels on the same GPU)."""
    T, B, I, H = 5, 2, 6, 40
    x = make_input(rng_for("gpu-pickle"), T, B, I, H)
    layer = elman.RNN(I, H, seed=24, device="cuda:0", storage="bfloat16")
    y, h_n = layer(x)
    for other in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert (other.device, other.storage) == ("cuda:0", "bfloat16")
        y2, h2 = other(x)
        assert np.array_equal(y2, y) and np.array_equal(h2, h_n)


@gpu
def test_host_memory_as_cuda_array_refused():
    """A __cuda_array_interface__ pointing at plain host memory is refused with TypeError
    before a kernel reads it (an illegal address would break the CUDA context), and the
    layer works after."""
    T, B, I, H = 3, 2, 4, 8
    layer = elman.RNN(I, H, seed=22, device="cuda")
    host = np.zeros((T, B, I), np.float32)
    fake = _FakeCUDA((T, B, I))
    fake.__cuda_array_interface__["data"] = (host.ctypes.data, False)
    with pytest.raises(TypeError, match="x: its data is not GPU memory"):
        layer(fake)
    step = _FakeCUDA((B, I))
    step.__cuda_array_interface__["data"] = (host.ctypes.data, False)
    with pytest.raises(TypeError, match="x_t: its data is not GPU memory"):
        layer.step(step)
    check_layer(layer, make_input(rng_for("host-as-cuda"), T, B, I, H))


@gpu
def test_pinned_host_memory_read_in_place_or_refused():
    """Pinned host memory given as a CUDA array: read in place where the GPU can (the same
    results as from NumPy), else refused with TypeError; never a wrong answer or a fault."""
    torch = _torch_cuda()
    T, B, I, H = 5, 3, 6, 40
    x = make_input(rng_for("pinned"), T, B, I, H)
    layer = elman.RNN(I, H, seed=26, device="cuda")
    pinned = torch.from_numpy(x).pin_memory()
    fake = _FakeCUDA((T, B, I))
    fake.__cuda_array_interface__["data"] = (pinned.data_ptr(), False)
    try:
        y, h_n = layer(fake)
    except TypeError as e:
        assert "x: its data is not GPU memory" in str(e)
        return
    expected = layer(x)
    assert np.array_equal(y.numpy(), expected[0]) and np.array_equal(h_n.numpy(), expected[1])


@gpu
def test_real_gpu_arrays_where_host_arrays_go():
    """Real GPU arrays (torch in float32 and bfloat16, CuPy, elman's DeviceArray) where a
    host array goes: a CPU layer's input, state, chunk and weights, elman.rnn, lengths, and
    h0 beside host x on a GPU layer. Each is a TypeError naming the argument, and the
    layers are left as they were. test_bad_input checks the same with stand-ins on every
    machine; this checks that the real producers are recognised."""
    torch = _torch_cuda()
    T, B, H = 4, 2, 5
    I = H  # so that a GPU layer's output is a well-shaped input
    x = make_input(rng_for("gpu-where-host"), T, B, I, H)
    cpu = elman.RNN(I, H, num_layers=2, seed=27)
    gpu_layer = elman.RNN(I, H, seed=27, device="cuda")
    expected_cpu, expected_gpu = cpu(x)[0], gpu_layer(x)[0]  # NumPy in, NumPy out
    producers = {"torch": lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda(),
                 "torch bfloat16": lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda().to(torch.bfloat16)}
    try:
        import cupy
        producers["cupy"] = cupy.asarray
    except ImportError:
        pass
    h0 = np.zeros((2, B, H), np.float32)
    for on_gpu in producers.values():
        calls = {
            "x": lambda: cpu(on_gpu(x)),
            "h0": lambda: cpu(x, on_gpu(h0)),
            "lengths": lambda: cpu(x, lengths=on_gpu(np.full(B, T, np.int64))),
            "x_t": lambda: cpu.step(on_gpu(x[0])),
            "x_chunk": lambda: cpu.stream(B)(on_gpu(x)),
            "w_y_l1": lambda: setattr(cpu, "w_y_l1", on_gpu(np.zeros((H, H), np.float32))),
            "W_x": lambda: elman.rnn(x, on_gpu(np.zeros((I, H), np.float32)), np.zeros((H, H), np.float32)),
        }
        for arg, call in calls.items():
            with pytest.raises(TypeError, match=rf"\b{arg}: expected an array in host memory, got one in GPU memory"):
                call()
        with pytest.raises(TypeError, match=r"\bh0\b.*host memory"):
            gpu_layer(x, on_gpu(h0[:1]))
    to_torch = producers["torch"]
    device_calls = {"x": lambda: cpu(gpu_layer(to_torch(x))[0]),
                    "x_t": lambda: cpu.step(gpu_layer.step(to_torch(x[0])))}
    for arg, call in device_calls.items():  # elman's own DeviceArray, from GPU input
        with pytest.raises(TypeError, match=rf"\b{arg}: expected an array in host memory, got one in GPU memory"):
            call()
    assert np.array_equal(cpu(x)[0], expected_cpu)
    assert np.array_equal(gpu_layer(x)[0], expected_gpu)


@gpu
def test_layer_on_second_gpu():
    """A layer on "cuda:1" runs there whatever GPU is current, leaves the current GPU as it
    was, gives outputs on GPU 1 (exported to torch in order with the caller's stream), and
    refuses arrays and streams of GPU 0."""
    count = elman.cuda.device_count()
    if count < 2:
        pytest.skip(f"needs two GPUs; this machine has {count}")
    torch = _torch_cuda()
    T, B, I, H = 6, 3, 5, 40
    x_np = make_input(rng_for("second-gpu"), T, B, I, H)
    torch.cuda.set_device(0)
    layer = elman.RNN(I, H, seed=23, device="cuda:1")
    y, h_n = layer(x_np)
    check_layer(layer, x_np, result=(y, h_n))
    x1 = torch.from_numpy(x_np).to("cuda:1")
    y1, h1 = layer(x1)
    assert y1.__dlpack_device__() == (2, 1) and y1.device == "cuda:1" and torch.cuda.current_device() == 0
    assert np.array_equal(y1.numpy(), y) and np.array_equal(h1.numpy(), h_n)
    with pytest.raises(ValueError, match=r"x: on GPU 0 \(cuda:0\), but the layer is on GPU 1"):
        layer(torch.from_numpy(x_np).to("cuda:0"))
    with pytest.raises(ValueError, match="h0: on GPU 0"):
        layer(x1, torch.zeros(1, B, H, device="cuda:0"))
    with pytest.raises(ValueError, match="stream: belongs to GPU 0, but the layer is on GPU 1"):
        layer(x1, stream=torch.cuda.Stream(device=0))
    side = torch.cuda.Stream(device=1)
    with torch.cuda.stream(side):  # side's queue: a long product, then the layer
        busy = torch.ones(4096, 4096, device="cuda:1") @ torch.ones(4096, 4096, device="cuda:1")
    y2, _ = layer(x1, stream=side)
    # DLPack to torch with GPU 0 current: torch reads on GPU 1's default stream (handle 1),
    # which must wait for side
    assert np.array_equal(torch.from_dlpack(y2).cpu().numpy(), y) and torch.cuda.current_device() == 0
    assert np.array_equal(y2.numpy(), y)
    del busy
    seen = []

    def in_a_new_thread():  # which has no CUDA context: a call must leave it with none
        before = elman.cuda._cuda.current_device()
        layer(x_np)
        seen.append((before, elman.cuda._cuda.current_device()))

    thread = threading.Thread(target=in_a_new_thread)
    thread.start()
    thread.join()
    assert seen == [(0, 0)]
    assert pickle.loads(pickle.dumps(layer)).device == "cuda:1"
    half = elman.RNN(I, H, seed=23, device="cuda:1", storage="bfloat16")
    yb, hb = half(x1.bfloat16())                               # .numpy(): widened on GPU 1
    check_storage_layer(half, x_np, None, None, (yb.numpy(), hb.numpy()))
    assert torch.cuda.current_device() == 0


@gpu
def test_from_torch_then_to_cuda():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.RNN(11, 37, num_layers=2, bidirectional=True).eval()
    layer = elman.from_torch(module).to("cuda")
    x = uniform(rng_for("from-torch-cuda"), (9, 4, 11))
    with torch.no_grad():
        ty, th = module(torch.from_numpy(x))
    y, h_n = layer(x)
    check_layer(layer, x, result=(y, h_n))
    assert np.abs(ty.numpy() - y).max() < 1e-5 and np.abs(th.numpy() - h_n).max() < 1e-5


@gpu
def test_float64_cuda_is_type_error():
    with pytest.raises(TypeError):
        elman.RNN(3, 4, dtype=np.float64, device="cuda")
    layer = elman.RNN(3, 4, dtype=np.float64, seed=9)
    with pytest.raises(TypeError):
        layer.to("cuda")
    assert layer.device == "cpu"
    check_layer(layer, uniform(rng_for("f64"), (4, 2, 3), dtype=np.float64))


@gpu
@pytest.mark.parametrize("xdtype", [np.float64, np.float16, np.int32])
def test_host_input_of_other_dtype_converted(xdtype):
    T, B, I, H = 5, 3, 6, 40
    layer = elman.RNN(I, H, seed=10, device="cuda")
    x = rng_for("cuda-xd", xdtype).integers(-2, 3, size=(T, B, I)).astype(xdtype)
    y, h_n = layer(x)
    assert y.dtype == np.float32 and h_n.dtype == np.float32
    check_layer(layer, x.astype(np.float32), result=(y, h_n))


@gpu
def test_non_contiguous_host_input_and_bad_shapes():
    T, B, I, H = 6, 4, 5, 33
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=11, device="cuda")
    rng = rng_for("cuda-layout")
    big = uniform(rng, (2 * T, 2 * B, 2 * I))
    h0 = uniform(rng, (4, 2 * B, H))[:, ::2]
    check_layer(layer, big[::2, ::2, ::2], h0)
    check_layer(layer, np.asfortranarray(big[::2, ::2, ::2]))
    with pytest.raises(ValueError, match="x"):
        layer(np.zeros((T, B, I + 1), np.float32))
    with pytest.raises(ValueError, match="h0"):
        layer(np.zeros((T, B, I), np.float32), np.zeros((3, B, H), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        layer(np.zeros((T, B, I), np.float32), lengths=np.full(B, T + 1))


@gpu
def test_repeatable_and_inputs_untouched():
    T, B, I, H = 12, 17, 30, 257
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=12, device="cuda")
    rng = rng_for("cuda-repeat")
    x, h0 = make_input(rng, T, B, I, H), uniform(rng, (4, B, H))
    xc, hc = x.copy(), h0.copy()
    y1, h1 = layer(x, h0)
    y2, h2 = layer(x, h0)
    assert np.array_equal(x, xc) and np.array_equal(h0, hc)
    assert np.array_equal(y1, y2) and np.array_equal(h1, h2), "CUDA results not deterministic"
    assert not np.shares_memory(y1, y2)


@gpu
def test_threads_get_the_results_of_serial_calls():
    """Many Python threads calling CUDA layers at once (one shared layer, one each) get
    exactly what serial calls give: no shared workspace between concurrent calls."""
    shared = elman.RNN(20, 129, 2, bidirectional=True, seed=13, device="cuda")
    own = [elman.RNN(20, 64, seed=14 + i, device="cuda") for i in range(4)]
    rng = rng_for("cuda-threads")
    xs = [uniform(rng, (15, 1 + 5 * i, 20)) for i in range(8)]
    serial_shared = [shared(x) for x in xs]
    serial_own = [own[i % 4](x) for i, x in enumerate(xs)]
    errors, results = [], {}
    start = threading.Barrier(8)

    def work(i):
        try:
            start.wait()
            for _ in range(3):
                results[i] = (shared(xs[i]), own[i % 4](xs[i]))
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread is still running (deadlock?)"
    assert not errors, errors
    for i in range(8):
        (ys, hs), (yo, ho) = results[i]
        assert np.array_equal(ys, serial_shared[i][0]) and np.array_equal(hs, serial_shared[i][1])
        assert np.array_equal(yo, serial_own[i][0]) and np.array_equal(ho, serial_own[i][1])


# ======================================================================================
# GPU: the device path (__cuda_array_interface__ in, elman.cuda.DeviceArray out)
# ======================================================================================

def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch is installed without CUDA (or sees no GPU)")
    return torch


def _cai(a):
    cai = a.__cuda_array_interface__
    assert cai["typestr"] == "<f4"
    ptr = cai["data"][0]
    assert isinstance(ptr, int) and ptr != 0
    shape = tuple(cai["shape"])
    strides = cai.get("strides")
    if strides is not None:                                   # C-contiguous, if given
        assert tuple(strides) == tuple(4 * int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    return ptr, shape


@gpu
@pytest.mark.parametrize("case", [(1, 1, 1, 1, 1, False), (30, 1, 64, 256, 1, False),
                                  (9, 17, 33, 257, 2, True), (5, 64, 100, 1024, 1, False),
                                  (4, 256, 512, 512, 1, False)],
                         ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_device_path_torch(case):
    torch = _torch_cuda()
    T, B, I, H, L, bidir = case
    D = 2 if bidir else 1
    layer = elman.RNN(I, H, L, bidirectional=bidir, seed=15, device="cuda")
    rng = rng_for("dev-torch", case)
    x_np = make_input(rng, T, B, I, H)
    h0_np = uniform(rng, (D * L, B, H))
    lengths = random_lengths(rng, T, B)
    x = torch.from_numpy(x_np).cuda()
    h0 = torch.from_numpy(h0_np).cuda()
    x_before = x.clone()
    for kwargs, host_kwargs in (({}, {}),
                                ({"h0": h0}, {"h0": h0_np}),
                                ({"h0": h0, "lengths": lengths}, {"h0": h0_np, "lengths": lengths}),
                                ({"lengths": lengths}, {"lengths": lengths})):
        y, h_n = layer(x, **kwargs)
        assert isinstance(y, elman.cuda.DeviceArray) and isinstance(h_n, elman.cuda.DeviceArray)
        y_ptr, y_shape = _cai(y)
        h_ptr, h_shape = _cai(h_n)
        assert y_shape == (T, B, D * H) and h_shape == (D * L, B, H)
        assert y_ptr != h_ptr
        yt = torch.as_tensor(y, device="cuda")                # a view, no copy
        ht = torch.as_tensor(h_n, device="cuda")
        assert yt.data_ptr() == y_ptr and ht.data_ptr() == h_ptr
        assert yt.dtype == torch.float32 and tuple(yt.shape) == y_shape
        # read right after the call, as a user would: the same values as the host path
        y_host, h_host = layer(x_np, **host_kwargs)
        assert np.array_equal(yt.cpu().numpy(), y_host), f"device path y != host path ({kwargs.keys()})"
        assert np.array_equal(ht.cpu().numpy(), h_host), f"device path h_n != host path ({kwargs.keys()})"
        check_layer(layer, x_np, host_kwargs.get("h0"), host_kwargs.get("lengths"),
                    result=(yt.cpu().numpy(), ht.cpu().numpy()))
    assert torch.equal(x, x_before) and torch.equal(h0, torch.from_numpy(h0_np).cuda())


@gpu
def test_device_path_results_own_their_memory():
    """Outputs stay valid after the layer, the input and the DeviceArray name are gone, and
    a later call does not overwrite an earlier call's outputs."""
    torch = _torch_cuda()
    T, B, I, H = 20, 8, 16, 128
    layer = elman.RNN(I, H, 2, seed=16, device="cuda")
    rng = rng_for("dev-own")
    x1_np, x2_np = make_input(rng, T, B, I, H), make_input(rng, T, B, I, H)
    e1, e2 = layer(x1_np), layer(x2_np)
    y1, h1 = layer(torch.from_numpy(x1_np).cuda())
    y2, h2 = layer(torch.from_numpy(x2_np).cuda())            # must not reuse y1's memory
    assert _cai(y1)[0] != _cai(y2)[0]
    t1 = torch.as_tensor(y1, device="cuda")
    del y1, layer
    gc.collect()
    junk = [torch.full((T, B, H), 7.0, device="cuda") for _ in range(4)]  # reuse freed memory
    assert np.array_equal(t1.cpu().numpy(), e1[0])
    assert np.array_equal(torch.as_tensor(h1, device="cuda").cpu().numpy(), e1[1])
    assert np.array_equal(torch.as_tensor(y2, device="cuda").cpu().numpy(), e2[0])
    del junk
    # NumPy does not silently wrap one in an object array; the repr says what it holds
    with pytest.raises(TypeError, match=r"DeviceArray: the values are on the GPU; \.numpy\(\)"):
        np.asarray(y2)
    assert repr(h2) == f"DeviceArray(shape=(2, {B}, {H}), dtype=float32, device='{_current_gpu()}')"
    assert h2.device == _current_gpu()


@gpu
def test_dropped_outputs_not_overwritten_while_queued_work_reads_them():
    """Output memory that Python drops is kept for reuse (cudaMalloc, and cudaFree, which
    waits for the device, cost more than a short call), but only after a synchronous
    call's device-wide wait that began after the drop: work still queued on another
    stream that reads dropped outputs sees their values, whatever elman runs meanwhile.
    (That blocks are reused at all shows in the fixed cost per call, bench/gpu_profile.sh:
    the driver may hand back a freed address by itself.)"""
    torch = _torch_cuda()
    T, B, I, H = 23, 3, 16, 77
    layer = elman.RNN(I, H, seed=31, device="cuda")
    rng = rng_for("pool")
    xs = [torch.from_numpy(make_input(rng, T, B, I, H)).cuda() for _ in range(2)]
    expected = [layer(x.cpu().numpy())[0] for x in xs]
    for _ in range(4):  # synchronous calls reusing each other's dropped outputs
        y, _ = layer(xs[0])
        assert np.array_equal(torch.as_tensor(y, device="cuda").cpu().numpy(), expected[0])
        del y
    # A read queued behind a long product on `side`, then the output dropped; calls on
    # `other` (no device-wide wait) run meanwhile and must not write into it.
    side, other = torch.cuda.Stream(), torch.cuda.Stream()
    a = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        y, _ = layer(xs[1], stream=side)
        busy = a @ a
        doubled = torch.from_dlpack(y) * 2                     # runs after `busy`
    del y
    gc.collect()
    later = [layer(xs[0], stream=other)[0] for _ in range(4)]
    torch.cuda.synchronize()
    assert np.array_equal(doubled.cpu().numpy(), 2 * expected[1])
    for y in later:
        assert np.array_equal(torch.from_dlpack(y).cpu().numpy(), expected[0])
    del busy


@gpu
def test_kept_blocks_stay_bounded():
    """Calls that drop their outputs, with and without a stream, do not make the process
    hold more device memory than the 64 MB of kept blocks (plus its work buffers)."""
    torch = _torch_cuda()
    T, B, I, H = 128, 8, 64, 512                              # y: 2 MB (a page) a call
    layer = elman.RNN(I, H, seed=32, device="cuda")
    x = torch.randn(T, B, I, device="cuda")
    side = torch.cuda.Stream()
    layer(x), layer(x, stream=side)                            # work buffers, plans
    torch.cuda.synchronize()
    gc.collect()
    free_before = torch.cuda.mem_get_info()[0]
    for i in range(300):
        y, h_n = layer(x, stream=side if i % 3 else None)
        del y, h_n
    torch.cuda.synchronize()
    gc.collect()
    held = free_before - torch.cuda.mem_get_info()[0]
    assert held <= (64 + 16) * 2**20, f"{held / 2**20:.0f} MB more device memory held"


@gpu
def test_calls_with_a_stream_reuse_dropped_outputs():
    """Calls that all have a stream never wait for the device themselves: once 32 MB of
    dropped outputs wait to be reused, the next call waits for the device once (without
    the GIL) and reuses them.
    So a fresh process holds about 32 MB of them, not the 64 MB limit (the old way:
    freeing the oldest block with cudaFree, which waits for the device, at every drop),
    and the reused memory gives right results."""
    _torch_cuda()
    code = textwrap.dedent("""
        import gc, numpy as np, torch, elman
        T, B, I, H = 128, 8, 64, 512                           # y: 2 MB a call
        layer = elman.RNN(I, H, seed=33, device="cuda")
        x = torch.randn(T, B, I, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
        side = torch.cuda.Stream()
        expected = torch.from_dlpack(layer(x)[0]).cpu().numpy()  # work buffers, plans
        torch.cuda.synchronize()
        gc.collect()
        free_before = torch.cuda.mem_get_info()[0]
        for _ in range(100):
            y, h_n = layer(x, stream=side)
            del y, h_n
        last = layer(x, stream=side)[0]
        torch.cuda.synchronize()
        held = free_before - torch.cuda.mem_get_info()[0]
        print(held / 2**20, bool(np.array_equal(torch.from_dlpack(last).cpu().numpy(), expected)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    held_mb, right = proc.stdout.split()
    assert right == "True"
    assert float(held_mb) <= 48, f"{held_mb} MB more device memory held (64 expected without reuse)"


class _CAIOnly:
    """A CUDA array that offers nothing but __cuda_array_interface__ (no __array__, no
    DLPack): elman can only read it where it lies."""

    def __init__(self, tensor):
        self._tensor = tensor                                  # keeps the memory alive
        self.__cuda_array_interface__ = tensor.__cuda_array_interface__


@gpu
def test_device_path_reads_x_in_place():
    """x (and h0) given as bare __cuda_array_interface__ views at an offset into a larger
    buffer give the host path's values; outputs do not alias x (changing x afterwards
    leaves y alone)."""
    torch = _torch_cuda()
    T, B, I, H = 7, 5, 24, 96
    layer = elman.RNN(I, H, 2, seed=20, device="cuda")
    rng = rng_for("dev-in-place")
    buf = torch.from_numpy(make_input(rng, T + 1, B, I, H)).cuda()
    hbuf = torch.from_numpy(uniform(rng, (3, B, H))).cuda()
    x, h0 = buf[1:], hbuf[1:]                                  # contiguous, pointer offset
    assert x.is_contiguous() and x.data_ptr() != buf.data_ptr()
    y, h_n = layer(_CAIOnly(x), _CAIOnly(h0))
    y_host, h_host = layer(x.cpu().numpy(), h0.cpu().numpy())
    got_y = torch.as_tensor(y, device="cuda").cpu().numpy()
    assert np.array_equal(got_y, y_host)
    assert np.array_equal(torch.as_tensor(h_n, device="cuda").cpu().numpy(), h_host)
    buf.add_(1.0)
    assert np.array_equal(torch.as_tensor(y, device="cuda").cpu().numpy(), got_y)


@gpu
def test_device_path_after_torch_work_on_the_stream():
    """x produced by torch kernels just before the call, y consumed by torch just after:
    elman must order its work after torch's (no stale x) and finish before torch reads y."""
    torch = _torch_cuda()
    T, B, I, H = 50, 64, 256, 256
    layer = elman.RNN(I, H, seed=17, device="cuda")
    a = torch.randn(4096, 4096, device="cuda")
    for trial in range(3):
        torch.cuda.synchronize()
        x = torch.zeros(T, B, I, device="cuda")
        big = a @ a                                            # keep the GPU busy ...
        x += (big[:T * B, :I].reshape(T, B, I) * 1e-3).tanh()  # ... then fill x
        y, h_n = layer(x)
        s = torch.as_tensor(y, device="cuda").sum()          # consume at once
        x_np = x.cpu().numpy()
        y_host, _ = layer(x_np)
        assert np.array_equal(torch.as_tensor(y, device="cuda").cpu().numpy(), y_host), trial
        assert abs(s.item() - float(y_host.sum(dtype=np.float64))) <= 1e-3 * max(1.0, abs(y_host).sum())


@gpu
def test_device_path_refused_or_right():
    """Outside the device path's contract (float32, C-contiguous, h0 on the device,
    lengths on the host) a call is refused with ValueError or TypeError, or gives the
    right answer: never a wrong one."""
    torch = _torch_cuda()
    T, B, I, H = 6, 3, 5, 33
    layer = elman.RNN(I, H, seed=18, device="cuda")
    rng = rng_for("dev-refuse")
    x_np = make_input(rng, T, B, I, H)
    h0_np = uniform(rng, (1, B, H))
    x = torch.from_numpy(x_np).cuda()

    def refused_or_right(call, expected):
        try:
            y, h = call()
        except (ValueError, TypeError):
            return
        y = torch.as_tensor(y, device="cuda").cpu().numpy() if hasattr(y, "__cuda_array_interface__") else np.asarray(y)
        h = torch.as_tensor(h, device="cuda").cpu().numpy() if hasattr(h, "__cuda_array_interface__") else np.asarray(h)
        assert np.array_equal(y, expected[0]) and np.array_equal(h, expected[1])

    refused_or_right(lambda: layer(x.transpose(0, 1).contiguous().transpose(0, 1)), layer(x_np))
    refused_or_right(lambda: layer(x.double()), layer(x_np))
    refused_or_right(lambda: layer(x, h0_np), layer(x_np, h0_np))
    refused_or_right(lambda: layer(x, lengths=torch.full((B,), T, device="cuda")), layer(x_np))
    big = torch.from_numpy(uniform(rng, (T, 2 * B, I))).cuda()
    refused_or_right(lambda: layer(big[:, ::2]), layer(big[:, ::2].cpu().numpy()))
    bf = elman.RNN(I, H, batch_first=True, seed=18, device="cuda")
    refused_or_right(lambda: bf(x.transpose(0, 1).contiguous()), bf(x_np.transpose(1, 0, 2).copy()))
    with pytest.raises(ValueError):                            # wrong I
        layer(torch.zeros(T, B, I + 1, device="cuda"))
    with pytest.raises(ValueError):                            # wrong h0 shape
        layer(x, torch.zeros(2, B, H, device="cuda"))


@gpu
def test_device_path_cupy():
    cp = pytest.importorskip("cupy")
    T, B, I, H = 12, 5, 9, 65
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=19, device="cuda")
    x_np = make_input(rng_for("dev-cupy"), T, B, I, H)
    y, h_n = layer(cp.asarray(x_np))
    assert isinstance(y, elman.cuda.DeviceArray)
    yc = cp.asarray(y)                                         # a view, no copy
    assert yc.data.ptr == _cai(y)[0]
    y_host, h_host = layer(x_np)
    assert np.array_equal(cp.asnumpy(yc), y_host)
    assert np.array_equal(cp.asnumpy(cp.asarray(h_n)), h_host)


class _DLPackOnly:
    """A GPU array that offers nothing but DLPack (like a JAX array): elman reads it in
    place through the capsule."""

    def __init__(self, tensor):
        self._tensor = tensor
        self.streams = []                                      # what elman asked for

    def __dlpack__(self, *, stream=None):
        self.streams.append(stream)
        return self._tensor.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self._tensor.__dlpack_device__()


@gpu
def test_dlpack_out_is_a_view_with_the_values():
    torch = _torch_cuda()
    T, B, I, H = 9, 6, 10, 130
    layer = elman.RNN(I, H, 2, bidirectional=True, seed=21, device="cuda")
    x_np = make_input(rng_for("dlpack-out"), T, B, I, H)
    y, h_n = layer(torch.from_numpy(x_np).cuda())
    assert y.__dlpack_device__() == (2, torch.cuda.current_device())
    yt, ht = torch.from_dlpack(y), torch.from_dlpack(h_n)
    assert yt.data_ptr() == _cai(y)[0] and ht.data_ptr() == _cai(h_n)[0]  # no copy
    assert yt.is_cuda and yt.dtype == torch.float32 and tuple(yt.shape) == (T, B, 2 * H)
    y_host, h_host = layer(x_np)
    assert np.array_equal(yt.cpu().numpy(), y_host) and np.array_equal(ht.cpu().numpy(), h_host)
    del y, h_n                                                 # the tensors keep the memory
    gc.collect()
    junk = [torch.full((T, B, 2 * H), 3.0, device="cuda") for _ in range(4)]
    assert np.array_equal(yt.cpu().numpy(), y_host)
    del junk
    y2, _ = layer(torch.from_numpy(x_np).cuda())
    for _ in range(3):
        y2.__dlpack__()                                        # unconsumed capsules: freed
    assert np.array_equal(torch.from_dlpack(y2).cpu().numpy(), y_host)


@gpu
def test_dlpack_only_input_read_in_place():
    torch = _torch_cuda()
    T, B, I, H = 8, 5, 12, 96
    layer = elman.RNN(I, H, 2, seed=22, device="cuda")
    rng = rng_for("dlpack-in")
    x_np, h0_np = make_input(rng, T, B, I, H), uniform(rng, (2, B, H))
    x = _DLPackOnly(torch.from_numpy(x_np).cuda())
    assert elman.cuda.on_device(x) and not hasattr(x, "__cuda_array_interface__")
    y, h_n = layer(x, _DLPackOnly(torch.from_numpy(h0_np).cuda()))
    assert x.streams == [1]                                    # legacy default stream
    y_host, h_host = layer(x_np, h0_np)
    assert np.array_equal(torch.from_dlpack(y).cpu().numpy(), y_host)
    assert np.array_equal(torch.from_dlpack(h_n).cpu().numpy(), h_host)
    with pytest.raises(TypeError, match="float32"):
        layer(_DLPackOnly(torch.from_numpy(x_np).cuda().double()))
    with pytest.raises(ValueError, match="contiguous"):
        layer(_DLPackOnly(torch.from_numpy(make_input(rng, T, 2 * B, I, H)).cuda()[:, ::2]))
    with pytest.raises(ValueError, match="x:"):
        layer(_DLPackOnly(torch.zeros(T, B, I + 1, device="cuda")))


@gpu
@pytest.mark.parametrize("as_handle", [False, True])
def test_caller_stream(as_handle):
    """Work on the caller's stream: x written by torch kernels on a side stream, elman
    queued behind them on that stream, y read there by torch. The outputs say which
    stream they are written on; the values are the synchronous call's."""
    torch = _torch_cuda()
    T, B, I, H = 60, 16, 128, 256
    layer = elman.RNN(I, H, seed=23, device="cuda")
    side = torch.cuda.Stream()
    a = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        big = a @ a                                            # keep the stream busy
        x = (big[:T * B, :I].reshape(T, B, I) * 1e-3).tanh()
        y, h_n = layer(x, stream=side.cuda_stream if as_handle else side)
        assert y.__cuda_array_interface__["stream"] == side.cuda_stream
        total = torch.from_dlpack(y).sum()                     # torch passes `side`
    side.synchronize()
    y_host, h_host = layer(x.cpu().numpy())
    assert np.array_equal(torch.from_dlpack(y).cpu().numpy(), y_host)
    assert np.array_equal(h_n.numpy(), h_host)
    assert abs(total.item() - float(y_host.sum(dtype=np.float64))) <= 1e-3 * max(1.0, abs(y_host).sum())


@gpu
def test_graph_capture_is_refused():
    """A call on a stream that is capturing a CUDA graph raises ValueError naming `stream`
    and leaves the capture intact: the torch work captured around it replays correctly, and
    the layer works after the capture."""
    torch = _torch_cuda()
    T, B, I, H = 8, 3, 5, 16
    layer = elman.RNN(I, H, seed=29, device="cuda")
    x = torch.randn(T, B, I, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        layer(x, stream=side)  # warm-up outside the capture: its buffers and outputs exist
    side.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(side):
        graph.capture_begin()
        try:
            doubled = x * 2
            with pytest.raises(ValueError, match="stream: is capturing a CUDA graph"):
                layer(x, stream=side)
            tripled = doubled + x
        finally:
            graph.capture_end()
    x.copy_(torch.ones_like(x))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(tripled, torch.full_like(x, 3.0))
    check_layer(layer, x.cpu().numpy())


# Each forced kernel runs in a subprocess with ELMAN_CUDA_KERNEL set, as a user sets it, over cases
# where the default would often pick another, checks every call, and prints the kernels
# that ran (elman.cuda._cuda.recurrence_kernel): the test fails if the forced one never did.
_FORCED_CODE = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import elman, test_cuda as tc
    from helpers import check_layer, random_lengths, rng_for, uniform
    storage, cases = sys.argv[2], eval(sys.argv[3])
    ran = set()
    for case in cases:
        T, B, I, H, bidir = case
        layer = elman.RNN(I, H, bidirectional=bidir, seed=24, device="cuda", storage=storage)
        rng = rng_for("forced", case, storage)
        x = tc.make_input(rng, T, B, I, H)
        h0 = uniform(rng, ((2 if bidir else 1), B, H))
        lengths = random_lengths(rng, T, B)
        for args in ((x, None, None), (x, h0, lengths)):
            if storage == "float32":
                check_layer(layer, *args)
            else:
                tc.check_storage_layer(layer, *args, layer(*args))
            with_lengths = args[2] is not None and bool(np.any(args[2] != T))
            ran.add(elman.cuda._cuda.recurrence_kernel(B, H, with_lengths, storage))
    print(" ".join(sorted(ran)))
""")


def run_forced(kernel, storage, cases):
    env = dict(os.environ, ELMAN_CUDA_KERNEL=kernel)
    done = subprocess.run([sys.executable, "-c", _FORCED_CODE, str(ROOT / "tests"), storage,
                           repr(cases)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = done.stdout.split()
    assert kernel in ran, f"ELMAN_CUDA_KERNEL={kernel} never ran (ran: {ran})"


KERNELS = ["stepwise", "few_rows", "lean", "lean_async", "persistent", "tiled", "gemm"]


@gpu
def test_unknown_forced_kernel_is_refused():
    code = textwrap.dedent("""
        import numpy as np, elman
        try:
            elman.RNN(4, 8, device="cuda")(np.zeros((2, 1, 4), np.float32))
        except ValueError as e:
            print(e)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ELMAN_CUDA_KERNEL="fmaa"),
                          capture_output=True, text=True, timeout=120)
    assert "ELMAN_CUDA_KERNEL: expected one of stepwise, few_rows" in done.stdout and "'fmaa'" in done.stdout, \
        done.stderr[-2000:]


@gpu
@pytest.mark.parametrize("kernel", KERNELS + ["fma"])
def test_forced_kernel_matches_oracle(kernel):
    """Each recurrence kernel against the oracle (float32)."""
    run_forced(kernel, "float32", [(20, 1, 64, 256, False), (20, 1, 16, 100, True), (12, 5, 30, 64, True),
                                   (9, 3, 20, 200, True),
                                   (9, 17, 33, 257, True), (5, 64, 100, 1024, False),
                                   (4, 3, 1761, 1760, False), (6, 256, 40, 512, True),
                                   (4, 60, 30, 1700, False), (3, 129, 20, 901, True)])  # gemm: 64-row tiles


# ======================================================================================
# GPU: float16 and bfloat16 storage, batch_first device input
# ======================================================================================

# Unit roundoff of each storage type (half an ulp at 1).
STORAGE_U = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


def round_to(storage, a):
    """float32 values rounded to the storage type (nearest, ties to even), as float32."""
    a = np.asarray(a, np.float32)
    if storage == "float16":
        return a.astype(np.float16).astype(np.float32)
    bits = a.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def check_storage_layer(layer, x, h0, lengths, result):
    """The tolerance rule of the float32 tests, for a storage type: the oracle runs on the
    weights and inputs as stored (W_x, W_y, x, h0 rounded; b stays float32, as on the
    GPU), and elman's error may be 4x that of the naive computation, which also rounds
    every kept value (each output, the next state) to the storage type, plus one ulp."""
    storage = layer.storage
    weights = {k: (v if k.startswith("b_") else round_to(storage, v)) for k, v in layer.weights().items()}
    stored = types.SimpleNamespace(
        num_layers=layer.num_layers, hidden_size=layer.hidden_size, nonlinearity=layer.nonlinearity,
        bias=layer.bias, batch_first=layer.batch_first, bidirectional=layer.bidirectional, **weights)
    xr = round_to(storage, x)
    h0r = None if h0 is None else round_to(storage, h0)
    expected = ref.forward(stored, xr, h0r, lengths)
    naive = ref.forward(stored, xr, h0r, lengths, store=lambda a: round_to(storage, a).astype(np.float64))
    u = STORAGE_U[storage]
    for what, got, e, n in zip(("y", "h_n"), result, expected, naive):
        assert got.dtype == np.float32 and got.shape == e.shape, what
        assert np.array_equal(round_to(storage, got), got), f"{what}: values are not {storage}"
        err, base = np.abs(got - e).max(), np.abs(n - e).max()
        bound = 4 * base + 2 * u * max(1.0, np.abs(e).max())
        assert err <= bound, (f"{what} ({storage}): error {err:.3e} > 4 x naive {storage} error "
                              f"{base:.3e} + 1 ulp (bound {bound:.3e})")
    if lengths is not None:
        assert_padding_zero(result[0], lengths, layer.batch_first)


STORAGE_CASES = [
    (30, 1, 64, 256, 1, False),      # B = 1: few_rows, a cluster of two
    (6, 16, 1760, 1760, 1, False),   # B = 16, H = 1760: tensor cores, two column tiles
    (6, 1, 40, 1024, 1, False),      # B = 1, H = 1024: tensor cores, one row tile
    (9, 17, 33, 257, 2, True),       # tensor cores: two row tiles, odd H, bidirectional
    (5, 3, 1761, 1760, 1, False),    # tensor cores: large H, odd I
    (4, 20, 48, 2200, 1, False),     # tensor cores: four column tiles per block
    (4, 64, 100, 1024, 1, False),    # per-step cuBLAS
    (3, 256, 64, 512, 1, True),      # B = 256
]


@gpu
@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", STORAGE_CASES, ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_storage_host_path(case, storage):
    T, B, I, H, L, bidir = case
    D = 2 if bidir else 1
    layer = elman.RNN(I, H, L, bidirectional=bidir, seed=25, device="cuda", storage=storage)
    assert layer.storage == storage and layer.weights()["w_y_l0"].dtype == np.float32
    rng = rng_for("storage", case, storage)
    x = make_input(rng, T, B, I, H)
    check_storage_layer(layer, x, None, None, layer(x))
    h0, lengths = uniform(rng, (D * L, B, H)), random_lengths(rng, T, B)
    check_storage_layer(layer, x, h0, lengths, layer(x, h0, lengths))


@gpu
@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
@pytest.mark.parametrize("kernel", KERNELS + ["mma"])
def test_storage_forced_kernel(kernel, storage):
    """Each recurrence kernel with 16-bit storage against the oracle."""
    run_forced(kernel, storage, [(6, 1, 30, 256, False), (8, 1, 20, 100, True), (9, 5, 30, 64, True),
                                 (7, 3, 33, 200, True),
                                 (6, 2, 20, 100, True),
                                 (5, 16, 1760, 1760, False), (7, 3, 33, 257, True),
                                 (4, 32, 64, 1024, False), (3, 17, 40, 100, True),
                                 (3, 129, 20, 901, True)])  # gemm: 64-row tiles


@gpu
@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_storage_device_path(storage):
    """Device input of the storage dtype in place (float16 by __cuda_array_interface__,
    bfloat16 by DLPack), outputs of that dtype equal to the host path's; other dtypes
    refused; step and stream work."""
    torch = _torch_cuda()
    T, B, I, H = 12, 5, 20, 130
    layer = elman.RNN(I, H, 2, seed=26, device="cuda", storage=storage, batch_first=True)
    tdtype = getattr(torch, storage)
    rng = rng_for("storage-dev", storage)
    x_np = round_to(storage, make_input(rng, B, T, I, H))       # (B, T, I): batch_first
    h0_np = round_to(storage, uniform(rng, (2, B, H)))
    x, h0 = torch.from_numpy(x_np).cuda().to(tdtype), torch.from_numpy(h0_np).cuda().to(tdtype)
    y, h_n = layer(x, h0)
    assert y.dtype == storage and y.shape == (B, T, H)
    assert hasattr(y, "__cuda_array_interface__") == (storage == "float16")
    yt, ht = torch.from_dlpack(y), torch.from_dlpack(h_n)
    assert yt.dtype == tdtype and tuple(yt.shape) == (B, T, H)
    y_host, h_host = layer(x_np, h0_np)
    assert np.array_equal(yt.float().cpu().numpy(), y_host)
    assert np.array_equal(ht.float().cpu().numpy(), h_host)
    assert np.array_equal(np.asarray(y.numpy(), np.float32), y_host)
    check_storage_layer(layer, x_np, h0_np, None, (y_host, h_host))
    with pytest.raises(TypeError, match=storage):
        layer(x.float())
    h = layer.step(x_np[:, 0])
    assert np.array_equal(h, layer(x_np[:, :1], h0=None)[1])
    # cuBLAS may pick another projection kernel for another T * B: a float32 sum may differ
    # in its last bits and round to the neighbouring storage value, so 4 ulp, not equality
    stream = layer.stream(B)
    chunked = np.concatenate([stream(x_np[:, :5]), stream(x_np[:, 5:])], axis=1)
    np.testing.assert_allclose(chunked, layer(x_np)[0], rtol=0, atol=8 * STORAGE_U[storage])


@gpu
@pytest.mark.parametrize("case", [(7, 5, 9, 33, 1, False), (9, 17, 33, 257, 2, True),
                                  (4, 64, 100, 1024, 1, False)],
                         ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_batch_first_device_input(case):
    torch = _torch_cuda()
    T, B, I, H, L, bidir = case
    D = 2 if bidir else 1
    layer = elman.RNN(I, H, L, bidirectional=bidir, batch_first=True, seed=27, device="cuda")
    rng = rng_for("bf-dev", case)
    x_np = make_input(rng, T, B, I, H, batch_first=True)
    h0_np, lengths = uniform(rng, (D * L, B, H)), random_lengths(rng, T, B)
    for kwargs in ({}, {"h0": h0_np, "lengths": lengths}):
        dev = {k: torch.from_numpy(v).cuda() if k == "h0" else v for k, v in kwargs.items()}
        y, h_n = layer(torch.from_numpy(x_np).cuda(), **dev)
        assert y.shape == (B, T, D * H)
        got = (torch.from_dlpack(y).cpu().numpy(), torch.from_dlpack(h_n).cpu().numpy())
        assert np.array_equal(got[0], layer(x_np, **kwargs)[0])
        check_layer(layer, x_np, kwargs.get("h0"), kwargs.get("lengths"), result=got)


# ======================================================================================
# Small cases for compute-sanitizer (bench/gpu_check.sh runs `-k sanitizer`; racecheck
# without the timed choice's trial): every kernel family (B = 1 on chip, few rows, large
# batch, long H), both directions, lengths, h0, step; short T, since the sanitizer slows
# kernels 10-100x. No torch (its own kernels would be checked too).
# ======================================================================================

SANITIZER_CASES = [(5, 1, 7, 33, 1, False), (4, 1, 64, 256, 1, True), (3, 1, 20, 300, 1, False),
                   (3, 4, 17, 200, 1, True), (3, 2, 9, 100, 1, True),
                   (3, 1, 40, 1024, 1, False),
                   (3, 3, 17, 257, 2, True), (3, 17, 31, 640, 1, False), (2, 64, 33, 1760, 1, False),
                   (2, 256, 64, 512, 1, True),
                   (2, 21, 9, 300, 1, True), (2, 40, 9, 300, 1, False)]  # few_rows: groups of 2, 4 rows on 132 SMs


def check_small_case(case, seed, label, storage="float32"):
    """One (T, B, I, H, layers, bidirectional) case against the oracle, without and with h0
    and lengths; returns the layer and its input."""
    T, B, I, H, L, bidir = case
    D = 2 if bidir else 1
    layer = elman.RNN(I, H, L, bidirectional=bidir, seed=seed, device="cuda", storage=storage)
    rng = rng_for(label, case, storage)
    x = make_input(rng, T, B, I, H)
    for args in ((x, None, None), (x, uniform(rng, (D * L, B, H)), random_lengths(rng, T, B))):
        if storage == "float32":
            check_layer(layer, *args)
        else:
            check_storage_layer(layer, *args, layer(*args))
    return layer, x


@gpu
@pytest.mark.parametrize("case", SANITIZER_CASES, ids=lambda c: "T%d-B%d-I%d-H%d-L%d-bi%d" % c)
def test_sanitizer_cases(case):
    layer, x = check_small_case(case, 20, "sanitizer")
    if not layer.bidirectional:
        h = layer.step(x[0])
        _, e = ref.forward(layer, x[:1])
        _, n = ref.forward(layer, x[:1], dtype=np.float32)
        assert_close(h, e, n, dtype=np.float32, what="step")


# Kernels that the default choice takes for few shapes, by the ELMAN_CUDA_KERNEL name that
# forces them, on shapes no other test runs.
FORCED_SANITIZER_CASES = {
    # one block of 64 and of 128 threads (one barrier a step), clusters of 2 and 8 blocks of 256
    "lean": [((3, 3, 9, 61, 1, True), "float32"), ((3, 2, 9, 97, 1, False), "float32"),
             ((3, 2, 9, 201, 1, True), "float32"), ((2, 2, 9, 301, 1, False), "float32")],
    # lean's clusters with sends instead of a barrier: 2 and 8 blocks, H a full cluster
    # (T = 7: each counter's phases reuse a parity)
    "lean_async": [((7, 2, 9, 201, 1, True), "float32"), ((2, 2, 9, 301, 1, False), "float32"),
                   ((3, 1, 9, 256, 1, False), "bfloat16")],
    # several row blocks, the last partial; odd H (scalar loads); several chunks of k, odd H
    # and H a multiple of 4 (vector loads: 16 bytes in float32, 8 in bfloat16)
    "gemm": [((2, 40, 9, 203, 1, True), "float32"), ((2, 33, 9, 131, 1, False), "float32"),
             ((2, 20, 9, 701, 1, False), "float32"), ((2, 20, 9, 700, 1, False), "float32"),
             ((2, 20, 9, 700, 1, False), "bfloat16")],
}


@gpu
@pytest.mark.parametrize("kernel", sorted(FORCED_SANITIZER_CASES))
def test_sanitizer_forced(kernel, monkeypatch):
    """The kernels above, forced in this process (choices are kept per forced kernel, so
    the rule's stay apart), against the oracle. Where the forced kernel
    cannot run a shape (lean's clusters, and lean_async, need compute capability 9; gemm a
    block per SM),
    the default runs it; the test fails if the forced kernel never ran."""
    monkeypatch.setenv("ELMAN_CUDA_KERNEL", kernel)
    ran = set()
    for case, storage in FORCED_SANITIZER_CASES[kernel]:
        check_small_case(case, 29, "sanitizer-" + kernel, storage)
        B, H = case[1], case[3]
        ran |= {elman.cuda._cuda.recurrence_kernel(B, H, lengths, storage) for lengths in (False, True)}
    assert kernel in ran, f"ELMAN_CUDA_KERNEL={kernel} never ran (ran: {ran})"


def shapes_of(cases):
    """(B, H, lengths, storage) of cases as check_small_case takes them, with their storage."""
    return [(case[1], case[3], lengths, storage) for case, storage in cases for lengths in (False, True)]


def timed_choices(cases):
    """With the timed choice, each case checked against the oracle (its seeds give rows
    with lengths below T, so the layer runs both shapes of shapes_of). Checks that the
    layer's own calls made a trial of each shape (recurrence_trial only looks) in which
    at least two kernels ran, and that the kernel kept is the trial's fastest; returns
    {(B, H, lengths, storage): (kernel kept, {kernel: ms})}."""
    kernel, trial = elman.cuda._cuda.recurrence_kernel, elman.cuda._cuda.recurrence_trial
    shapes = shapes_of(cases)
    try:
        elman.cuda.set_kernel_choice("timed")
        for case, storage in cases:
            check_small_case(case, 31, "timed", storage)
        trials = {shape: trial(*shape) for shape in shapes}
        kept = {shape: (kernel(*shape), dict(trials[shape] or [])) for shape in shapes}
    finally:
        elman.cuda.set_kernel_choice("rule")
    for shape, (name, times) in kept.items():
        assert trials[shape] is not None, f"{shape}: the layer's calls made no timed choice"
        ran = {k: ms for k, ms in times.items() if np.isfinite(ms)}
        assert len(ran) >= 2, f"{shape}: fewer than two kernels ran in the trial {times}"
        assert name == min(ran, key=ran.get), f"{shape}: kept {name}, trial {times}"
    return kept


@gpu
def test_timed_choice():
    """The timed choice times more than one kernel wherever several can run (float32 at
    B = 1, H = 61: few_rows, lean, persistent, tiled, fma, gemm, stepwise; at least three
    on an A100 for each shape here; never lean_async, an experiment), keeps the fastest, runs the layer within the oracle's
    tolerance with it, and keeps its choices apart from the rule's. Which kernel wins is
    not asserted (bench/gpu_tune.py shows it beside every kernel's time)."""
    cases = [((3, 1, 9, 61, 1, False), "float32"), ((3, 17, 9, 257, 1, True), "float32"),
             ((2, 20, 9, 700, 1, False), "bfloat16")]
    kernel = elman.cuda._cuda.recurrence_kernel
    by_rule = {shape: kernel(*shape) for shape in shapes_of(cases)}  # made first, kept apart
    kept = timed_choices(cases)
    for shape, (name, times) in kept.items():
        assert {"stepwise", "gemm"} <= set(times), f"{shape}: trial {times}"
        assert "lean_async" not in times, f"{shape}: the experiment was timed: {times}"
        if shape[1] == 61:
            assert "lean" in times, f"{shape}: trial {times}"
    assert {shape: kernel(*shape) for shape in by_rule} == by_rule
    print("timed choice:", kept)


@gpu
def test_sanitizer_trial():
    """The timed choice's trial under compute-sanitizer memcheck: every candidate's
    accesses to the scratch memory (one small shape, with lengths and without: a trial is
    4 runs of 40 steps per kernel; bench/gpu_check.sh leaves it out of racecheck, whose
    kernels the cases above check)."""
    timed_choices([((3, 2, 9, 61, 1, False), "float32")])


@gpu
@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_sanitizer_storage(storage):
    for case in [(3, 1, 7, 33, 1, False), (3, 17, 31, 257, 2, True), (2, 64, 33, 1024, 1, False)]:
        T, B, I, H, L, bidir = case
        D = 2 if bidir else 1
        layer = elman.RNN(I, H, L, bidirectional=bidir, seed=28, device="cuda", storage=storage)
        rng = rng_for("sanitizer-storage", case, storage)
        x, h0, lengths = make_input(rng, T, B, I, H), uniform(rng, (D * L, B, H)), random_lengths(rng, T, B)
        check_storage_layer(layer, x, h0, lengths, layer(x, h0, lengths))
