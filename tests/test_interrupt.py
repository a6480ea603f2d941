"""Long forward passes: run in slices, and stopped between them by Ctrl-C.

The engine runs each layer's input projection (by rows) and recurrence (by steps) in
slices of about `_core.SLICE_WORK` multiply-adds (csrc/interruption.h), and between
slices, on the main thread, asks whether SIGINT has come.

* Slicing must not change a result: each path of the recurrence (one row in one call,
  rows split over threads, columns split with a barrier per step, rows with their own
  lengths, both directions) and the projection, over several slices whose boundaries
  fall mid-sequence (and mid-step for the projection's rows), against the oracle with the
  suite's tolerance.
* Ctrl-C: a real SIGINT sent to a child process while a call runs there, about 1 s of
  work on one thread, the signal after 0.1 s. Where the exception surfaces cannot tell
  whether the call was stopped (Python also checks for signals just after a call
  returns), so the time it surfaces does: before half of the same call's time,
  measured just before in the same process (stopped: ~0.1 s plus a slice, ~50 ms here).
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import elman
from elman import _core
from helpers import ROOT, check_layer, rng_for, uniform


def steps_per_slice(B, H):
    return _core.SLICE_WORK // (B * H * H)


# (name, T, B, I, H, bidirectional, lengths, threads, dtype): T or T * B past one slice.
SLICED = [
    # one row, H <= 64: all steps of a slice in one kernel call
    ("one row in one call", steps_per_slice(1, 64) + 3, 1, 5, 64, False, None, 1, np.float32),
    # rows split between two threads, no synchronisation
    ("rows on two threads", steps_per_slice(4, 64) + 7, 4, 3, 64, False, None, 2, np.float32),
    # W_y past 1 MiB at one row: columns split between two threads, a barrier per step
    ("columns on two threads", 2 * steps_per_slice(1, 640) + 1, 1, 3, 640, False, None, 2, np.float32),
    # rows with their own lengths, backwards within them too
    ("lengths, both directions", steps_per_slice(3, 256) + 100, 3, 4, 256, True, "ragged", 2, np.float32),
    ("the same in float64", steps_per_slice(3, 256) + 100, 3, 4, 256, True, "ragged", 2, np.float64),
    # the projection's slices: I * H = 2^20, so SLICE_WORK / 2^20 rows each, cutting steps
    ("projection", 1000, 3, 2048, 512, True, None, 2, np.float32),
]


@pytest.mark.parametrize("case", SLICED, ids=[c[0] for c in SLICED])
def test_sliced_pass_matches_oracle(case):
    name, T, B, I, H, bidirectional, lengths, threads, dtype = case
    rng = rng_for("sliced", name)
    layer = elman.RNN(I, H, bidirectional=bidirectional, dtype=dtype, seed=1)
    x = uniform(rng, (T, B, I), min(1.0, np.sqrt(H / I)), dtype)
    if lengths == "ragged":  # a full row, one ending in the second slice, one in the first
        lengths = np.array([T, T - 50, 10])
        assert T - 50 > steps_per_slice(B, H) > 10
    before = elman.get_num_threads()
    elman.set_num_threads(threads)
    try:
        check_layer(layer, x, lengths=lengths)
    finally:
        elman.set_num_threads(before)


PRELUDE = """
    import os, signal, threading, time
    import numpy as np, elman
    elman.set_num_threads(1)
    layer = elman.RNN(1, 2048, seed=0)      # ~200 us a step on one core
    x = np.random.default_rng(0).standard_normal((5000, 1, 1)).astype(np.float32)
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
"""

SCENARIOS = {
    # Python's own handler: KeyboardInterrupt out of the call
    "default handler": ("""
        since = sigint_soon()
        try:
            layer(x)
            time.sleep(60)
        except KeyboardInterrupt:
            stopped_early(since)
            print("ok")
    """),
    # a stream's state is left as it was, and the stream goes on
    "stream": ("""
        stream = layer.stream(batch_size=1)
        stream(x[:10])
        before = stream.state
        since = sigint_soon()
        try:
            stream(x)
            time.sleep(60)
        except KeyboardInterrupt:
            stopped_early(since)
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
        since = sigint_soon()
        try:
            layer(x)
            time.sleep(60)
        except Stop:
            stopped_early(since)
            print("ok")
    """),
    # a handler that returns: it runs during the call, which then starts again and
    # returns the whole result
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
