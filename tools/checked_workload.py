"""A small workload for tools/valgrind and tools/qemu-older-cpus: every public entry point
once or twice, on small shapes (memcheck runs them ~50x slower), including refused calls
and two elman threads, with the layers' outputs checked against the float64 oracle.

Both tools run it on CPUs without AVX-512, so it checks the kernels that such CPUs take on
a machine that has it: the packed products' AVX2 kernels and the AVX2 epilogue (valgrind
reports x86-64-v3; qemu emulates a Haswell), OpenBLAS's products and the baseline epilogue
(qemu emulates a Sandy Bridge). The tests also check both products
natively (ELMAN_CPU_PACKED=avx2 and =0)."""

import sys

import numpy as np

import elman
from elman import reference


def check(layer, x, **kwargs):
    """layer(x, **kwargs) against the oracle; float32 within 1e-5 + 1e-4 relative (the
    suite's rule gives ~1e-6 on these shapes), float64 within 1e-12 + 1e-10."""
    got = layer(x, **kwargs)
    want = reference.forward(layer, x, **kwargs)
    tol = dict(rtol=1e-4, atol=1e-5) if layer.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for g, w, name in zip(got, want, ("y", "h_n")):
        if not np.allclose(g, w, **tol):
            raise AssertionError(f"{layer!r} {kwargs}: {name} off the oracle by "
                                 f"{np.max(np.abs(g - w)):.3g}")


def workload():
    rng = np.random.default_rng(0)
    data = lambda *shape, dtype=np.float32: rng.uniform(-1, 1, shape).astype(dtype)
    elman.set_num_threads(2)
    for dtype in (np.float32, np.float64):
        options = (dict(), dict(num_layers=3, bidirectional=True),
                   dict(nonlinearity="relu", batch_first=True))
        for kw in options:
            layer = elman.RNN(7, 40, dtype=dtype, seed=1, **kw)
            x = data(9, 5, 7, dtype=dtype)
            check(layer, x)
            lengths = [5, 1, 4, 5, 2, 3, 5, 1, 1] if layer.batch_first else [9, 1, 4, 9, 2]
            check(layer, x, lengths=np.array(lengths))
            check(layer, x[:, 0])                                # unbatched
            layer(np.asfortranarray(x))                          # copied input
        layer = elman.RNN(7, 40, 2, dtype=dtype, seed=2)
        layer.w_y_l1 = data(40, 40, dtype=dtype)                 # repacked
        h = layer.step(data(5, 7, dtype=dtype))
        layer.step(data(5, 7, dtype=dtype), h)
        stream = layer.stream(batch_size=5)
        stream(data(3, 5, 7, dtype=dtype))
        stream(data(4, 5, 7, dtype=dtype))
        elman.rnn(data(6, 3, 7), data(7, 33, dtype=dtype), data(33, 33), reverse=True, lengths=[6, 2, 5])
    big = elman.RNN(8, 640, seed=3)                              # columns split between threads
    check(big, data(3, 2, 8))
    for bad in (lambda: big(data(3, 2, 9)), lambda: big(data(3, 2, 8), lengths=[0, 3]),
                lambda: big(data(3, 2, 8).astype(object))):
        try:
            bad()
        except (ValueError, TypeError):
            pass
    elman.set_num_threads(1)
    check(big, data(3, 2, 8))


def invalid_read():
    """A deliberate read of freed memory, to show that the check fails on one."""
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    p = libc.malloc(64)
    libc.free(ctypes.c_void_p(p))
    return ctypes.string_at(p, 64)


if __name__ == "__main__":
    invalid_read() if sys.argv[1:] == ["--self-test"] else workload()
    print("workload done")
