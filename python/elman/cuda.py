"""elman on NVIDIA GPUs: whether the CUDA backend is built, and the GPUs it sees.

Layers move with ``elman.RNN(..., device="cuda")`` or ``layer.to("cuda")`` (the GPU
current then), or ``"cuda:N"`` (GPU N; a torch.device works too). NumPy input
is copied to the GPU and the outputs come back as NumPy arrays; input on the GPU that
exposes ``__cuda_array_interface__`` or ``__dlpack__`` (torch CUDA tensors, CuPy and JAX
arrays) is read in place and the outputs are DeviceArray objects, which
torch.from_dlpack / cupy.from_dlpack / torch.as_tensor view without a copy.

Storage: ``RNN(..., device="cuda", storage="bfloat16")`` (or "float16") keeps weights,
inputs, outputs and states on the GPU in that type, with float32 products, sums and
activations; GPU inputs must then be of that dtype (bfloat16 arrays travel by DLPack
only), NumPy input is float32 in and out (rounded through the storage type).

Streams: by default a call waits for all work on the GPU, runs, and returns when its
outputs are complete. ``layer(x, stream=s)`` (s: a torch.cuda.Stream, a CuPy stream,
or a raw cudaStream_t as int) instead queues the work on s behind what is already there
and returns at once; the outputs carry that stream (DLPack consumers and
``__cuda_array_interface__`` readers wait for it), and x must stay alive until s has run.

Kernels: ``set_kernel_choice("timed")`` picks each shape's recurrence kernel by timing
every kernel that can run it, instead of by elman's fixed rule (a shape's first call
then waits for the GPU, with or without a stream).
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np

from . import _checks

try:
    from . import _cuda
    _load_error = None
except ImportError as e:  # not built, or a library it links (cuBLAS) is missing
    _cuda = None
    _load_error = e

DeviceArray = _cuda.DeviceArray if _cuda else None


def is_built() -> bool:
    """Whether this elman was built with its CUDA backend."""
    return _cuda is not None


def device_count() -> int:
    """GPUs elman can use: 0 when not built with CUDA or without driver or device."""
    return _cuda.device_count() if _cuda else 0


def is_available() -> bool:
    """Whether layers can go to a GPU; where they cannot, moving one raises RuntimeError
    saying why (no driver, a driver too old for this build's CUDA, no device visible)."""
    return device_count() > 0


def require() -> None:
    """Raises RuntimeError saying why layers cannot go to the GPU, if they cannot."""
    if _cuda is None:
        if importlib.util.find_spec(f"{__package__}._cuda") is None:
            raise RuntimeError("device: elman was built without CUDA (rebuild with nvcc and "
                               "cuBLAS present, or ELMAN_CUDA=ON to fail when they are not)")
        raise RuntimeError(f"device: elman's CUDA module could not be loaded: {_load_error}")
    if device_count() == 0:
        raise RuntimeError(f"device: no CUDA device can be used: {_cuda.unavailable_reason()}")


_GPU_NAME = re.compile(r"cuda:(0|[1-9][0-9]*)")


def check_device(device) -> str:
    """device as a string: "cpu", "cuda" or "cuda:N"; a torch.device (or any object with
    `type` and `index`) by its str(), e.g. torch.device("cuda", 1) is "cuda:1"."""
    if not isinstance(device, str) and hasattr(device, "type") and hasattr(device, "index"):
        device = str(device)
    if not isinstance(device, str) or not (device in ("cpu", "cuda") or _GPU_NAME.fullmatch(device)):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N' (N: a GPU's number), got {device!r}")
    return device


def gpu_number(device: str) -> int:
    """The GPU a layer moved to `device` ("cuda" or "cuda:N", checked) goes to: N, or the
    current GPU for "cuda". Raises as require() does, or ValueError for a GPU not seen."""
    require()
    if device == "cuda":
        return _cuda.current_device()
    number, count = int(device[5:]), device_count()
    if number >= count:
        seen = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise ValueError(f"device: no GPU {device!r}; this process sees only {seen}")
    return number


KERNEL_CHOICES = ("rule", "timed")
_kernel_choice = "rule"  # kept here only without the CUDA module, which keeps it otherwise


