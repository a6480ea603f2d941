"""``python -m elman bench``: time elman against its peers (DESIGN.md section 5).

For every configuration (T, B, I, H) and thread count, each implementation gets the
same float32 weights and input, is checked against the float64 oracle
(``elman.reference.rnn``) and only then timed: one warm-up call, then repeated calls
until about a second has passed; the median is reported. Before anything else the
machine's own sgemm throughput is measured at each thread count, so that every
result can also be read as a fraction of what this machine's BLAS reaches.

Every implementation is an ``Impl``: a name, the modules it needs and a
``build(weights, config) -> run`` function, where ``run(x)`` maps x (T, B, I)
float32 to y (T, B, H). Peers that cannot be imported are listed as
"not installed"; a peer whose output disagrees with the oracle is listed as
"wrong" and not timed.
"""

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import elman
from elman import reference

# (T, B, I, H); DESIGN.md section 5.
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
SGEMM_N = 2048
SGEMM_REPEATS = 5
TARGET_S = 1.0       # time each implementation for about this long per configuration...
MAX_S = 3.0          # ...but never much longer, even to reach MIN_REPEATS
MIN_REPEATS = 3
# float32 against the float64 oracle: tanh keeps |y| <= 1, so this is relative-ish.
RTOL = ATOL = 1e-4


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

    def label(self):
        return f"T={self.T} B={self.B} I={self.I} H={self.H} threads={self.threads}"


@dataclass(frozen=True)
class Weights:
    """One layer in the seed's orientation: y_t = tanh(x_t @ w_x + y_{t-1} @ w_y + b)."""
    w_x: np.ndarray  # (I, H) float32
    w_y: np.ndarray  # (H, H) float32
    b: np.ndarray    # (H,)  float32


@dataclass(frozen=True)
class Impl:
    name: str
    modules: tuple        # what must import for it to run; their versions are reported
    build: Callable       # build(weights, config) -> run(x) -> y
    role: str = "peer"    # "elman", "peer" (counts for the speed-up) or "oracle"
    # Who sets its thread count: "own" (its build() or elman's setting), "threadpoolctl"
    # (NumPy's BLAS, only if threadpoolctl is installed) or "none".
    thread_control: str = "own"

    def threads_controlled(self):
        if self.thread_control == "threadpoolctl":
            return importlib.util.find_spec("threadpoolctl") is not None
        return self.thread_control == "own"


# ----------------------------------------------------------------------------------
# Implementations. Each build() does all one-time work (weight conversion, compiling
# a graph) so that run() costs only what a user pays per call.

def build_elman(weights, config):
    layer = elman.RNN(config.I, config.H)
    layer.w_x_l0, layer.w_y_l0, layer.b_l0 = weights.w_x, weights.w_y, weights.b
    layer(np.zeros((1, 1, config.I), np.float32))  # packs the weights, once
    return lambda x: layer(x)[0]


def build_oracle(weights, config):
    return lambda x: reference.rnn(x, weights.w_x, weights.w_y, weights.b)[0]


def build_numpy(weights, config):
    w_x, w_y, b = weights.w_x, weights.w_y, weights.b

    def run(x):
        # Same algorithm as elman: one GEMM for all input projections, then per step
        # one (B, H) x (H, H) product, written in place to avoid allocations.
        T, B, I = x.shape
        y = (x.reshape(T * B, I) @ w_x).reshape(T, B, -1)
        y += b
        acc = np.empty_like(y[0])
        np.tanh(y[0], out=y[0])
        for t in range(1, T):
            np.matmul(y[t - 1], w_y, out=acc)
            acc += y[t]
            np.tanh(acc, out=y[t])
        return y
    return run


def build_torch(weights, config):
    import torch
    torch.set_num_threads(config.threads)
    rnn = torch.nn.RNN(config.I, config.H, nonlinearity="tanh")
    with torch.no_grad():
        # torch keeps (out, in) matrices and two biases that it adds.
        rnn.weight_ih_l0.copy_(torch.from_numpy(weights.w_x.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(weights.w_y.T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(weights.b))
        rnn.bias_hh_l0.zero_()

    def run(x):
        with torch.inference_mode():
            return rnn(torch.from_numpy(x))[0].numpy()
    return run


def build_onnxruntime(weights, config):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    T, B, I, H = config.T, config.B, config.I, config.H
    # ONNX: W [D, H, I], R [D, H, H], B [D, 2H] = [input bias, recurrent bias].
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(weights.w_x.T[None]), "W"),
        numpy_helper.from_array(np.ascontiguousarray(weights.w_y.T[None]), "R"),
        numpy_helper.from_array(np.concatenate([weights.b, np.zeros_like(weights.b)])[None], "B"),
    ]
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    graph = helper.make_graph(
        [node], "elman_bench",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])],  # [T, D, B, H]
        initializer=initializers)
    # An old, fixed opset and IR version: any onnxruntime of the last years reads them.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"X": x})[0][:, 0]


