"""The vectorised float32 tanh against float64 np.tanh on every positive float32.

tanh is odd and the kernel symmetric (tests/test_activations.py checks that), so the
2^31 positive bit patterns cover every float. Prints the maximum error in ulp of the
correctly rounded result, where it occurs, and how many inputs are not correctly
rounded. About a minute on one core:  python bench/tanh_ulp.py
"""

import numpy as np

from elman import _core

CHUNK = 1 << 24


def main():
    worst, worst_x, inexact = 0.0, 0.0, 0
    for start in range(0, 0x7F800001, CHUNK):  # up to and including +inf
        bits = np.arange(start, min(start + CHUNK, 0x7F800001), dtype=np.uint32)
        x = bits.view(np.float32)
        y = _core.activation(x, _core.Activation.tanh).astype(np.float64)
        exact = np.tanh(x.astype(np.float64))
        spacing = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
        err = np.abs(y - exact) / spacing
        inexact += int(np.count_nonzero(y != exact.astype(np.float32)))
        i = int(np.argmax(err))
        if err[i] > worst:
            worst, worst_x = float(err[i]), float(x[i])
    total = 0x7F800001
    print(f"float32 tanh: max error {worst:.3f} ulp at x = {worst_x!r}; "
          f"{inexact} of {total} positive inputs ({100 * inexact / total:.2f}%) not correctly rounded")


if __name__ == "__main__":
    main()