def set_kernel_choice(choice: str) -> None:
    """How elman picks the recurrence kernel for a shape (B, H, storage, lengths or not)
    when the shape first runs on a GPU.

    "rule" (the default): a fixed rule, from measurements on an H200 and an H100. "timed":
    every kernel that can run the shape is run there, on scratch memory after waiting for
    the GPU, and the fastest is kept; that first call takes longer (on an H200: 6-9 ms
    in the median over a grid of shapes, up to 71 ms). Either way the choice is
    kept per process, GPU and shape, and ELMAN_CUDA_KERNEL, where set, overrides both
    (choices are kept per forced kernel too).
    Kernels round differently within the tests' tolerance: with "timed", two processes
    may pick different kernels and so differ in the last bits. Without the CUDA backend
    this only records the choice.
    """
    global _kernel_choice
    if not isinstance(choice, str) or choice not in KERNEL_CHOICES:
        raise ValueError(f"choice: expected 'rule' or 'timed', got {choice!r}")
    if _cuda is not None:
        _cuda.set_timed_choice(choice == "timed")
    else:
        _kernel_choice = choice


def kernel_choice() -> str:
    """The way set by set_kernel_choice: "rule" or "timed"."""
    if _cuda is not None:
        return "timed" if _cuda.timed_choice() else "rule"
    return _kernel_choice


STORAGES = ("float32", "float16", "bfloat16")
# Per storage: the __cuda_array_interface__ typestr and the DLPack (code, bits, lanes).
_TYPESTR = {"float32": "<f4", "float16": "<f2", "bfloat16": None}
_DLPACK_DTYPE = {"float32": (2, 32, 1), "float16": (2, 16, 1), "bfloat16": (4, 16, 1)}


def check_storage(storage) -> str:
    if not isinstance(storage, str) or storage not in STORAGES:  # (an array's `in` is ambiguous)
        raise ValueError(f"storage: expected one of {', '.join(map(repr, STORAGES))}, got {storage!r}")
    return storage


def network(input_size, hidden_size, num_layers, num_directions, cells, storage, gpu):
    """A layer stack on GPU number `gpu`; cells as elman._run.network takes them."""
    return _cuda.Network(input_size, hidden_size, num_layers, num_directions,
                         [(w_x, w_y, b, reverse, act.as_tuple())
                          for w_x, w_y, b, reverse, act in cells], storage, gpu)


def _interface(value):
    """value's __cuda_array_interface__, or None where DLPack must say the dtype (torch
    raises TypeError for some dtypes and gives bfloat16 as opaque bytes)."""
    try:
        cai = value.__cuda_array_interface__
    except Exception:  # none, or none its producer can give (torch: RuntimeError, requires_grad)
        return None
    if not isinstance(cai, dict):  # not the protocol's: not read as a GPU array
        return None
    # torch gives bfloat16 as "<V2" (2 opaque bytes): DLPack names the type.
    if str(cai.get("typestr", ""))[1:2] == "V" and hasattr(value, "__dlpack__"):
        return None
    return cai


def on_device(value) -> bool:
    """Whether value is an array on a CUDA GPU (by __cuda_array_interface__ or DLPack)."""
    if _interface(value) is not None:
        return True
    try:  # (hasattr lets a property's own exception through)
        return (hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__")
                and int(value.__dlpack_device__()[0]) == _KDLCUDA)
    except Exception:  # a producer that cannot say: not taken as a GPU array
        return False


_KDLCUDA = 2


