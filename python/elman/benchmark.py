"""``python -m elman bench``: time elman against its peers (DESIGN.md section 5).

The command line and the worker processes; the parts are in elman/_bench/.

The sgemm yardstick and each implementation, at each thread count, run in a fresh
worker process whose thread variables and CPU affinity are set before anything is
imported: several libraries (OpenBLAS, XLA) size their thread pools once, at load,
so a setting made later would not reach them.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from elman import _core
from elman._bench import impls, measure, report
from elman._bench.grid import FULL_GRID, QUICK_GRID


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
    """Runs do_job() in a fresh process; its progress lines pass through on stderr."""
    cpus = affinity(job["threads"])
    # The affinity is set first, before any import can start a thread pool.
    pin = f"import os; os.sched_setaffinity(0, {cpus}); " if cpus else ""
    code = pin + "from elman import benchmark; benchmark.worker()"
    with tempfile.TemporaryDirectory() as tmp:
        # Results go through a file: a peer's library may print to stdout.
        result = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, "-c", code], text=True,
                              input=json.dumps({**job, "result": str(result)}),
                              env={**thread_environment(job["threads"]), **job.get("env", {})})
        if done.returncode != 0:
            raise RuntimeError(f"the benchmark worker for {job.get('impl', 'sgemm')} at "
                               f"{job['threads']} thread(s) exited with status {done.returncode}")
        return json.loads(result.read_text())


def worker():
    """The worker process: reads a job on stdin, writes its result to the named file."""
    job = json.load(sys.stdin)
    Path(job["result"]).write_text(json.dumps(do_job(job)))


def do_job(job):
    """The sgemm yardstick, or one implementation over all configurations."""
    if job["kind"] == "sgemm":
        return measure.yardstick(job["threads"], job["n"], with_elman=job.get("with_elman", True))
    impl = next(impl for impl in impls.IMPLS if impl.name == job["impl"])
    return measure.measure_impl(impl, [tuple(s) for s in job["shapes"]], job["threads"],
                                job["repeats"], count=(job["first"], job["total"]))


def avx512_held_back():
    """Whether the CPU has AVX-512 while OPENBLAS_CORETYPE holds OpenBLAS to older
    kernels: then the yardstick also measures NumPy with OpenBLAS's AVX-512 kernels
    (SkylakeX), the machine's real sgemm."""
    coretype = os.environ.get("OPENBLAS_CORETYPE", "")
    if not coretype or coretype.lower() in ("skylakex", "cooperlake", "sapphirerapids"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512f " in flags.replace("\n", " ")


def run_benchmark(shapes, thread_counts, repeats, peers, sgemm_n=measure.SGEMM_N,
                  run=run_worker):
    """All measurements: per thread count, the sgemm yardstick, then one process per
    implementation, so that no library's idle or spinning threads slow another's.
    (run=do_job does it all in this process instead, for the tests.)"""
    impls.choose_keras_backend()  # in os.environ, which the workers inherit
    chosen = impls.select(peers)
    found = impls.findable(chosen)
    not_found = {impl.name: "not found" for impl in chosen if impl not in found}
    for name in not_found:
        measure.progress(f"{name}: not installed")
    total = len(thread_counts) * len(found) * len(shapes)
    # Where the environment holds OpenBLAS back, the implementations run with its AVX-512
    # kernels too, as the yardstick does: else NumPy's loop would run at half its speed.
    # (Only in worker processes: OpenBLAS reads the variable once, when it loads.)
    kernels = {"OPENBLAS_CORETYPE": "SkylakeX"} if avx512_held_back() and run is run_worker else {}
    runs = []
    for threads in thread_counts:
        sgemm = run({"kind": "sgemm", "threads": threads, "n": sgemm_n})
        if kernels:
            forced = run({"kind": "sgemm", "threads": threads, "n": sgemm_n, "with_elman": False,
                          "env": kernels})
            sgemm = measure.with_forced_avx512(sgemm, forced["numpy"])
        measure.progress(f"sgemm {sgemm_n}^3 threads={threads}: NumPy {sgemm['numpy']:.1f} "
                         f"GFLOP/s, elman " + (f"{sgemm['elman']:.1f} GFLOP/s" if sgemm["elman"]
                                               else "-"))
        results = {}
        for impl in found:
            done = (len(runs) * len(found) + len(results)) * len(shapes)
            job = {"kind": "impl", "impl": impl.name, "threads": threads, "shapes": shapes,
                   "repeats": repeats, "first": done, "total": total, "env": kernels}
            try:
                results[impl.name] = run(job)
            except RuntimeError as exc:  # a peer that crashes its process fails, no more
                measure.progress(str(exc))
                results[impl.name] = crashed(impl, shapes, threads, str(exc))
        runs.append({"threads": threads, "cpus": affinity(threads), "sgemm": sgemm,
                     "impls": results, "not_found": not_found, "impl_env": kernels})
    return runs


def crashed(impl, shapes, threads, why):
    """The result of a worker that died: every configuration failed."""
    rows = [{"impl": impl.name, "role": impl.role, **dict(zip("TBIH", shape, strict=True)),
             "threads": threads, "status": "failed", "reason": why} for shape in shapes]
    return {"rows": rows, "not_installed": None, "versions": {}}


def report_runs(runs, peers, out_dir):
    """The Markdown table on stdout, and the JSON, CSV and Markdown files; returns
    their common path without suffix."""
    rows = report.measurements(runs)
    env = report.environment(runs, peers)
    gains = report.speedups(rows)
    text = report.markdown(rows, gains, env)
    print(text, end="")
    base = report.write_files(out_dir, env, rows, gains, text)
    measure.progress(f"results written to {base}.json, .csv and .md")
    return base


# ----------------------------------------------------------------------------------
# Command line

def parse_ints(text, count=None, what="numbers"):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1 or (count and len(values) != count):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def parse_config(text):
    return tuple(parse_ints(text, 4, "four positive integers T,B,I,H"))


def parse_threads(text):
    counts = parse_ints(text, what="thread counts like 1,2")
    most = _core.max_num_threads()
    if max(counts) > most:
        raise argparse.ArgumentTypeError(f"expected thread counts of at most {most}, got {text!r}")
    return counts


def parse_peers(text):
    names = [name.strip() for name in text.split(",")]
    unknown = set(names) - set(impls.PEER_NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {', '.join(sorted(unknown))}; known: {', '.join(impls.PEER_NAMES)}")
    return names


def positive_int(text):
    return parse_ints(text, 1, "a positive integer")[0]


def add_arguments(parser):
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--quick", action="store_const", dest="grid", const="quick",
                      help="one configuration per regime, about a minute (the default): "
                           + " ".join(",".join(map(str, s)) for s in QUICK_GRID))
    grid.add_argument("--full", action="store_const", dest="grid", const="full",
                      help=f"the whole grid (FULL_GRID in elman/_bench/grid.py), {len(FULL_GRID)} "
                           "configurations (about 10 minutes)")
    grid.add_argument("--config", type=parse_config, action="append", metavar="T,B,I,H",
                      help="one configuration (may be repeated)")
    grid.add_argument("--plot", type=Path, metavar="RESULTS.json",
                      help="measure nothing: draw the PNG of an earlier run's JSON file")
    parser.add_argument("--threads", type=parse_threads, default=[1, 2], metavar="N[,N...]",
                        help="thread counts to run at (default: 1,2)")
    parser.add_argument("--peers", type=parse_peers, metavar="NAME[,NAME...]",
                        help=f"only these peers (default: all installed): "
                             f"{','.join(impls.PEER_NAMES)}")
    parser.add_argument("--repeats", type=positive_int, metavar="N",
                        help="timed calls per measurement (default: adaptive, about 1 s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where the files go (default: bench/results/ if it exists in "
                             "the current directory, else the current directory)")


def default_out_dir():
    results = Path("bench/results")
    return results if results.is_dir() else Path(".")


def write_plot(json_path, png_path=None):
    """The PNG, if matplotlib is installed; a note on stderr either way."""
    if importlib.util.find_spec("matplotlib") is None:
        measure.progress("no plot: matplotlib is not installed (pip install matplotlib)")
        return None
    from elman._bench import plot
    path = plot.plot_file(json_path, png_path)
    measure.progress(f"plot written to {path}")
    return path


def usage_error(message):
    print(f"python -m elman bench: error: {message}", file=sys.stderr)
    return 2


def main(args):
    if args.plot:
        if not args.plot.is_file():
            return usage_error(f"--plot: no such file {str(args.plot)!r}")
        try:  # (read before matplotlib is needed)
            result = json.loads(args.plot.read_text())
            readable = isinstance(result, dict) and {"speedups", "environment"} <= set(result)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            readable = False
        if not readable:
            return usage_error(f"--plot: {str(args.plot)!r} is not a results JSON of this benchmark")
        out = args.out / args.plot.with_suffix(".png").name if args.out else None
        return 0 if write_plot(args.plot, out) else 1
    out_dir = args.out or default_out_dir()
    try:  # before the measurements, which a folder that cannot be written would lose
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as e:
        return usage_error(f"--out: cannot write to {str(out_dir)!r} ({e.strerror or e})")
    shapes = args.config or (FULL_GRID if args.grid == "full" else QUICK_GRID)
    runs = run_benchmark(shapes, args.threads, args.repeats, args.peers)
    base = report_runs(runs, args.peers, out_dir)
    write_plot(base.with_suffix(".json"))
    return 0