def build_jax(weights, config):
    import jax
    import jax.numpy as jnp

    @jax.jit
    def forward(x, w_x, w_y, b):
        def step(h, xw_t):
            h = jnp.tanh(xw_t + h @ w_y)
            return h, h
        xw = x @ w_x + b                                   # one input GEMM for all steps
        h0 = jnp.zeros((x.shape[1], w_y.shape[0]), x.dtype)
        return jax.lax.scan(step, h0, xw)[1]

    params = [jax.device_put(w) for w in (weights.w_x, weights.w_y, weights.b)]
    return lambda x: np.asarray(forward(x, *params))      # np.asarray waits for the result


def build_keras(weights, config):
    import keras
    model = keras.Sequential([
        keras.Input((config.T, config.I), batch_size=config.B),
        keras.layers.SimpleRNN(config.H, activation="tanh", return_sequences=True),
    ])
    # Keras uses the seed's orientation: kernel (I, H), recurrent_kernel (H, H), bias (H,).
    model.layers[0].set_weights([weights.w_x, weights.w_y, weights.b])
    # Keras is batch-major; the two transposes are part of what a time-major caller pays.
    return lambda x: np.swapaxes(model.predict_on_batch(np.swapaxes(x, 0, 1)), 0, 1)


def choose_keras_backend():
    """Keras defaults to TensorFlow; fall back to another installed backend."""
    if "KERAS_BACKEND" in os.environ or importlib.util.find_spec("tensorflow"):
        return
    for backend in ("jax", "torch"):
        if importlib.util.find_spec(backend):
            os.environ["KERAS_BACKEND"] = backend
            return


IMPLS = [
    Impl("elman", ("elman",), build_elman, role="elman"),
    Impl("oracle (float64)", ("elman.reference",), build_oracle, role="oracle",
         thread_control="threadpoolctl"),
    Impl("numpy loop", ("numpy",), build_numpy, thread_control="threadpoolctl"),
    Impl("torch", ("torch",), build_torch),
    Impl("onnxruntime", ("onnxruntime", "onnx"), build_onnxruntime),
    # XLA sizes its thread pool once per process (XLA_FLAGS); it cannot follow --threads.
    Impl("jax", ("jax", "jaxlib"), build_jax, thread_control="none"),
    Impl("keras", ("keras",), build_keras, thread_control="none"),
]


def import_error(impl):
    """None if every module the implementation needs imports, else why not."""
    for module in impl.modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken install raises more than ImportError
            return f"{type(exc).__name__}: {exc}"
    return None


def package_version(module):
    name = module.split(".")[0]
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return getattr(sys.modules.get(name), "__version__", None)


# ----------------------------------------------------------------------------------
# Measurement

class ThreadLimit:
    """Sets every thread pool we can reach to n threads for the duration of a block.

    threadpoolctl (when installed) covers the BLAS and OpenMP libraries loaded in
    the process, NumPy's included; elman has its own setting. Peers with a
    per-session or global setting (torch, onnxruntime) set it in their build().
    """

    def __init__(self, n):
        self.n = n
        self.limits = None
        self.elman_threads = elman.get_num_threads()

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            self.limits = threadpool_limits(limits=self.n)
        elman.set_num_threads(self.n)
        if elman.get_num_threads() != self.n:
            progress(f"warning: elman.set_num_threads({self.n}) left "
                     f"get_num_threads() = {elman.get_num_threads()}")
        return self

    def __exit__(self, *exc):
        elman.set_num_threads(self.elman_threads)
        if self.limits is not None:
            self.limits.restore_original_limits()


def measure_sgemm(n=SGEMM_N, repeats=SGEMM_REPEATS):
    """GFLOP/s of NumPy's float32 matmul on an n x n x n product (median of repeats)."""
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b                                                  # warm-up: thread pool, pages
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def time_calls(run, x, repeats=None):
    """Seconds per call, one entry per timed call, after one untimed warm-up call.

    With repeats=None the count adapts: at least MIN_REPEATS calls and TARGET_S
    seconds in all, stopping early only once MAX_S is spent.
    """
    run(x)
    times = []
    total = 0.0
    while True:
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
        total += times[-1]
        if repeats is not None:
            if len(times) >= repeats:
                return times
        elif total >= MAX_S or (total >= TARGET_S and len(times) >= MIN_REPEATS):
            return times


