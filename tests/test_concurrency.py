"""Concurrency: many Python threads calling layers at once (the GIL is released while the
kernels run) get exactly the results of serial calls; a stream shared by two threads
works or raises a clear error; set_num_threads and weight assignment during calls are
safe. Every thread is joined with a timeout, so a deadlock fails the test instead of
hanging the suite.

Exactness holds for a fixed thread count: with another count a row may be computed by
another kernel, in another summation order (see csrc/cpu/packed_gemm.h). Where the count
changes during the calls, results are compared with the oracle's tolerance instead.
"""

import importlib.util
import itertools
import threading
import time

import numpy as np
import pytest

import elman
from helpers import ROOT, check_layer

# bench/stress.py is a script, not a package: loaded by path for its list of calls.
_spec = importlib.util.spec_from_file_location("elman_stress", ROOT / "bench" / "stress.py")
stress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stress)

JOIN_TIMEOUT = 120  # seconds; far above the few seconds these tests take


def run_in_threads(work, count):
    """Run work(i) in `count` threads at once; returns the exceptions they raised.
    Fails if any thread is still running after JOIN_TIMEOUT (a deadlock)."""
    errors, start = [], threading.Barrier(count)

    def body(i):
        try:
            start.wait()
            work(i)
        except BaseException as e:  # reported to the test below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {JOIN_TIMEOUT} s"
    return errors


def run_in_threads_beside(repeat, work, count):
    """run_in_threads(work, count) while another thread calls repeat() over and over until
    the workers are done; returns their exceptions. Fails if that thread does not stop."""
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            repeat()

    other = threading.Thread(target=loop, daemon=True)
    other.start()
    try:
        errors = run_in_threads(work, count)
    finally:
        stop.set()
        other.join(JOIN_TIMEOUT)
    assert not other.is_alive(), f"the background thread still runs after {JOIN_TIMEOUT} s"
    return errors


def make_tasks():
    """The calls of bench/stress.py (one per path of the engine), as a list."""
    return list(stress.make_tasks().values())


def same(result, expected):
    return all(np.array_equal(a, b) for a, b in zip(result, expected))


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_calls_equal_serial_calls(threads, restore_threads):
    elman.set_num_threads(threads)
    tasks = make_tasks()
    serial = [task() for task in tasks]
    mismatches = []

    def work(i):
        order = np.random.default_rng(i).permutation(len(tasks) * 20) % len(tasks)
        for k in order:
            if not same(tasks[k](), serial[k]):
                mismatches.append(k)

    errors = run_in_threads(work, 8)
    assert not errors, errors
    assert not mismatches, f"results differing from serial calls, tasks {sorted(set(mismatches))}"


def test_gil_released_while_kernels_run():
    """While one thread runs a long call, another thread keeps running Python code."""
    layer = elman.RNN(64, 512, seed=7)
    x = np.random.default_rng(0).uniform(-1, 1, (2000, 1, 64)).astype(np.float32)
    layer(x[:2])
    started, finished = time.perf_counter(), [None]
    ticks = 0

    def call():
        layer(x)
        finished[0] = time.perf_counter()

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    while worker.is_alive():
        ticks += 1
    worker.join(JOIN_TIMEOUT)
    assert not worker.is_alive()
    # With the GIL held for the whole call the loop above would run about once.
    assert ticks > 1000, f"the main thread ran {ticks} times during a {finished[0] - started:.3f} s call"


def test_stream_shared_by_two_threads():
    """Each chunk either runs or is refused with a clear RuntimeError, and the state
    stays that of the chunks that ran, one after another."""
    layer = elman.RNN(6, 20, 2, seed=8, dtype=np.float64)
    stream = layer.stream(batch_size=3)
    chunk = np.random.default_rng(1).uniform(-1, 1, (4, 3, 6))
    ran, refused = [], []

    def work(_):
        for _ in range(200):
            try:
                ran.append(stream(chunk))
            except RuntimeError as e:
                assert "already running" in str(e), e
                refused.append(e)

    errors = run_in_threads(work, 2)
    assert not errors, errors
    assert len(ran) + len(refused) == 400 and ran
    whole = np.concatenate([chunk] * len(ran))
    check_layer(layer, whole, result=(np.concatenate(ran), stream.state))


def test_weight_assigned_while_a_call_builds_the_network(monkeypatch):
    """A call after an assignment has returned sees the new weights, also when another
    thread's call was building the engine's network from the old ones meanwhile (that
    call's network was kept, and every later call ran on the old weights)."""
    layer = elman.RNN(8, 16, seed=11)
    x = np.random.default_rng(4).uniform(-1, 1, (5, 2, 8)).astype(np.float32)
    w_new = layer.w_y_l0 * -0.5
    build = elman._run.network

    def build_while_assigned(*args):  # the other thread's assignment lands during the build
        net = build(*args)
        monkeypatch.setattr(elman._run, "network", build)
        layer.w_y_l0 = w_new
        return net

    monkeypatch.setattr(elman._run, "network", build_while_assigned)
    layer(x)
    check_layer(layer, x, result=layer(x))  # the oracle reads the layer's (new) weights
    assert np.array_equal(layer.w_y_l0, w_new)


def test_set_num_threads_during_calls(restore_threads):
    tasks = make_tasks()
    layers = [(elman.RNN(16, 256, 2, seed=9), np.random.default_rng(2).uniform(-1, 1, (30, 4, 16)))]
    counts = itertools.cycle((1, 2, 3))

    def flip():
        elman.set_num_threads(next(counts))
        time.sleep(0.0005)

    results = []

    def work(i):
        for k in range(20):
            layer, x = layers[0]
            results.append((layer, x, layer(x)))
            tasks[(i + k) % len(tasks)]()

    errors = run_in_threads_beside(flip, work, 4)
    assert not errors, errors
    for layer, x, result in results:
        check_layer(layer, x, result=result)


def test_weight_assignment_during_calls(restore_threads):
    """A call sees the weights before or after an assignment, never a mixture."""
    elman.set_num_threads(2)
    layer = elman.RNN(8, 64, seed=10)
    x = np.random.default_rng(3).uniform(-1, 1, (10, 4, 8)).astype(np.float32)
    w_old, w_new = layer.w_y_l0, layer.w_y_l0 * -0.5
    before = layer(x)
    layer.w_y_l0 = w_new
    after = layer(x)
    layer.w_y_l0 = w_old
    mixed = []

    def assign():
        layer.w_y_l0 = w_new
        layer.w_y_l0 = w_old

    def work(_):
        for _ in range(100):
            result = layer(x)
            if not (same(result, before) or same(result, after)):
                mixed.append(result)

    errors = run_in_threads_beside(assign, work, 4)
    assert not errors, errors
    assert not mixed, f"{len(mixed)} results match neither the old nor the new weights"
