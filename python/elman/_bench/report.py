"""What a run leaves behind: the speed-up summary, the environment, and the
Markdown, CSV and JSON files."""

import csv
import datetime
import json
import os
import platform
import socket
from pathlib import Path

from .measure import ATOL, RTOL

# Environment variables that change what the peers' libraries run: recorded as found.
ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "XLA_FLAGS", "KERAS_BACKEND")

CSV_FIELDS = ["impl", "role", "T", "B", "I", "H", "threads", "status", "repeats",
              "median_ms", "min_ms", "q1_ms", "q3_ms", "max_ms", "us_per_step", "gflops",
              "fraction_of_sgemm", "wy_read_bound_ratio", "speedup", "fastest_peer",
              "peer_threads", "max_abs_error", "reason"]


def speedups(rows):
    """One summary per configuration and thread count n: elman's numbers and its
    speed-up over the fastest correct peer at n threads or fewer (None where no peer
    ran). A peer may be faster on fewer threads than it is given (its pool's costs on a
    small problem), and elman chooses its own threads up to n, so each peer is taken at
    its best over the counts measured up to n, and `peer_threads` says which."""
    ok = [r for r in rows if r["status"] == "ok"]
    configs = {}  # insertion-ordered: the order in which configurations were measured
    for r in ok:
        configs.setdefault((r["T"], r["B"], r["I"], r["H"], r["threads"]), []).append(r)
    result = []
    for key, group in configs.items():
        ours = [r for r in group if r["role"] == "elman"]
        if not ours:
            continue
        peers = [r for r in ok if r["role"] == "peer" and
                 (r["T"], r["B"], r["I"], r["H"]) == key[:4] and r["threads"] <= key[4]]
        best = min(peers, key=lambda r: (r["median_ms"], r["threads"])) if peers else None
        result.append({
            **dict(zip(("T", "B", "I", "H", "threads"), key, strict=True)),
            **{k: ours[0][k] for k in ("median_ms", "us_per_step", "gflops",
                                       "fraction_of_sgemm", "wy_read_bound_ratio")},
            "fastest_peer": best and best["impl"],
            "peer_threads": best and best["threads"],
            "peer_ms": best and best["median_ms"],
            "speedup": best and best["median_ms"] / ours[0]["median_ms"]})
    return result


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


def measurements(runs):
    """Every row of every run, with its fraction of that thread count's sgemm."""
    return [{**row, "fraction_of_sgemm": row["gflops"] / run["sgemm"]["used"]
             if row["status"] == "ok" else None}
            for run in runs for result in run["impls"].values() for row in result["rows"]]


def environment(runs, peers):
    """Everything about the machine and the libraries that a reader needs."""
    by_threads = {str(run["threads"]): run for run in runs}
    results = [result for run in runs for result in run["impls"].values()]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu_info(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
        "impl_env": runs[0].get("impl_env", {}),  # set over env for the implementations
        "thread_counts": [run["threads"] for run in runs],
        "threads_set_by": "one process per implementation and thread count, with "
                          "OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, "
                          "elman.set_num_threads, torch.set_num_threads, onnxruntime "
                          "intra_op_num_threads and, below the CPU count, CPU affinity "
                          "(which sizes XLA's pool)",
        "cpus": {n: run["cpus"] for n, run in by_threads.items()},
        "elman_threads": {n: run["impls"]["elman"].get("elman_threads")
                          for n, run in by_threads.items() if "elman" in run["impls"]},
        "sgemm": {n: {k: v for k, v in run["sgemm"].items() if k != "blas"}
                  for n, run in by_threads.items()},
        "blas": {n: run["sgemm"]["blas"] for n, run in by_threads.items()},
        "versions": dict(sorted(v for r in results for v in r["versions"].items())),
        "peers_asked": peers or "all",
        "not_installed": {**runs[0]["not_found"],
                          **{name: r["not_installed"] for name, r in runs[0]["impls"].items()
                             if r["not_installed"]}},
        "tolerance": {"rtol": RTOL, "atol": ATOL},
        "wy_read_bound": "4*H*H bytes at 100 GB/s per thread (L2, DESIGN.md section 6)",
    }


def fmt(value, spec, suffix=""):
    return "" if value is None else format(value, spec) + suffix