def check(y, y_ref):
    """(ok, max abs error) of a float32 output against the float64 oracle."""
    if y.shape != y_ref.shape:
        raise ValueError(f"output shape {y.shape}, expected {y_ref.shape}")
    err = float(np.max(np.abs(y.astype(np.float64) - y_ref), initial=0.0))
    return bool(np.allclose(y, y_ref, rtol=RTOL, atol=ATOL)), err


def measure(impl, weights, config, x, y_ref, sgemm_gflops, repeats):
    """One row of the report: check the implementation, then time it."""
    row = {"impl": impl.name, "role": impl.role, "T": config.T, "B": config.B,
           "I": config.I, "H": config.H, "threads": config.threads,
           "threads_controlled": impl.threads_controlled()}
    try:
        run = impl.build(weights, config)
        ok, row["max_abs_error"] = check(np.asarray(run(x)), y_ref)
        if not ok:
            return {**row, "status": "wrong"}
        times = time_calls(run, x, repeats)
    except Exception as exc:  # one broken peer must not stop the whole run
        return {**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    median = statistics.median(times)
    gflops = config.flops / median / 1e9
    # Quartiles rather than every time: tiny configurations run thousands of calls.
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {**row, "status": "ok", "repeats": len(times),
            "median_ms": median * 1e3, "min_ms": min(times) * 1e3, "q1_ms": q1 * 1e3,
            "q3_ms": q3 * 1e3, "max_ms": max(times) * 1e3,
            "us_per_step": median / config.T * 1e6, "gflops": gflops,
            "fraction_of_sgemm": gflops / sgemm_gflops}


def make_inputs(shape):
    """Weights ~ U(-1/sqrt(H), 1/sqrt(H)) as elman.RNN draws them, and x ~ U(-1, 1)."""
    T, B, I, H = shape
    rng = np.random.default_rng(SEED)
    bound = 1 / np.sqrt(H)
    weights = Weights(*(rng.uniform(-bound, bound, size).astype(np.float32)
                        for size in ((I, H), (H, H), (H,))))
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    return weights, x


def speedups(rows):
    """elman's speed-up over the fastest correct peer, per configuration and thread count."""
    groups = {}  # insertion-ordered: the order in which configurations were measured
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["T"], r["B"], r["I"], r["H"], r["threads"]), []).append(r)
    result = []
    for (T, B, I, H, threads), group in groups.items():
        ours = [r for r in group if r["role"] == "elman"]
        peers = [r for r in group if r["role"] == "peer"]
        if not ours or not peers:
            continue
        best = min(peers, key=lambda r: r["median_ms"])
        result.append({"T": T, "B": B, "I": I, "H": H, "threads": threads,
                       "elman_ms": ours[0]["median_ms"], "fastest_peer": best["impl"],
                       "peer_ms": best["median_ms"],
                       "speedup": best["median_ms"] / ours[0]["median_ms"]})
    return result


def run_benchmark(shapes, thread_counts, repeats):
    """All measurements: sgemm per thread count, then every impl on every shape."""
    choose_keras_backend()
    missing = {impl.name: import_error(impl) for impl in IMPLS}
    available = [impl for impl in IMPLS if missing[impl.name] is None]
    for name, why in missing.items():
        if why is not None:
            progress(f"{name}: not installed ({why})")
    if importlib.util.find_spec("threadpoolctl") is None:
        progress("threadpoolctl is not installed: NumPy's BLAS threads are not controlled")
    total = len(shapes) * len(thread_counts) * len(available)
    rows, sgemm = [], {}
    for threads in thread_counts:
        with ThreadLimit(threads):
            sgemm[threads] = measure_sgemm()
            progress(f"sgemm {SGEMM_N}^3 threads={threads}: {sgemm[threads]:.1f} GFLOP/s")
            for shape in shapes:
                weights, x = make_inputs(shape)
                config = Config(*shape, threads)
                y_ref = build_oracle(weights, config)(x)
                for impl in available:
                    row = measure(impl, weights, config, x, y_ref, sgemm[threads], repeats)
                    rows.append(row)
                    progress(f"[{len(rows)}/{total}] {config.label()} {impl.name}: {describe(row)}")
    not_installed = {name: why for name, why in missing.items() if why is not None}
    return rows, sgemm, not_installed


def progress(message):
    print(message, file=sys.stderr, flush=True)


