"""``python -m elman bench``: time elman against its peers (DESIGN.md section 5).

For every configuration (T, B, I, H) and thread count, each implementation gets the
same float32 weights and input, is checked against the float64 oracle
(``elman.reference.rnn``) and only then timed: one warm-up call, then repeated calls
until about a second has passed; the median is reported. Before anything else the
machine's own sgemm throughput is measured at each thread count, so that every
result can also be read as a fraction of what this machine's BLAS reaches.

Each thread count runs in a fresh worker process whose thread variables and CPU
affinity are set before anything is imported: several libraries (OpenBLAS, XLA)
size their thread pools once, at load, so a setting made later would not reach them.

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
import subprocess
import sys
import tempfile
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
    Impl("oracle (float64)", ("elman.reference",), build_oracle, role="oracle"),
    Impl("numpy loop", ("numpy",), build_numpy),
    Impl("torch", ("torch",), build_torch),
    Impl("onnxruntime", ("onnxruntime", "onnx"), build_onnxruntime),
    # XLA has no thread setting; it sizes its pool to the CPUs the process may use.
    Impl("jax", ("jax", "jaxlib"), build_jax),
    Impl("keras", ("keras",), build_keras),
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
           "I": config.I, "H": config.H, "threads": config.threads}
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


def thread_environment(threads):
    """Environment of a worker: every thread-count variable the peers' libraries read."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def affinity(threads):
    """The CPUs a worker with this many threads may use, or None to leave it alone."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[:threads] if threads < len(cpus) else None


def run_worker(job):
    """Runs worker() in a fresh process; its progress lines pass through on stderr."""
    cpus = affinity(job["threads"])
    # The affinity is set first, before any import can start a thread pool.
    pin = f"import os; os.sched_setaffinity(0, {cpus}); " if cpus else ""
    code = pin + "from elman import benchmark; benchmark.worker()"
    with tempfile.TemporaryDirectory() as tmp:
        # Results go through a file: a peer's library may print to stdout.
        result = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, "-c", code], text=True,
                              input=json.dumps({**job, "result": str(result)}),
                              env=thread_environment(job["threads"]))
        if done.returncode != 0:
            raise RuntimeError(f"the benchmark worker for {job['threads']} thread(s) "
                               f"exited with status {done.returncode}")
        return {**json.loads(result.read_text()), "cpus": cpus}


def worker():
    """One thread count, in its own process: reads a job on stdin, writes a result file."""
    job = json.load(sys.stdin)
    threads, shapes = job["threads"], [tuple(s) for s in job["shapes"]]
    elman.set_num_threads(threads)
    missing = {impl.name: import_error(impl) for impl in IMPLS}
    available = [impl for impl in IMPLS if missing[impl.name] is None]
    if job["first"] == 0:
        for name, why in missing.items():
            if why:
                progress(f"{name}: not installed ({why})")
    sgemm = measure_sgemm()
    progress(f"sgemm {SGEMM_N}^3 threads={threads}: {sgemm:.1f} GFLOP/s")
    rows = []
    for shape in shapes:
        weights, x = make_inputs(shape)
        config = Config(*shape, threads)
        y_ref = build_oracle(weights, config)(x)
        for impl in available:
            rows.append(measure(impl, weights, config, x, y_ref, sgemm, job["repeats"]))
            count = job["first"] + len(rows)
            progress(f"[{count}/{job['total']}] {config.label()} {impl.name}: {describe(rows[-1])}")
    Path(job["result"]).write_text(json.dumps({
        "rows": rows, "sgemm": sgemm, "elman_threads": elman.get_num_threads(),
        "not_installed": {name: why for name, why in missing.items() if why},
        "versions": versions()}))


def run_benchmark(shapes, thread_counts, repeats):
    """All measurements, one worker process per thread count."""
    choose_keras_backend()
    # Only for the progress count; the workers find out what really imports.
    found = [impl for impl in IMPLS if all(importlib.util.find_spec(m) for m in impl.modules)]
    per_threads = len(shapes) * len(found)
    return [run_worker({"threads": threads, "shapes": shapes, "repeats": repeats,
                        "first": i * per_threads, "total": len(thread_counts) * per_threads})
            for i, threads in enumerate(thread_counts)]


def progress(message):
    print(message, file=sys.stderr, flush=True)


def describe(row):
    if row["status"] == "ok":
        return f"{row['median_ms']:.3f} ms median of {row['repeats']}"
    if row["status"] == "wrong":
        return f"WRONG (max abs error {row['max_abs_error']}), not timed"
    return f"FAILED ({row['reason']})"


def versions():
    modules = {m.split(".")[0] for impl in IMPLS for m in impl.modules} | {"numpy"}
    return {m: package_version(m) for m in sorted(modules) if m in sys.modules}


# ----------------------------------------------------------------------------------
# Report

def cpu_info():
    """Model name, family and model number of the first CPU in /proc/cpuinfo.

    The family matters: a VM may show only "AMD EPYC", and a BLAS that does not know
    the family falls back to an older kernel (OpenBLAS runs AVX2 code on Zen 5).
    """
    info = {"name": platform.processor() or platform.machine()}
    keys = {"model name": "name", "cpu family": "family", "model": "model"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break                                      # the end of the first CPU
            key, _, value = line.partition(":")
            if key.strip() in keys:
                info[keys[key.strip()]] = value.strip()
    except OSError:
        pass
    return info


def environment(thread_counts, workers):
    first = workers[0]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "thread_counts": thread_counts,
        "threads_set_by": "one process per thread count with OMP_NUM_THREADS, "
                          "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, elman.set_num_threads, "
                          "torch.set_num_threads, onnxruntime intra_op_num_threads and, "
                          "below the CPU count, CPU affinity (which sizes XLA's pool)",
        "cpus": {str(n): w["cpus"] for n, w in zip(thread_counts, workers)},
        "elman_threads": {str(n): w["elman_threads"] for n, w in zip(thread_counts, workers)},
        "versions": first["versions"],
        "keras_backend": os.environ.get("KERAS_BACKEND"),
        "sgemm_gflops": {str(n): w["sgemm"] for n, w in zip(thread_counts, workers)},
        "sgemm_size": SGEMM_N,
        "tolerance": {"rtol": RTOL, "atol": ATOL},
        "not_installed": first["not_installed"],
    }


def markdown(rows, gains, env):
    cpu = env["cpu"]
    lines = [f"CPU: {cpu['name']} (family {cpu.get('family')}, model {cpu.get('model')}); "
             "NumPy sgemm " + ", ".join(
        f"{g:.0f} GFLOP/s at {n} thread(s)" for n, g in env["sgemm_gflops"].items()), ""]
    lines += ["| T | B | I | H | threads | implementation | median ms | us/step | GFLOP/s | of sgemm |",
              "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        shape = f"| {r['T']} | {r['B']} | {r['I']} | {r['H']} | {r['threads']} | {r['impl']} |"
        if r["status"] == "ok":
            lines.append(f"{shape} {r['median_ms']:.3f} | {r['us_per_step']:.2f} | "
                         f"{r['gflops']:.1f} | {r['fraction_of_sgemm']:.1%} |")
        else:
            lines.append(f"{shape} {r['status']} | | | |")
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
    workers = run_benchmark(shapes, args.threads, args.repeats)
    rows = [row for w in workers for row in w["rows"]]
    env = environment(args.threads, workers)
    gains = speedups(rows)
    path = write_json(args.out or default_out_dir(), env, rows, gains)
    print(markdown(rows, gains, env))
    progress(f"results written to {path}")
    return 0