def _is_int(value, low: int = 0, below: int = 2**64) -> bool:
    """Whether value is an int (Python's or NumPy's, not a bool) in [low, below)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) \
        and bool(low <= value < below)


def stream_handle(stream) -> int:
    """The cudaStream_t (as int, 0 = none given) of a stream argument."""
    if stream is None:
        return 0
    for attribute in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
        if hasattr(stream, attribute):
            stream = getattr(stream, attribute)
            break
    if not _is_int(stream):
        raise TypeError("stream: expected None, a torch.cuda.Stream, a CuPy stream or a "
                        f"cudaStream_t as an int in [0, 2**64), got {stream!r}")
    return int(stream)


def _c_strides(shape):
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


def _view(name: str, value, shape, stream: int, storage: str, gpu: int):
    """(data pointer, shape, keep-alive) of a dense CUDA array of the storage's dtype that
    GPU `gpu` can read (see _require_on), by __cuda_array_interface__ or else DLPack;
    `shape` None takes any shape. Work on `stream` (0: the legacy default stream) of GPU
    `gpu` waits for the producer's stream."""
    if _checks.negation_pending(value):  # a copy here would be freed before a given stream ran
        raise TypeError(f"{name}: a torch tensor with a pending negation (is_neg()), which elman "
                        f"cannot read in place; pass {name}.resolve_neg()")
    cai, producer = _interface(value), None
    if cai is not None:
        pointer, got, typestr, strides, producer = _read_interface(name, cai)
        keep = value
    elif on_device(value):  # the producer makes `stream` wait as it gives the capsule
        try:
            try:
                capsule = value.__dlpack__(stream=stream if stream else 1)
            except TypeError:  # a producer without the stream keyword
                capsule = value.__dlpack__()
        except (BufferError, RuntimeError) as e:  # e.g. torch refuses tensors that require grad
            raise TypeError(f"{name}: could not be read through DLPack ({e})") from e
        if type(capsule).__name__ != "PyCapsule":
            raise TypeError(f"{name}: its __dlpack__ gave an object of type {type(capsule).__name__}, "
                            "not a DLPack capsule")
        pointer, got, strides, dtype, device = _cuda.dlpack_view(capsule, name)
        if device[0] != _KDLCUDA:
            raise TypeError(f"{name}: expected a CUDA array, got a DLPack array on device {tuple(device)}")
        typestr = next((_TYPESTR[s] or s for s, d in _DLPACK_DTYPE.items() if d == tuple(dtype)),
                       f"DLPack dtype {tuple(dtype)}")
        keep = capsule  # unconsumed: its producer's memory stays alive while we hold it
    else:
        raise TypeError(f"{name}: expected a CUDA array (with __cuda_array_interface__ or "
                        f"__dlpack__) as the input is one, got {type(value).__name__}")
    if typestr != (_TYPESTR[storage] or storage):
        raise TypeError(f"{name}: expected a {storage} CUDA array (the layer's storage), got {typestr}")
    if shape is not None and got != tuple(shape):
        raise ValueError(f"{name}: expected shape {_checks.shape_str(shape)}, got {_checks.shape_str(got)}")
    if strides is not None and any(n > 1 and s != c for n, s, c in zip(got, strides, _c_strides(got))):
        raise ValueError(f"{name}: expected a C-contiguous CUDA array (make it contiguous first)")
    if 0 not in got:  # an empty array may have no memory at all; the caller refuses its shape
        _require_on(gpu, name, pointer)
    if producer is not None:  # only now: an event on another GPU's stream would fail first
        _cuda.stream_wait(stream, producer, gpu)
    return pointer, got, keep


