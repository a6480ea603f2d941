"""Long forward passes: run in slices, and stopped between them by Ctrl-C.

The engine runs each layer's input projection (by rows) and recurrence (by steps) in
slices of about `_core.slice_work()` multiply-adds (csrc/interruption.h), and between
slices, on the main thread, runs Python's pending signal handlers.

* Slicing must not change a result: each path of the recurrence (one row in one call,
  rows split over threads, columns split with a barrier per step, rows with their own
  lengths), in both directions, over several layers, with and without h0, and the
  projection, against the oracle with the suite's tolerance. The tests shrink the slices
  (`_core._set_slice_work`) so that short sequences cross many slice boundaries, down to a
  slice per step and per projection row; one case crosses the real size's boundaries.
* Ctrl-C: a real SIGINT sent to a child process while a call runs there, about 1.6 s of
  work on one thread, the signal after 0.1 s. Where the exception surfaces cannot tell
  whether the call was stopped (Python also checks for signals just after a call
  returns), so the time it surfaces does: before half of the same call's time, measured
  just before in the same process (stopped: ~0.1 s, plus up to the 0.1 s between asks
  and a slice, ~50 ms here).
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import elman
from elman import _core
from helpers import ROOT, check_layer, random_lengths, rng_for, uniform

# (name, T, B, I, H, num_layers, bidirectional, lengths, h0, threads, dtype); each path of
# run_recurrence (csrc/cpu/recurrence.cpp) and of the projection.
PATHS = [
    # one row, H <= 64: a slice's steps in one kernel call, forwards and backwards
    ("one row in one call", 9, 1, 5, 64, 2, True, False, True, 1, np.float32),
    # rows split between two threads (B * H * H past one thread's share), no synchronisation
    ("rows on two threads", 7, 4, 3, 128, 2, True, False, False, 2, np.float32),
    # W_y past 1 MiB at one row: columns split between two threads, a barrier per step
    ("columns on two threads", 5, 1, 3, 640, 1, True, False, True, 2, np.float32),
    # rows with their own lengths, backwards within them too
    ("lengths", 8, 5, 4, 33, 2, True, True, True, 2, np.float32),
    ("lengths, float64", 8, 5, 4, 33, 2, True, True, False, 1, np.float64),
    # odd sizes everywhere, one direction
    ("odd sizes", 6, 3, 7, 31, 3, False, False, True, 2, np.float32),
]


@pytest.fixture
def slices_of(request):
    """Runs the test with slices of `work` multiply-adds, then restores the real size."""
    real = _core.slice_work()

    def set_work(work):
        _core._set_slice_work(work)
    yield set_work
    _core._set_slice_work(real)


@pytest.mark.parametrize("work", [1, 5000], ids=["a slice per step or row", "a few steps a slice"])
@pytest.mark.parametrize("case", PATHS, ids=[c[0] for c in PATHS])
def test_sliced_pass_matches_oracle(case, work, slices_of):
    name, T, B, I, H, L, bidirectional, lengths, h0, threads, dtype = case
    rng = rng_for("sliced", name, work)
    layer = elman.RNN(I, H, num_layers=L, bidirectional=bidirectional, dtype=dtype, seed=1)
    x = uniform(rng, (T, B, I), 1.0, dtype)
    state = uniform(rng, ((1 + bidirectional) * L, B, H), 0.5, dtype) if h0 else None
    lengths = random_lengths(rng, T, B) if lengths else None
    before = elman.get_num_threads()
    elman.set_num_threads(threads)
    slices_of(work)
    try:
        check_layer(layer, x, h0=state, lengths=lengths)
    finally:
        elman.set_num_threads(before)


def test_real_slice_boundaries():
    """Slices of the real size, in a sequence that crosses two of them (columns split on
    two threads, both directions)."""
    T = 2 * (_core.slice_work() // 640**2) + 1
    layer = elman.RNN(3, 640, bidirectional=True, seed=1)
    before = elman.get_num_threads()
    elman.set_num_threads(2)
    try:
        check_layer(layer, uniform(rng_for("real slices"), (T, 1, 3)))
    finally:
        elman.set_num_threads(before)


def test_slice_size_is_checked():
    with pytest.raises(ValueError, match="work"):
        _core._set_slice_work(0)


PRELUDE = """
    import os, signal, threading, time
    import numpy as np, elman
    elman.set_num_threads(1)
    layer = elman.RNN(1, 2048, seed=0)      # ~200 us a step on one core: a 1.6 s call
    x = np.random.default_rng(0).standard_normal((8000, 1, 1)).astype(np.float32)
    start = time.perf_counter()
    expected = layer(x)
    full = time.perf_counter() - start      # the whole call, uninterrupted

    def sigint_soon():
        \"\"\"SIGINT 0.1 s from now; returns the time now.\"\"\"
        def send():
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=send, daemon=True).start()
        return time.perf_counter()

    def stopped_early(since):
        \"\"\"Whether it is well before the whole call would have ended: a call that ran to
        its end and only then saw the signal fails this.\"\"\"
        took = time.perf_counter() - since
        assert took < full / 2, f"{took:.2f} s of a {full:.2f} s call: not stopped early"

    def stopped_by_sigint(call, exception=KeyboardInterrupt):
        \"\"\"call() with SIGINT 0.1 s in: `exception` must come out of it, early (a call
        that ran to its end would meet it in the sleep after).\"\"\"
        since = sigint_soon()
        try:
            call()
            time.sleep(60)
        except exception:
            stopped_early(since)
            return
        raise AssertionError(f"no {exception.__name__}")
