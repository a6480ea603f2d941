"""set_num_threads / get_num_threads, results under 1 and 2 threads, and Python threads
calling in parallel (the GIL is released while kernels run)."""

import threading

import numpy as np
import pytest

import elman
from helpers import MOST_THREADS, check_layer, check_rnn, rng_for, uniform


def test_get_set(restore_threads):
    n = elman.get_num_threads()
    assert isinstance(n, int) and n >= 1
    for k in (1, 2, 3, 1):
        elman.set_num_threads(k)
        assert elman.get_num_threads() == k


def test_set_num_threads_at_the_limit(restore_threads):
    elman.set_num_threads(MOST_THREADS)
    assert elman.get_num_threads() == MOST_THREADS


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,I,H", [(50, 1, 64, 256), (120, 1, 32, 1024), (20, 64, 100, 257), (10, 17, 1024, 31), (3, 8, 16, 1024)])
def test_results_with_threads(threads, dtype, T, B, I, H, restore_threads):
    elman.set_num_threads(threads)
    layer = elman.RNN(I, H, 2, bidirectional=True, dtype=dtype, seed=31)
    rng = rng_for("threads", threads, dtype, T, B, I, H)
    x = uniform(rng, (T, B, I), min(1.0, np.sqrt(H / I)), dtype)
    check_layer(layer, x, lengths=np.maximum(1, T - np.arange(B) % T))
    W_x, W_y = uniform(rng, (I, H), 1 / np.sqrt(I), dtype), uniform(rng, (H, H), 1 / np.sqrt(H), dtype)
    check_rnn(elman.rnn, x, W_x, W_y, reverse=True)


def test_python_threads_in_parallel():
    """Several Python threads use one layer (and elman.rnn) at once; each gets its own answer."""
    T, B, I, H = 40, 4, 32, 64
    layer = elman.RNN(I, H, 2, dtype=np.float64, seed=32)
    rng = rng_for("pythreads")
    xs = [uniform(rng, (T, B, I), 1.0, np.float64) for _ in range(6)]
    W_x, W_y = uniform(rng, (I, H), 0.2, np.float64), uniform(rng, (H, H), 0.15, np.float64)
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = (layer(xs[i]), elman.rnn(xs[i], W_x, W_y))
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, x in enumerate(xs):
        (y, h_n), (yf, hf) = results[i]
        check_layer(layer, x, result=(y, h_n))
        check_rnn(lambda *a, **k: (yf, hf), x, W_x, W_y)
