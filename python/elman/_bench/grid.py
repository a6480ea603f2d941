"""Configurations (DESIGN.md section 5), their inputs, and what a shape implies."""

from dataclasses import dataclass

import numpy as np

# (T, B, I, H).
FULL_GRID = [
    # latency, batch 1
    (672, 1, 32, 32), (96, 1, 64, 64), (1000, 1, 128, 128), (1000, 1, 256, 256),
    (500, 1, 512, 512), (250, 1, 1024, 1024), (100, 1, 2048, 2048),
    # small batch
    (150, 4, 256, 256), (100, 8, 256, 256), (50, 16, 1024, 1024), (50, 4, 1536, 1536),
    # throughput
    (100, 64, 256, 256), (25, 256, 512, 512), (50, 64, 1760, 1760),
    # odd shapes
    (200, 32, 80, 512), (100, 8, 1024, 256), (64, 7, 37, 129),
]
# One configuration of each regime: latency, small batch, throughput.
QUICK_GRID = [(1000, 1, 256, 256), (100, 8, 256, 256), (100, 64, 256, 256)]

SEED = 0
# Streaming weights from L2, per core (DESIGN.md section 6): at B=1 every step must
# read all of W_y, so 4*H*H bytes at this rate bounds the step time from below.
L2_BYTES_PER_S_PER_CORE = 100e9


@dataclass(frozen=True)
class Config:
    T: int
    B: int
    I: int
    H: int
    threads: int

    @property
    def flops(self):
        """One input and one recurrent product per step: 2*T*B*H*(I+H)."""
        return 2 * self.T * self.B * self.H * (self.I + self.H)

    @property
    def wy_read_us(self):
        """Microseconds to read W_y once from L2, shared among the threads."""
        return 4 * self.H * self.H / (L2_BYTES_PER_S_PER_CORE * self.threads) * 1e6

    def label(self):
        return f"T={self.T} B={self.B} I={self.I} H={self.H} threads={self.threads}"


@dataclass(frozen=True)
class Weights:
    """One layer in the seed's orientation: y_t = tanh(x_t @ w_x + y_{t-1} @ w_y + b)."""
    w_x: np.ndarray  # (I, H) float32
    w_y: np.ndarray  # (H, H) float32
    b: np.ndarray    # (H,)  float32


def make_inputs(shape):
    """Weights ~ U(-1/sqrt(H), 1/sqrt(H)) as elman.RNN draws them, and x ~ U(-1, 1)."""
    T, B, I, H = shape
    rng = np.random.default_rng(SEED)
    bound = 1 / np.sqrt(H)
    weights = Weights(*(rng.uniform(-bound, bound, size).astype(np.float32)
                        for size in ((I, H), (H, H), (H,))))
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    return weights, x
