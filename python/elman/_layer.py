"""elman.RNN: a stack of recurrent layers that owns its weights."""

from __future__ import annotations

import itertools
import os
import re
from functools import partial
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from . import _activations, _checks, _run, cuda

WEIGHT_NAME = re.compile(r"^(w_x|w_y|b)_l(\d+)(_reverse)?$")
# A layer's weights and device, numbered each time they change; the native network built
# for them is kept with the number (_net: (number, network)). Numbers never repeat (next()
# on a count is atomic), so a network that a call built while another thread assigned a
# weight is never taken for the new weights' one: the next call builds that one.
_versions = itertools.count()
# The seed with which from_weights makes a layer whose weights it then assigns, all of them:
# none are drawn (a file's header could ask for gigabytes that its weights then lack).
_ASSIGNED_NEXT = object()


class RNN:
    """Layers of y_t = act(x_t @ W_x + y_{t-1} @ W_y + b), shaped like torch.nn.RNN.

    Weights per layer k (and direction): attributes ``w_x_l{k}`` (I_k, H), ``w_y_l{k}``
    (H, H), ``b_l{k}`` (H,), with suffix ``_reverse`` for the backward direction; I_0 is
    input_size, I_k = num_directions * H after. They start ~ U(-1/sqrt(H), 1/sqrt(H))
    from ``np.random.default_rng(seed)``, read as read-only arrays, and can be assigned
    (same shape; the layer repacks them).

    nonlinearity: one of elman.reference.ACTIVATIONS (ONNX's RNN activations, snake_case),
    with activation_alpha / activation_beta (None = ONNX's defaults) and clip (bound the
    pre-activation to [-clip, clip]; None = none), the same in every layer and direction.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 bidirectional: bool = False, dtype: type | np.dtype | str = np.float32,
                 seed: Any = None, *,
                 activation_alpha: float | None = None, activation_beta: float | None = None,
                 clip: float | None = None, device: Any = "cpu", storage: str = "float32") -> None:
        s = object.__setattr__
        s(self, "_input_size", _checks.positive_int("input_size", input_size, _checks.MAX_FEATURES))
        s(self, "_hidden_size", _checks.positive_int("hidden_size", hidden_size, _checks.MAX_FEATURES))
        s(self, "_num_layers", _checks.positive_int("num_layers", num_layers))
        s(self, "_activation", _activations.resolve("nonlinearity", nonlinearity, activation_alpha,
                                                    activation_beta, clip))
        s(self, "_bias", _checks.flag("bias", bias))
        s(self, "_batch_first", _checks.flag("batch_first", batch_first))
        s(self, "_bidirectional", _checks.flag("bidirectional", bidirectional))
        s(self, "_dtype", _checks.layer_dtype(dtype))
        self._activation.require_within(self._dtype)
        s(self, "_net", None)
        s(self, "_version", next(_versions))
        s(self, "_gpu", None)  # the GPU's number, on a GPU
        s(self, "_storage", "float32")
        # Checked before the table of shapes exists: it has an entry per layer.
        _checks.fits_in_memory("input_size, hidden_size, num_layers", 2 * 8 * self._weight_count())
        shapes = self._weight_shapes()
        weights = {}
        if seed is _ASSIGNED_NEXT:  # placeholders of no memory (read-only zero-stride views)
            weights = {name: np.broadcast_to(self._dtype.type(0), shape) for name, shape in shapes.items()}
        else:
            rng = _checks.random_generator(seed)
            bound = 1.0 / np.sqrt(self._hidden_size)
            for name, shape in shapes.items():
                w = rng.uniform(-bound, bound, size=shape).astype(self._dtype)
                w.flags.writeable = False
                weights[name] = w
        s(self, "_weights", weights)
        self.to(device, storage=storage)

    @classmethod
    def from_weights(cls, weights: dict, **options) -> "RNN":
        """A layer with `options` (the constructor's keywords) and exactly these weights, by
        name as weights() returns them: the importers' and elman.load's way in."""
        layer = cls(**{**options, "seed": _ASSIGNED_NEXT})  # no weights drawn to be replaced
        expected = layer._weight_shapes()
        if set(weights) != set(expected):
            missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise ValueError(f"weights: do not match the options (missing {missing}, unexpected {extra})")
        for name in expected:
            setattr(layer, name, weights[name])
        return layer

    # -- options (read-only: the weights' shapes depend on them) --------------------
    input_size = property(lambda self: self._input_size)
    hidden_size = property(lambda self: self._hidden_size)
    num_layers = property(lambda self: self._num_layers)
    nonlinearity = property(lambda self: self._activation.name)
    activation_alpha = property(lambda self: self._activation.alpha)  # None: takes none
    activation_beta = property(lambda self: self._activation.beta)
    clip = property(lambda self: self._activation.clip)
    bias = property(lambda self: self._bias)
    batch_first = property(lambda self: self._batch_first)
    bidirectional = property(lambda self: self._bidirectional)
    dtype = property(lambda self: self._dtype)
    num_directions = property(lambda self: 2 if self._bidirectional else 1)
    device = property(lambda self: "cpu" if self._gpu is None else f"cuda:{self._gpu}")
    storage = property(lambda self: self._storage)

    def to(self, device: Any, *, storage: str | None = None) -> "RNN":
        """Runs this layer on `device` from now on: "cpu"; "cuda", the GPU current now;
        or "cuda:N", GPU N (a torch.device works too). float32 layers only on a GPU.

        storage (on a GPU): "float32", "float16" or "bfloat16", how the GPU keeps
        weights, inputs, outputs and states (arithmetic stays float32; the layer's
        weights stay float32 here); None keeps the current one on a GPU."""
        device = cuda.check_device(device)
        on_gpu = device != "cpu"
        if storage is None:
            storage = self._storage if on_gpu else "float32"
        storage = cuda.check_storage(storage)
        if not on_gpu and storage != "float32":
            raise ValueError(f"storage: {storage} runs on \"cuda\" only; the CPU engine "
                             f"computes in the layer's dtype ({self._dtype})")
        gpu = cuda.gpu_number(device) if on_gpu else None
        if on_gpu and self._dtype != np.float32:
            raise TypeError(f"device: the CUDA backend runs float32 layers, this one is {self._dtype}")
        if (gpu, storage) != (self._gpu, self._storage):
            object.__setattr__(self, "_gpu", gpu)
            object.__setattr__(self, "_storage", storage)
            self._drop_network()
        return self

    # -- copies and pickles: the options and weights; the engine is rebuilt at the next call --
    def __getstate__(self):
        state = dict(self.__dict__, _weights=dict(self._weights))
        del state["_net"], state["_version"]  # this process's
        return state

    def __setstate__(self, state):
        gpu, storage = state["_gpu"], state["_storage"]
        state = {k: v for k, v in state.items() if k not in ("_net", "_version")}  # (older pickles')
        for name, value in dict(state, _gpu=None, _storage="float32").items():
            object.__setattr__(self, name, value)
        self._drop_network()
        for w in self._weights.values():  # unpickled and deep-copied arrays come writeable
            w.flags.writeable = False
        self.to("cpu" if gpu is None else f"cuda:{gpu}", storage=storage)  # the same GPU number

    def __repr__(self):
        extra = "".join(f", {k}={v}" for k, v in self._activation.non_default().items())
        return (f"RNN(input_size={self._input_size}, hidden_size={self._hidden_size}, "
                f"num_layers={self._num_layers}, nonlinearity={self.nonlinearity!r}, "
                f"bias={self._bias}, batch_first={self._batch_first}, "
                f"bidirectional={self._bidirectional}, dtype={self._dtype}{extra})")

    # -- weights ----------------------------------------------------------------------
    def _weight_count(self) -> int:
        """Numbers in all the weights (Python integers: no overflow)."""
        I, H, L, D = self._input_size, self._hidden_size, self._num_layers, self.num_directions
        per_direction = H * H + (H if self._bias else 0)
        return D * (I * H + per_direction) + (L - 1) * D * (D * H * H + per_direction)

    def _weight_shapes(self) -> dict:
        H, D = self._hidden_size, self.num_directions
        shapes: dict[str, tuple[int, ...]] = {}
        for k in range(self._num_layers):
            for suffix in ("", "_reverse")[:D]:
                shapes[f"w_x_l{k}{suffix}"] = (self._input_size if k == 0 else D * H, H)
                shapes[f"w_y_l{k}{suffix}"] = (H, H)
                if self._bias:
                    shapes[f"b_l{k}{suffix}"] = (H,)
        return shapes

    def weights(self) -> dict[str, np.ndarray]:
        """Every weight by name, in layer order (forward direction first)."""
        return {name: w.view() for name, w in self._weights.items()}

    def __getattr__(self, name):
        weights = self.__dict__.get("_weights", {})
        if name in weights:
            return weights[name].view()
        if WEIGHT_NAME.match(name):
            raise AttributeError(f"{name}: this layer has no such weight (num_layers="
                                 f"{self._num_layers}, bias={self._bias}, "
                                 f"bidirectional={self._bidirectional})")
        raise AttributeError(f"'RNN' object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name not in self._weights:
            if WEIGHT_NAME.match(name):
                self.__getattr__(name)  # raises the explanation
            raise AttributeError(f"{name}: RNN attributes other than weights are read-only")
        w = _checks.real_array(name, value, self._dtype).copy()
        _checks.exact_shape(name, w, self._weights[name].shape)
        w.flags.writeable = False
        self._weights[name] = w
        self._drop_network()

    def __delattr__(self, name):
        # Every weight is part of the layer's shape, and its other attributes are read-only.
        raise AttributeError(f"{name}: RNN attributes cannot be deleted (assign a weight to change it)")

    def _drop_network(self) -> None:
        """After a change of weights or device: the network is rebuilt (repacked) at the next
        call, and the old one freed now (its memory, perhaps a GPU's)."""
        object.__setattr__(self, "_version", next(_versions))
        object.__setattr__(self, "_net", None)

    def _network(self):
        version, cached = self._version, self._net  # the version first: see _versions
        if cached is not None and cached[0] == version:
            return cached[1]
        cells = []
        for k in range(self._num_layers):
            for d, suffix in enumerate(("", "_reverse")[:self.num_directions]):
                cells.append((self._weights[f"w_x_l{k}{suffix}"], self._weights[f"w_y_l{k}{suffix}"],
                              self._weights.get(f"b_l{k}{suffix}"), d == 1, self._activation))
        build = (partial(_run.network, self._dtype) if self._gpu is None
                 else partial(cuda.network, storage=self._storage, gpu=self._gpu))
        net = build(self._input_size, self._hidden_size, self._num_layers, self.num_directions, cells)
        object.__setattr__(self, "_net", (version, net))
        return net

    # -- running --------------------------------------------------------------------------
    def __call__(self, x: Any, h0: Any = None, lengths: npt.ArrayLike | None = None, *,
                 stream: Any = None) -> tuple[Any, Any]:
        """(y, h_n) for a whole sequence.

        x: (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched.
        h0: (num_layers * num_directions, B, H) ((L*D, H) unbatched) or None = zeros.
        lengths: (B,) integers in [1, T]; outputs at steps >= lengths[b] are exactly 0,
        h_n holds the state after step lengths[b] - 1, and the backward direction runs
        over each sequence's own valid steps.
        y: (T, B, D*H) in x's layout, [forward, backward] on the last axis; h_n like h0,
        layer-major, direction-minor.
        On a GPU, x on that GPU (__cuda_array_interface__ or __dlpack__, in the layer's
        storage dtype) is read in place and y, h_n are elman.cuda.DeviceArray; NumPy in
        gives NumPy out.
        stream (GPU input only): the CUDA stream to queue the work on, returning at once
        (see elman.cuda); None: wait for the device, run, return complete outputs.
        """
        if self._gpu is not None and cuda.on_device(x):
            return cuda.run_device(self._network(), x, h0, lengths, batch_first=self._batch_first,
                                   stream=stream)
        if stream is not None:
            raise ValueError("stream: only for input on the GPU to a layer on a GPU "
                             f"(this layer is on {self.device!r}, x is {type(x).__name__})")
        return _run.run(self._network(), self._dtype, x, h0, lengths, batch_first=self._batch_first)

    def step(self, x_t: Any, h: Any = None) -> Any:
        """One time step through every layer: x_t (B, I) or (I,); h (L, B, H) or (L, H),
        None = zeros. Returns the new h; h[-1] is the last layer's output.
        On a GPU, x_t (B, I) on that GPU (in the layer's storage dtype) is read in place, h
        must then be there too (or None), and the new h is an elman.cuda.DeviceArray."""
        self._require_unidirectional("step")
        if self._gpu is not None and cuda.on_device(x_t):
            return cuda.step_device(self._network(), x_t, h)
        x_t = _checks.real_array("x_t", x_t, self._dtype)
        if x_t.ndim not in (1, 2):
            raise ValueError(f"x_t: expected 2 dimensions (B, I) or 1 (I,), got shape "
                             f"{_checks.shape_str(x_t.shape)}")
        _, h_n = _run.run(self._network(), self._dtype, x_t[None], h, None, batch_first=False,
                          names=("x_t", "h"))
        return h_n

    def stream(self, batch_size: int) -> "Stream":
        """A Stream that runs chunks of one long sequence, keeping the state between them."""
        return Stream(self, batch_size)

    # -- interop (each in its own module, which imports its framework only when called) --
    def save(self, path: str | bytes | os.PathLike | BinaryIO) -> None:
        """Write every option and weight to `path` (format: elman/_io.py, README)."""
        from . import _io
        _io.save(self, path)

    def to_torch(self) -> Any:
        """An equivalent torch.nn.RNN (tanh or relu, no clip), in evaluation mode."""
        from . import _torch
        return _torch.to_torch(self)

    def to_onnx(self, path: str | os.PathLike | None = None, *, opset: int = 22) -> Any:
        """An ONNX model (one standard RNN node per layer) computing this layer; written to
        `path` if given. Returns the onnx.ModelProto."""
        from . import _onnx_model
        return _onnx_model.to_onnx(self, path, opset=opset)

    def _require_unidirectional(self, what):
        if self._bidirectional:
            raise ValueError(f"{what}: a bidirectional layer needs the whole sequence; "
                             f"call the layer on it instead")


class Stream:
    """Stateful chunked inference: the outputs of successive calls, concatenated in time,
    equal one call of the layer on the concatenated chunks. The state can be read, set
    (to resume a sequence) and pickled; copy.copy branches the sequence."""

    def __init__(self, layer: RNN, batch_size: int):
        """layer.stream(batch_size) makes one too."""
        if not isinstance(layer, RNN):
            raise TypeError(f"layer: expected an elman.RNN, got {type(layer).__name__}")
        layer._require_unidirectional("stream")
        self._layer = layer
        self._batch_size = _checks.positive_int("batch_size", batch_size)
        self._state = None

    def __call__(self, x_chunk: Any) -> Any:
        """x_chunk: (T_c, B, I), or (B, T_c, I) if the layer is batch_first. Returns y_chunk.
        On a GPU, chunks on that GPU are read in place and give DeviceArrays (the state
        stays on the GPU); a stream's chunks are all on the GPU or all on the host."""
        return self._exclusive("stream: already running a chunk (in another thread, or one this "
                               "call is inside); a stream's chunks must come one after another",
                               partial(self._chunk, x_chunk))

    def _chunk(self, x_chunk: Any) -> Any:
        on_gpu = self._layer._gpu is not None and cuda.on_device(x_chunk)
        if self._state is not None and on_gpu != (not isinstance(self._state, np.ndarray)):
            raise ValueError("x_chunk: a stream's chunks must all be on the GPU or all on the "
                             "host (reset() starts a new sequence)")
        if on_gpu:
            y, self._state = cuda.run_device(self._layer._network(), x_chunk, self._state, None,
                                             batch_first=self._layer.batch_first,
                                             names=("x_chunk", "state", "T_c"), batch=self._batch_size)
            return y
        x = _checks.real_array("x_chunk", x_chunk, self._layer.dtype)
        batch_axis = 0 if self._layer.batch_first else 1
        if x.ndim != 3 or x.shape[batch_axis] != self._batch_size:
            layout = "(B, T_c, I)" if self._layer.batch_first else "(T_c, B, I)"
            raise ValueError(f"x_chunk: expected shape {layout} with B={self._batch_size}, "
                             f"got {_checks.shape_str(x.shape)}")
        y, self._state = _run.run(self._layer._network(), x.dtype, x, self._state, None,
                                  batch_first=self._layer.batch_first, names=("x_chunk", "state"))
        return y

    def reset(self) -> None:
        """Start a new sequence: the state returns to zeros."""
        self._exclusive("stream: cannot reset while a chunk runs (in another thread, or one "
                        "this call is inside)",
                        partial(setattr, self, "_state", None))

    @property
    def batch_size(self) -> int:
        """B, the sequences that every chunk holds."""
        return self._batch_size

    @property
    def layer(self) -> RNN:
        """The layer whose weights the chunks run through (its current weights at each chunk)."""
        return self._layer

    @property
    def state(self) -> np.ndarray:
        """A copy of the current state on the host, (num_layers, B, H)."""
        if self._state is None:
            return np.zeros((self._layer.num_layers, self._batch_size, self._layer.hidden_size),
                            self._layer.dtype)
        if isinstance(self._state, np.ndarray):
            return self._state.copy()
        return np.asarray(self._state.numpy(), self._layer.dtype)  # a GPU stream's (float16 widened)

    @state.setter
    def state(self, h) -> None:
        """Continue a sequence from h, (num_layers, B, H): a host array (copied), after which
        the chunks are on the host; on a GPU layer also an elman.cuda.DeviceArray on its GPU
        in its storage type (a layer's h_n, another stream's state), read in place, after
        which the chunks are on the GPU. None: zeros, as after reset()."""
        layer = self._layer
        if layer._gpu is not None and cuda.DeviceArray is not None and isinstance(h, cuda.DeviceArray):
            cuda.check_state(layer._network(), "state", h, self._batch_size)
        elif h is not None:
            h = _checks.real_array("state", h, layer.dtype)
            _checks.exact_shape("state", h, (layer.num_layers, self._batch_size, layer.hidden_size),
                                "(num_layers, B, H)")
            h = np.array(h, order="C")  # a copy: the caller may change theirs
        self._exclusive("stream: cannot set the state while a chunk runs (in another thread, "
                        "or one this call is inside)",
                        partial(setattr, self, "_state", h))

    def _exclusive(self, refusal: str, work):
        """work() with this stream marked busy, or RuntimeError(refusal) if it already is.
        A Ctrl-C anywhere leaves no mark behind: the mark is set inside the try, and the
        finally clears it with no call (from 3.11, Python raises a pending KeyboardInterrupt
        only at calls, function starts and loops' jumps back, so none can come between the
        finally's start and the clearing; on 3.10, at any instruction, one still can)."""
        mark = object()
        try:
            if _busy_streams.setdefault(self, mark) is not mark:  # test and set in one step
                raise RuntimeError(refusal)
            return work()
        finally:
            if self in _busy_streams and _busy_streams[self] is mark:  # ours; a forked child has none
                del _busy_streams[self]

    # -- copies share the layer and the state (never written in place: each chunk makes a
    # new one), wherever it is; pickles and deep copies take the state to the host ---------
    def __copy__(self):
        other = Stream(self._layer, self._batch_size)
        other._state = self._state
        return other

    def __getstate__(self):
        return {"layer": self._layer, "batch_size": self._batch_size,
                "state": None if self._state is None else self.state}

    def __setstate__(self, saved):
        self.__init__(saved["layer"], saved["batch_size"])
        self.state = saved["state"]  # checked and copied (pickle may hand over a shared buffer)

    def __repr__(self):
        return f"Stream(batch_size={self._batch_size}, layer={self._layer!r})"


# The streams now running a chunk (or setting their state). A forked child starts
# with none: fork copies only the forking thread, so a chunk that another thread was
# running does not run on in the child, whose copy of the stream would otherwise refuse
# every chunk for ever. The copy's state is whole (a chunk assigns its new state in one
# step, at its end). The handler is the dict's own clear: a function of this module as
# the handler would keep the module alive until the interpreter's last clean-up, which
# sets its names to None, and a layer called from a __del__ at exit then failed
# (tests/test_fork_and_exit.py).
_busy_streams: dict[Stream, object] = {}
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_busy_streams.clear)