def markdown(rows, gains, env):
    """The machine, every measurement, then the per-configuration table to read."""
    lines = header(env) + [""] + measurement_table(rows) + [""] + summary_table(gains)
    if env["not_installed"]:
        lines += ["", "Not installed: " + ", ".join(sorted(env["not_installed"])) + "."]
    return "\n".join(lines) + "\n"


def header(env):
    cpu = env["cpu"]
    lines = [f"CPU: {cpu['name']} (family {cpu.get('family')}, model {cpu.get('model')}), "
             f"{env['cpu_count']} CPUs; " + ", ".join(f"{k}={v}" for k, v in env["env"].items())]
    if env.get("impl_env"):
        lines.append("The implementations ran with " +
                     ", ".join(f"{k}={v}" for k, v in env["impl_env"].items()) + ".")
    lines += ["", "sgemm yardstick (GFLOP/s, the larger is used):", ""]
    for n, s in env["sgemm"].items():
        ours = ("wrong product, not used" if "elman_error" in s
                else fmt(s["elman"], ".1f") or "n/a (no elman._core.matmul)")
        forced = (f", NumPy with OPENBLAS_CORETYPE=SkylakeX {s['numpy_avx512']:.1f}"
                  if s.get("numpy_avx512") else "")
        lines.append(f"- {n} thread(s): NumPy {s['numpy']:.1f}{forced}, elman {ours} "
                     f"-> {s['used']:.1f} ({s['used_from']})")
    return lines + ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())]


def measurement_table(rows):
    lines = ["| T | B | I | H | threads | implementation | median ms | us/step | GFLOP/s "
             "| of sgemm |", "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        shape = f"| {r['T']} | {r['B']} | {r['I']} | {r['H']} | {r['threads']} | {r['impl']} |"
        if r["status"] == "ok":
            lines.append(f"{shape} {r['median_ms']:.3f} | {r['us_per_step']:.2f} | "
                         f"{r['gflops']:.1f} | {r['fraction_of_sgemm']:.1%} |")
        else:
            lines.append(f"{shape} {r['status']} | | | |")
    return lines


def summary_table(gains):
    lines = ["| T | B | I | H | threads | elman ms | us/step | W_y-read bound ratio | "
             "GFLOP/s | of sgemm | fastest peer | peer ms | speed-up |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for g in gains:
        lines.append(f"| {g['T']} | {g['B']} | {g['I']} | {g['H']} | {g['threads']} | "
                     f"{g['median_ms']:.3f} | {g['us_per_step']:.2f} | "
                     f"{fmt(g['wy_read_bound_ratio'], '.2f')} | {g['gflops']:.1f} | "
                     f"{g['fraction_of_sgemm']:.1%} | {peer_name(g)} | "
                     f"{fmt(g['peer_ms'], '.3f')} | {fmt(g['speedup'], '.2f', 'x')} |")
    return lines


def peer_name(gain):
    """The fastest peer, with its thread count where it is fewer than elman's."""
    if not gain["fastest_peer"]:
        return "-"
    fewer = gain["peer_threads"] < gain["threads"]
    return gain["fastest_peer"] + (f" ({gain['peer_threads']} thr)" if fewer else "")


def csv_rows(rows, gains):
    """The measurements, with the speed-up added to elman's rows."""
    by_config = {tuple(g[k] for k in ("T", "B", "I", "H", "threads")): g for g in gains}
    for r in rows:
        gain = by_config.get(tuple(r[k] for k in ("T", "B", "I", "H", "threads")))
        if r["role"] == "elman" and gain:
            r = {**r, **{k: gain[k] for k in ("speedup", "fastest_peer", "peer_threads")}}
        yield r


def stem(env):
    """bench-YYYYMMDD-HHMMSS-HOST, shared by the files of one run."""
    stamp = datetime.datetime.fromisoformat(env["date"]).strftime("%Y%m%d-%H%M%S")
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in env["host"])
    return f"bench-{stamp}-{host}"


def write_files(out_dir, env, rows, gains, text):
    """The JSON (everything), CSV (one line per measurement) and Markdown files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / stem(env)
    base.with_suffix(".json").write_text(json.dumps(
        {"environment": env, "results": rows, "speedups": gains}, indent=1) + "\n")
    with base.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_rows(rows, gains))
    base.with_suffix(".md").write_text(text)
    return base
