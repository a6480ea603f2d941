"""layer.step and layer.stream against the oracle and against one full call."""

from functools import partial

import numpy as np
import pytest

import elman
from helpers import assert_close, check_layer, chunk_running, ref, rng_for, uniform


def _oracle_states(layer, x, h0=None):
    """Oracle state of every layer after each step: list over t of (L, B, H), float64,
    and the float32 naive equivalent (for the tolerance baseline)."""
    out = {}
    for dtype in (np.float64, np.float32):
        states, h = [], h0
        for t in range(x.shape[0]):
            _, h = ref.forward(layer, x[t:t + 1], h, dtype=dtype)   # one step, all layers
            states.append(h)
        out[dtype] = states
    return out[np.float64], out[np.float32]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_step_matches_oracle_and_full_call(num_layers, nonlinearity, dtype):
    T, B, I, H = 12, 3, 5, 17
    layer = elman.RNN(I, H, num_layers, nonlinearity, dtype=dtype, seed=21)
    rng = rng_for("step", num_layers, nonlinearity, dtype)
    x = uniform(rng, (T, B, I), 1.0, dtype)
    h0 = uniform(rng, (num_layers, B, H), 1.0, dtype)
    expected, naive = _oracle_states(layer, x, h0)
    y_full, h_full = layer(x, h0)
    h = h0
    for t in range(T):
        h_new = layer.step(x[t], h)
        assert h_new.shape == (num_layers, B, H) and h_new.dtype == dtype
        assert_close(h_new, expected[t], naive[t], dtype=dtype, what=f"step {t}")
        # the last layer's state is the layer's output at t (same tolerance vs the full call)
        assert_close(h_new[-1], y_full[t].astype(np.float64), naive[t][-1], dtype=dtype,
                     what=f"step {t} vs full call")
        h = h_new
    assert_close(h, h_full.astype(np.float64), naive[-1], dtype=dtype, what="final step vs h_n")
    check_layer(layer, x, h0, result=(y_full, h_full))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_default_state_and_unbatched(dtype):
    L, I, H = 2, 4, 6
    layer = elman.RNN(I, H, L, dtype=dtype, seed=22)
    rng = rng_for("step0", dtype)
    x = uniform(rng, (3, 2, I), 1.0, dtype)
    expected, naive = _oracle_states(layer, x)
    h = layer.step(x[0])                                   # h=None means zeros
    assert_close(h, expected[0], naive[0], dtype=dtype)
    h = layer.step(x[1], h)
    assert_close(h, expected[1], naive[1], dtype=dtype)
    # unbatched: x_t (I,), h (L, H)
    hu = layer.step(x[0, 1])
    assert hu.shape == (L, H)
    assert_close(hu, expected[0][:, 1], naive[0][:, 1], dtype=dtype)
    hu2 = layer.step(x[1, 1], hu)
    assert_close(hu2, expected[1][:, 1], naive[1][:, 1], dtype=dtype)