def describe(row):
    if row["status"] == "ok":
        return f"{row['median_ms']:.3f} ms median of {row['repeats']}"
    if row["status"] == "wrong":
        return f"WRONG (max abs error {row['max_abs_error']}), not timed"
    return f"FAILED ({row['reason']})"


# ----------------------------------------------------------------------------------
# Report

def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(thread_counts, sgemm, not_installed):
    modules = sorted({m.split(".")[0] for impl in IMPLS for m in impl.modules}
                     | {"numpy", "threadpoolctl"})
    try:
        from threadpoolctl import threadpool_info
        blas = threadpool_info()
    except ImportError:
        blas = "threadpoolctl not installed: NumPy's BLAS threads were not controlled"
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "thread_counts": thread_counts,
        "versions": {m: package_version(m) for m in modules
                     if importlib.util.find_spec(m) is not None},
        "keras_backend": os.environ.get("KERAS_BACKEND"),
        "thread_pools": blas,
        "sgemm_gflops": {str(n): g for n, g in sgemm.items()},
        "sgemm_size": SGEMM_N,
        "tolerance": {"rtol": RTOL, "atol": ATOL},
        "not_installed": not_installed,
    }


def markdown(rows, gains, env):
    lines = [f"CPU: {env['cpu']}; sgemm " + ", ".join(
        f"{g:.0f} GFLOP/s at {n} thread(s)" for n, g in env["sgemm_gflops"].items()), ""]
    lines += ["| T | B | I | H | threads | implementation | median ms | us/step | GFLOP/s | of sgemm |",
              "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        name = r["impl"] + ("" if r["threads_controlled"] else " *")
        shape = f"| {r['T']} | {r['B']} | {r['I']} | {r['H']} | {r['threads']} | {name} |"
        if r["status"] == "ok":
            lines.append(f"{shape} {r['median_ms']:.3f} | {r['us_per_step']:.2f} | "
                         f"{r['gflops']:.1f} | {r['fraction_of_sgemm']:.1%} |")
        else:
            lines.append(f"{shape} {r['status']} | | | |")
    if not all(r["threads_controlled"] for r in rows):
        lines += ["", "\\* thread count not controlled: the library chose its own."]
    lines.append("")
    lines += ["| T | B | I | H | threads | elman ms | fastest peer | peer ms | speed-up |",
              "|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for g in gains:
        lines.append(f"| {g['T']} | {g['B']} | {g['I']} | {g['H']} | {g['threads']} | "
                     f"{g['elman_ms']:.3f} | {g['fastest_peer']} | {g['peer_ms']:.3f} | "
                     f"{g['speedup']:.2f}x |")
    if env["not_installed"]:
        lines += ["", "Not installed: " + ", ".join(sorted(env["not_installed"])) + "."]
    return "\n".join(lines)


def default_out_dir():
    results = Path("bench/results")
    return results if results.is_dir() else Path(".")


def write_json(out_dir, env, rows, gains):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in env["host"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{stamp}-{host}.json"
    path.write_text(json.dumps({"environment": env, "results": rows, "speedups": gains},
                               indent=1) + "\n")
    return path


# ----------------------------------------------------------------------------------
# Command line

def parse_config(text):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive integers T,B,I,H, got {text!r}")
    return shape


def parse_threads(text):
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}")
    return counts


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser):
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--quick", action="store_const", dest="grid", const="quick",
                      help="a small subset of the grid, about a minute (the default): "
                           + " ".join(map(str, QUICK_GRID)))
    grid.add_argument("--full", action="store_const", dest="grid", const="full",
                      help="the whole grid of DESIGN.md section 5 (long)")
    grid.add_argument("--config", type=parse_config, action="append", metavar="T,B,I,H",
                      help="one configuration (may be repeated)")
    parser.add_argument("--threads", type=parse_threads, default=[1, 2], metavar="N[,N...]",
                        help="thread counts to run at (default: 1,2)")
    parser.add_argument("--repeats", type=positive_int, metavar="N",
                        help="timed calls per measurement (default: adaptive, about 1 s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where the JSON file goes (default: bench/results/ if it "
                             "exists in the current directory, else the current directory)")


def main(args):
    shapes = args.config or (FULL_GRID if args.grid == "full" else QUICK_GRID)
    rows, sgemm, not_installed = run_benchmark(shapes, args.threads, args.repeats)
    env = environment(args.threads, sgemm, not_installed)
    gains = speedups(rows)
    path = write_json(args.out or default_out_dir(), env, rows, gains)
    print(markdown(rows, gains, env))
    progress(f"results written to {path}")
    return 0
