"""Forked processes and process exit.

Fork (multiprocessing's "fork" start method, os.fork): a child of a process whose thread
pool has run jobs computes with new threads of its own, also when another thread was
running jobs as the process forked, and exits normally. fork copies only the calling
thread: without elman's fork handlers the child waited forever for the parent's workers
(and, on a normal exit, joined them forever).

Exit: a process whose daemon threads are in elman's calls exits cleanly. It aborted
("terminate called without an active exception") when such a thread took the GIL back
in a destructor as the interpreter finalized (csrc/gil.h). A call from a __del__ that
runs during finalization, in the finalizing thread, still works.

Every child process is waited for with a timeout, so a hang fails the test.
"""

import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import elman
from helpers import ROOT, chunk_running

_spec = importlib.util.spec_from_file_location("elman_stress", ROOT / "bench" / "stress.py")
stress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stress)

TIMEOUT = 60  # seconds; a child takes well under one
# Python 3.12+ warns that forking a process with threads may deadlock the child: the case
# these tests check elman handles.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


@pytest.fixture
def two_threads():
    before = elman.get_num_threads()
    elman.set_num_threads(2)  # the calls' paths split over two threads (bench/stress.py)
    yield
    elman.set_num_threads(before)


def results_of(tasks):
    return {name: [np.asarray(a) for a in task()] for name, task in tasks.items()}


def child(tasks, expected, queue):
    got = results_of(tasks)
    queue.put(all(np.array_equal(a, b) for name in tasks for a, b in zip(got[name], expected[name])))


def run_child(tasks, expected):
    """Fork a child that repeats the calls; whether it matched, and its exit code."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(tasks, expected, queue))
    process.start()
    process.join(TIMEOUT)
    if process.is_alive():
        process.kill()
        pytest.fail(f"the forked child hung for {TIMEOUT} s")
    return queue.get(timeout=TIMEOUT), process.exitcode


def run_script(script, *python_options):
    """Runs a Python script in a new session; a hang kills its whole process group (a
    forked grandchild too) and fails the test. Returns (exit code, stderr)."""
    process = subprocess.Popen([sys.executable, *python_options, "-c", script], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the script hung for {TIMEOUT} s")
    return process.returncode, stderr


def test_forked_child_runs_with_its_own_threads(two_threads):
    tasks = stress.make_tasks()
    expected = results_of(tasks)  # the parent's pool now has its worker
    assert run_child(tasks, expected) == (True, 0)


def test_fork_while_another_thread_runs_jobs(two_threads):
    tasks = stress.make_tasks()
    expected = results_of(tasks)
    stop = threading.Event()

    def keep_running():
        while not stop.is_set():
            results_of(tasks)

    runner = threading.Thread(target=keep_running)
    runner.start()
    try:
        for _ in range(3):
            assert run_child(tasks, expected) == (True, 0)
    finally:
        stop.set()
        runner.join(TIMEOUT)
    assert not runner.is_alive()
    assert all(np.array_equal(a, b) for name, r in results_of(tasks).items() for a, b in zip(r, expected[name]))


def test_forked_child_exits_normally():
    # The child leaves through the interpreter's normal exit, which destroys the pool.
    script = textwrap.dedent("""
        import os, sys, numpy as np, elman
        elman.set_num_threads(2)
        layer = elman.RNN(8, 640, seed=3)
        x = np.ones((6, 2, 8), np.float32)
        y = layer(x)[0]
        pid = os.fork()
        if pid == 0:
            sys.exit(0 if np.array_equal(layer(x)[0], y) else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    assert run_script(script, "-W", "ignore::DeprecationWarning") == (0, "")


def wait_for_child(pid):
    """The exit code of the forked child `pid`; a hang kills it and fails the test."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {TIMEOUT} s")


def test_forked_child_takes_chunks_of_a_stream_another_thread_was_running():
    # fork copies only the forking thread: the child's copy of a stream busy with another
    # thread's chunk refused every chunk there ("already running a chunk in another thread").
    layer = elman.RNN(3, 16, seed=0)
    stream = layer.stream(batch_size=2)
    chunk = np.linspace(-1, 1, 4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3)
    stream(chunk)
    before = stream.state
    after = layer(chunk, h0=before)
    with chunk_running(stream, chunk) as output:
        with pytest.raises(RuntimeError, match="already running"):
            stream(chunk)  # the parent's stream is busy
        pid = os.fork()
        if pid == 0:
            try:  # the chunk does not run on here: the child goes on from the state before it
                same = np.array_equal(stream(chunk), after[0]) and np.array_equal(stream.state, after[1])
                os._exit(0 if same else 3)
            except RuntimeError:
                os._exit(4)
            finally:
                os._exit(5)
        assert wait_for_child(pid) == 0
    assert np.array_equal(output[0], after[0]) and np.array_equal(stream.state, after[1])


@pytest.mark.parametrize("seconds", [0.2, 0.5, 0.9])
def test_exit_while_daemon_threads_run_calls(seconds):
    script = textwrap.dedent(f"""
        import threading, time, numpy as np, elman
        elman.set_num_threads(2)
        layer = elman.RNN(64, 640, num_layers=4, seed=0)  # a barrier per step, 4 jobs a call
        x = np.ones((200, 1, 64), np.float32)
        W = np.full((64, 64), 0.01, np.float32)
        calls = [lambda: layer(x), lambda: elman.rnn(x, W, W), lambda: layer.step(x[0])]
        def loop(call):
            while True:
                call()
        for call in calls:
            threading.Thread(target=loop, args=(call,), daemon=True).start()
        time.sleep({seconds})
    """)
    assert run_script(script) == (0, "")


def test_call_from_del_during_finalization():
    # The finalizing thread itself takes the GIL back as usual (a daemon thread would wait).
    script = textwrap.dedent("""
        import sys, numpy as np, elman
        class Flusher:
            def __init__(self):
                self.layer = elman.RNN(4, 8, seed=0)
                self.x = np.ones((3, 1, 4), np.float32)
                self.expected = self.layer(self.x)[0]
            def __del__(self):  # runs as the interpreter clears this module, finalizing
                same = self.layer(self.x)[0].tobytes() == self.expected.tobytes()  # no import: modules are going
                sys.stderr.write("same" if same else "different")
        keep = Flusher()
    """)
    assert run_script(script) == (0, "same")