def test_step_does_not_modify_h():
    layer = elman.RNN(3, 4, 2, dtype=np.float64, seed=23)
    h = np.zeros((2, 1, 4))
    x = np.ones((1, 3))
    h_new = layer.step(x, h)
    assert np.all(h == 0) and not np.shares_memory(h, h_new)
    assert np.any(h_new != 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_stream_chunks_equal_one_call(num_layers, batch_first, dtype):
    T, B, I, H = 23, 4, 6, 19
    layer = elman.RNN(I, H, num_layers, batch_first=batch_first, dtype=dtype, seed=24)
    rng = rng_for("stream", num_layers, batch_first, dtype)
    x = uniform(rng, (T, B, I), 1.0, dtype)                # time-major; transposed below if needed
    ey, eh = ref.forward(layer, x.transpose(1, 0, 2) if batch_first else x)
    ny, nh = ref.forward(layer, x.transpose(1, 0, 2) if batch_first else x, dtype=np.float32)
    if batch_first:
        ey, ny = ey.transpose(1, 0, 2), ny.transpose(1, 0, 2)
    s = layer.stream(batch_size=B)
    assert np.array_equal(s.state, np.zeros((num_layers, B, H)))
    for run in range(2):                                   # second run after reset()
        parts, t = [], 0
        for n in (1, 5, 2, 11, 4):                         # uneven chunks, sum 23
            chunk = x[t:t + n]
            y = s(chunk.transpose(1, 0, 2) if batch_first else chunk)
            assert y.shape == ((B, n, H) if batch_first else (n, B, H)) and y.dtype == dtype
            parts.append(y.transpose(1, 0, 2) if batch_first else y)
            t += n
        assert_close(np.concatenate(parts), ey, ny, dtype=dtype, what=f"stream run {run}")
        st = s.state
        assert st.shape == (num_layers, B, H)
        assert_close(st, eh, nh, dtype=dtype, what="stream state")
        st[...] = 123                                      # a copy: must not touch the stream
        assert not np.any(s.state == 123)
        s.reset()
        assert np.array_equal(s.state, np.zeros((num_layers, B, H)))


def test_stream_state_continues_across_calls():
    """Two streams fed the same first chunk then different second chunks: the second
    outputs are the oracle's continuation from the first chunk's state."""
    T1, T2, B, I, H = 4, 3, 2, 3, 5
    layer = elman.RNN(I, H, 2, dtype=np.float64, seed=25)
    rng = rng_for("cont")
    a, b = uniform(rng, (T1, B, I), 1.0, np.float64), uniform(rng, (T2, B, I), 1.0, np.float64)
    s = layer.stream(batch_size=B)
    s(a)
    y = s(b)
    _, h_mid = ref.forward(layer, a)
    ey, _ = ref.forward(layer, b, h_mid)
    assert_close(y, ey, dtype=np.float64)


def test_stream_independent_of_layer_calls():
    """Calling the layer or another stream between chunks does not disturb a stream."""
    T, B, I, H = 6, 2, 3, 4
    layer = elman.RNN(I, H, dtype=np.float64, seed=26)
    x = uniform(rng_for("indep"), (T, B, I), 1.0, np.float64)
    s1, s2 = layer.stream(batch_size=B), layer.stream(batch_size=B)
    y1 = s1(x[:3])
    layer(x[::-1].copy())
    s2(x[3:])
    y2 = s1(x[3:])
    ey, _ = ref.forward(layer, x)
    assert_close(np.concatenate([y1, y2]), ey, dtype=np.float64)


def test_bidirectional_step_and_stream_rejected():
    layer = elman.RNN(3, 4, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match="(?i)bidirectional"):
        layer.step(np.zeros((1, 3), np.float32))
    for make in (layer.stream, partial(elman.Stream, layer)):  # the public class checks too
        with pytest.raises(ValueError, match="(?i)bidirectional"):
            make(batch_size=1)


@pytest.mark.parametrize("batch_size,error", [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                              ("2", TypeError), (True, TypeError)])
def test_stream_batch_size_checked(batch_size, error):
    layer = elman.RNN(3, 4, seed=0)
    for make in (layer.stream, partial(elman.Stream, layer)):
        with pytest.raises(error, match="^batch_size:"):
            make(batch_size=batch_size)
    with pytest.raises(TypeError, match="^layer: expected an elman.RNN"):
        elman.Stream("not a layer", 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_one_step_chunks_latency_shape(dtype):
    """B = 1, H = 256, 40 chunks of one step each (the latency path) against the oracle."""
    T, B, I, H = 40, 1, 32, 256
    layer = elman.RNN(I, H, 2, dtype=dtype, seed=27)
    x = uniform(rng_for("lat", dtype), (T, B, I), 1.0, dtype)
    s = layer.stream(batch_size=B)
    y = np.concatenate([s(x[t:t + 1]) for t in range(T)])
    ey, eh = ref.forward(layer, x)
    ny, nh = ref.forward(layer, x, dtype=np.float32)
    assert_close(y, ey, ny, dtype=dtype)
    assert_close(s.state, eh, nh, dtype=dtype, what="state")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_state_set_resumes_a_sequence(dtype):
    """A stream whose state is set to another's continues exactly as that one would (same
    engine, same order of work: bit-identical); the state is copied, converted to the
    layer's dtype, and checked by name."""
    T, B, I, H, L = 9, 3, 4, 7, 2
    layer = elman.RNN(I, H, L, dtype=dtype, seed=27)
    x = uniform(rng_for("stream-set", dtype), (T, B, I), 1.0, dtype)
    first = layer.stream(batch_size=B)
    first(x[:4])
    saved = first.state
    second = layer.stream(batch_size=B)
    other = saved.astype(np.float32 if dtype == np.float64 else np.float64)
    second.state = other                          # converted to the layer's dtype
    assert second.state.dtype == dtype and np.array_equal(second.state, other.astype(dtype))
    third = layer.stream(batch_size=B)
    third.state = other.astype(dtype)
    assert np.array_equal(second(x[4:]), third(x[4:]))
    second.state = source = saved.copy()
    source[...] = 0                               # copied: the stream keeps its own
    y_second = second(x[4:])
    assert y_second.dtype == dtype
    assert np.array_equal(y_second, first(x[4:]))
    assert np.array_equal(second.state, first.state)
    with pytest.raises(ValueError, match=r"state: expected shape \(2, 3, 7\)"):
        second.state = np.zeros((L, B + 1, H))
    with pytest.raises(TypeError, match="state"):
        second.state = np.zeros((L, B, H), complex)
    assert np.array_equal(second.state, first.state)  # refused: unchanged
    second.state = None                               # zeros, as after reset()
    assert np.array_equal(second(x[:2]), layer(x[:2])[0])


def test_stream_state_set_is_refused_while_a_chunk_runs():
    layer = elman.RNN(3, 4, seed=28)
    s = layer.stream(batch_size=2)
    chunk = np.ones((3, 2, 3), np.float32)
    with chunk_running(s, chunk):
        with pytest.raises(RuntimeError, match=r"cannot set the state while a chunk runs \(in another thread"):
            s.state = np.ones((1, 2, 4))
    assert np.array_equal(s.state, layer(chunk)[1])  # the chunk's state, not the one refused


def test_stream_used_from_inside_its_own_chunk_is_refused_saying_so():
    """A chunk whose conversion (x_chunk's __array__) calls the same stream again is
    refused, with a message that names both ways to get there, and the stream goes on."""
    layer = elman.RNN(3, 4, seed=29)
    s = layer.stream(batch_size=2)
    chunk = np.ones((3, 2, 3), np.float32)
    refusals = []

    class ReEntering:
        def __init__(self, again):
            self.again = again

        def __array__(self, dtype=None, copy=None):
            with pytest.raises(RuntimeError) as refused:
                self.again()
            refusals.append(str(refused.value))
            return chunk

    def set_state():
        s.state = None

    for again in (lambda: s(chunk), s.reset, set_state):
        s.reset()
        assert np.array_equal(s(ReEntering(again)), layer(chunk)[0])
    assert [r.split(" (")[0] for r in refusals] == [
        "stream: already running a chunk", "stream: cannot reset while a chunk runs",
        "stream: cannot set the state while a chunk runs"]
    assert all("(in another thread, or one this call is inside)" in r for r in refusals)
    assert np.array_equal(s(chunk), layer(chunk, layer(chunk)[1])[0])  # went on from the chunk


def test_stream_batch_size_and_layer_read_only():
    layer = elman.RNN(3, 5, seed=2)
    s = layer.stream(batch_size=4)
    assert s.batch_size == 4 and s.layer is layer
    for name, value in (("batch_size", 2), ("layer", elman.RNN(3, 5))):
        with pytest.raises(AttributeError):
            setattr(s, name, value)
    assert s.batch_size == 4 and s.layer is layer


def test_stream_pickles_and_copies():
    """pickle and copy.copy keep the layer, the batch size and the state: the copy goes on
    exactly as the original, and the two are independent afterwards (a branch)."""
    import copy
    import pickle

    T, B, I, H = 8, 2, 3, 5
    layer = elman.RNN(I, H, 2, dtype=np.float64, seed=29)
    x = uniform(rng_for("stream-pickle"), (T, B, I), 1.0, np.float64)
    for make in (lambda s: pickle.loads(pickle.dumps(s)), copy.copy, copy.deepcopy):
        s = layer.stream(batch_size=B)
        fresh = make(s)                               # no state yet: zeros
        assert np.array_equal(fresh(x[:3]), s(x[:3]))
        branch = make(s)
        assert np.array_equal(branch.state, s.state) and repr(branch) == repr(s)
        assert np.array_equal(branch(x[3:5]), s(x[3:5]))  # same chunks, same work: bit-identical
        after = branch.state
        s(x[5:])                                      # the original goes on ...
        assert np.array_equal(branch.state, after)    # ... the branch does not move
        assert not np.array_equal(s.state, after)
    # pickle protocol 5 may hand the state's buffer over shared: the stream copies it
    buffers = []
    data = pickle.dumps(s, protocol=5, buffer_callback=buffers.append)
    restored = pickle.loads(data, buffers=buffers)
    before = restored.state
    writable = [b.raw() for b in buffers if not b.raw().readonly]  # the state's (weights are read-only)
    assert writable
    for raw in writable:
        np.frombuffer(raw, np.uint8)[...] = 0
    assert np.array_equal(restored.state, before) and np.any(before != 0)