def _read_interface(name: str, cai: dict):
    """(pointer, shape, typestr, strides in items or None, producer stream or None) of a
    __cuda_array_interface__ (version 3), checked: a malformed one is refused, naming the
    argument, before any of it reaches CUDA (a short strides tuple or a float shape would
    otherwise pass the shape and contiguity checks)."""
    def malformed(what):
        return TypeError(f"{name}: its __cuda_array_interface__ is malformed: {what}")

    shape, typestr, data = cai.get("shape"), cai.get("typestr"), cai.get("data")
    strides, producer = cai.get("strides"), cai.get("stream")
    if not isinstance(shape, (tuple, list)) or not all(_is_int(n, below=2**63) for n in shape):
        raise malformed(f"expected 'shape' as a tuple of ints >= 0, got {shape!r}")
    if not isinstance(typestr, str):
        raise malformed(f"expected 'typestr' as a str, got {typestr!r}")
    if not isinstance(data, (tuple, list)) or len(data) != 2 or not _is_int(data[0]):
        raise malformed(f"expected 'data' as (pointer, read-only flag) with the pointer an "
                        f"int in [0, 2**64), got {data!r}")
    if strides is not None and (not isinstance(strides, (tuple, list)) or len(strides) != len(shape)
                                or not all(_is_int(s, -2**63, 2**63) for s in strides)):
        raise malformed(f"expected 'strides' as None or {len(shape)} ints (bytes), got {strides!r}")
    if cai.get("mask") is not None:
        raise TypeError(f"{name}: a masked CUDA array (its __cuda_array_interface__ has a "
                        f"'mask'), which elman cannot read; pass the data without the mask")
    # 0 is not the protocol's (it is ambiguous), but waiting for the legacy default stream
    # on it only waits for more than needed.
    if producer is not None and not _is_int(producer, below=2**63):  # (an address: far below)
        raise malformed(f"expected 'stream' as None or a cudaStream_t as an int in [0, 2**63), "
                        f"got {producer!r}")
    if strides is not None:  # in items; -1 for a stride that is not a whole number of them
        size = 2 if typestr[2:] == "2" else 4
        strides = tuple(int(s) // size if s % size == 0 else -1 for s in strides)
    return (int(data[0]), tuple(int(n) for n in shape), typestr, strides,
            None if producer is None else int(producer))


def _require_on(gpu: int, name: str, pointer: int) -> None:
    """Refuses memory that a kernel on GPU `gpu` cannot read: another GPU's (reading it
    there would be an illegal address, which breaks the whole CUDA context), or host
    memory that the GPU cannot read at that address."""
    where = _cuda.memory_device(pointer, gpu)
    if where == _cuda.NOT_DEVICE_MEMORY:
        raise TypeError(f"{name}: its data is not GPU memory (a host array that claims to be "
                        f"a CUDA array?)")
    if where not in (gpu, _cuda.ANY_DEVICE):
        remedy = ("a stream's state stays on the GPU where it was made: reset() the stream"
                  if name == "state" else f"move the array or the layer (layer.to('cuda:{where}'))")
        raise ValueError(f"{name}: on GPU {where} (cuda:{where}), but the layer is on GPU {gpu}; {remedy}")


def _require_stream_on(gpu: int, stream, handle: int) -> None:
    """Refuses a stream of another GPU: CUDA names a handle's GPU; handles 0, 1 and 2 name
    default streams (the layer's GPU's during its call), but a torch or CuPy stream object
    may say it is another GPU's default stream, and says so where CUDA cannot name it."""
    where = _cuda.stream_device(handle, gpu) if handle > 2 else _cuda.ANY_DEVICE
    if where == _cuda.ANY_DEVICE:
        own = getattr(getattr(stream, "device", None), "index", None)  # torch.cuda.Stream
        if own is None:
            own = getattr(stream, "device_id", None)  # CuPy; -1 where it does not know
        if isinstance(own, int) and own >= 0:
            where = own
    if where not in (gpu, _cuda.ANY_DEVICE):
        raise ValueError(f"stream: belongs to GPU {where}, but the layer is on GPU {gpu}")


def run_device(net, x, h0, lengths, *, batch_first: bool, stream=None, names=("x", "h0", "T"),
               batch=None):
    """(y, h_n) as DeviceArrays for x on the GPU ((T, B, I), or (B, T, I) if batch_first,
    in the layer's storage dtype), read in place. names: what x, h0 and T are called in
    errors; batch: the B that x must have, if any."""
    x_name, h0_name, steps_name = names
    handle = stream_handle(stream)
    storage, gpu = net.storage, net.device
    # Refused before anything else asks CUDA about the stream (asking for its GPU breaks a
    # capture too), queues or waits: a wait would break the capture, and a captured call
    # would replay into outputs and work buffers that later calls reuse.
    if handle and _cuda.stream_capturing(handle, gpu):
        raise ValueError("stream: is capturing a CUDA graph, which elman's calls cannot join "
                         "(a call allocates its outputs and may wait for the GPU); call the "
                         "layer before or after the capture")
    _require_stream_on(gpu, stream, handle)
    x_ptr, shape, keep_x = _view(x_name, x, None, handle, storage, gpu)
    layout = f"(B, {steps_name}, I)" if batch_first else f"({steps_name}, B, I)"
    if len(shape) != 3 or shape[2] != net.input_size or 0 in shape:
        raise ValueError(f"{x_name}: expected a CUDA array of shape {layout} with I={net.input_size}, "
                         f"got {_checks.shape_str(shape)}")
    steps, b = shape[1::-1] if batch_first else shape[:2]
    if batch is not None and b != batch:
        raise ValueError(f"{x_name}: expected shape {layout} with B={batch}, got {_checks.shape_str(shape)}")
    h0_ptr, keep_h0 = _state_view(net, h0_name, h0, b, handle)
    if lengths is not None:
        lengths = _checks.lengths_array(lengths, steps, b)
    result = net.forward_device(x_ptr, steps, b, h0_ptr, lengths, handle, batch_first)
    del keep_x, keep_h0  # held until the work is queued (or, without a stream, done)
    return result


def step_device(net, x_t, h):
    """The state after one step, (L, B, H) as a DeviceArray, for x_t (B, I) on the GPU
    (the layer's storage dtype, read in place) from h (L, B, H) on the GPU, or zeros."""
    x_ptr, shape, keep_x = _view("x_t", x_t, None, 0, net.storage, net.device)
    if len(shape) != 2 or shape[1] != net.input_size or 0 in shape:
        raise ValueError(f"x_t: expected a CUDA array of shape (B, I) with I={net.input_size}, "
                         f"got {_checks.shape_str(shape)}")
    h_ptr, keep_h = _state_view(net, "h", h, shape[0], 0)
    _, h_n = net.forward_device(x_ptr, 1, shape[0], h_ptr, None, 0, False)  # (B, I) is (1, B, I)
    del keep_x, keep_h
    return h_n


def check_state(net, name, h, batch) -> None:
    """Refuses, naming it, a state that a call would refuse: not (L*D, B, H), not in the
    net's storage type, or not on its GPU."""
    _state_view(net, name, h, batch, 0)


def _state_view(net, name, h, batch, stream):
    """(pointer, keep-alive) of a state (L*D, B, H) on the GPU; (0, None) for None."""
    if h is None:
        return 0, None
    shape = (net.num_layers * net.num_directions, batch, net.hidden_size)
    pointer, _, keep = _view(name, h, shape, stream, net.storage, net.device)
    return pointer, keep