"""

SCENARIOS = {
    # Python's own handler: KeyboardInterrupt out of the call
    "default handler": ("""
        stopped_by_sigint(lambda: layer(x))
        print("ok")
    """),
    # a stream's state is left as it was, and the stream goes on
    "stream": ("""
        stream = layer.stream(batch_size=1)
        stream(x[:10])
        before = stream.state
        stopped_by_sigint(lambda: stream(x))
        assert np.array_equal(stream.state, before)
        y = stream(x[10:20])
        assert np.array_equal(y, expected[0][10:20]), "the stream did not go on"
        print("ok")
    """),
    # a handler's own exception comes out of the call
    "raising handler": ("""
        class Stop(Exception):
            pass
        def handler(signum, frame):
            raise Stop
        signal.signal(signal.SIGINT, handler)
        stopped_by_sigint(lambda: layer(x), Stop)
        print("ok")
    """),
    # a handler that returns: it runs during the call, which goes on to the whole result
    "returning handler": ("""
        calls = []
        def handler(signum, frame):
            stopped_early(since)
            calls.append(signum)
        signal.signal(signal.SIGINT, handler)
        since = sigint_soon()
        y, h_n = layer(x)
        assert calls == [signal.SIGINT], calls
        assert np.array_equal(y, expected[0]) and np.array_equal(h_n, expected[1])
        print("ok")
    """),
    # SIGINT again and again, each to a handler that returns: the call still ends, in
    # about its own time (a call restarted at each signal would never end)
    "repeated signals": ("""
        calls = []
        signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
        def send():
            for _ in range(8):
                time.sleep(full / 5)
                os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=send, daemon=True).start()
        since = time.perf_counter()
        y, h_n = layer(x)
        took = time.perf_counter() - since
        during = len(calls)
        assert during >= 2 and took < 2 * full, (during, took, full)
        assert np.array_equal(y, expected[0])
        print("ok")
    """),
    # a child forked from another thread: that thread is the child's main one
    "fork from a thread": ("""
        status = []
        def fork_and_wait():
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    stopped_by_sigint(lambda: layer(x))
                    code = 0
                finally:
                    os._exit(code)
            status.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        forker = threading.Thread(target=fork_and_wait)
        forker.start()
        forker.join()
        assert status == [0], status
        print("ok")
    """),
    # Python runs handlers on the main thread only: another thread's call is not stopped
    "other thread": ("""
        result = []
        worker = threading.Thread(target=lambda: result.append(layer(x)))
        worker.start()
        sigint_soon()
        interrupted = False
        while worker.is_alive():
            try:
                time.sleep(0.01)
            except KeyboardInterrupt:
                interrupted = True
        assert interrupted and len(result) == 1
        assert np.array_equal(result[0][0], expected[0])
        print("ok")
    """),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ctrl_c(scenario):
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(SCENARIOS[scenario])
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 raises a pending KeyboardInterrupt "
                    "at any instruction, so one can still come between a finally's start and the mark's clearing")
def test_ctrl_c_at_any_moment_leaves_a_stream_usable():
    """A KeyboardInterrupt (a timer signal with Python's SIGINT handler) at a varying moment
    of a loop of chunks, 100 times: afterwards the stream takes chunks, from a state that is
    one of its chunks' (not part of one), and a new stream is never refused. The busy mark
    had been cleared by a Python function, which an interrupt could stop before it ran:
    the stream then refused every chunk, and so did a later stream at the same id."""
    import signal
    layer = elman.RNN(16, 16, seed=0)
    x = uniform(rng_for("ctrl-c stream"), (4, 8, 16))
    states = [np.zeros((1, 8, 16), np.float32)]  # the states after 0, 1, 2... chunks
    reference = layer.stream(batch_size=8)
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    try:
        for trial in range(100):
            stream = layer.stream(batch_size=8)
            chunks = 0
            signal.setitimer(signal.ITIMER_REAL, 0.002 + 0.0001 * trial)
            try:
                while True:
                    stream(x)
                    chunks += 1
            except KeyboardInterrupt:
                pass
            signal.setitimer(signal.ITIMER_REAL, 0)
            while len(states) <= chunks + 1:
                reference(x)
                states.append(reference.state)
            assert any(np.array_equal(stream.state, states[n]) for n in (chunks, chunks + 1)), trial
            stream(x)  # not refused
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
