"""Every recurrence kernel that can run a shape, timed on a GPU beside torch.nn.RNN in the
same dtype: the data behind the kernel choice in csrc/cuda/recurrence.cu (a dev aid).

    python bench/gpu_tune.py                               # the grid below, to stdout
    python bench/gpu_tune.py --batches 1,16 --hidden 256,1760 --storages bfloat16 --out DIR

For each storage type and each kernel (ELMAN_CUDA_KERNEL=<name>, one subprocess each, a
fresh process as a user's would be; "default" is the choice without it, by elman's rule, and
"timed" the choice elman.cuda.set_kernel_choice("timed") makes), for each (B, H) with
I = H, tanh, one layer:

1. The kernel that actually runs (elman.cuda._cuda.recurrence_kernel): a forced kernel
   that cannot run the shape falls back to the default and is left out. For "timed" it
   is the one its trial runs found fastest, which should be the best column or near it
   (the JSON keeps the trial's times: a 40-step run each, fixed cost included).
2. Its output at T = 20 against the same seeded layer on the CPU (float32): a kernel off
   by more than 1e-3 (float32) or 3e-2 (16-bit storage, whose rounding alone gives ~1e-2)
   is marked WRONG and its times are not used.
3. Per-step time as the slope between T = 20 and T = 100 (medians of 15 calls, a device
   synchronise around each; the fixed cost per call cancels) and that fixed cost.
4. How long the choice took at the shape's first query (choice_ms in the JSON): for
   "timed", its trial, whose median and longest the table gives.

torch: torch.nn.RNN in the storage dtype (float32 without TF32), weights flattened, same
slope; on CUDA it runs cuDNN where cuDNN takes the dtype. Prints, per storage, one row per
(B, H): us/step of each kernel, of the default and of the timed choice, the best kernel,
torch's, torch / best, and the fixed cost per call of the default and of torch; --out
gets the tables and the rows as JSON, rewritten after each kernel (a worker gets
WORKER_TIMEOUT_S seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KERNELS = {"float32": ["default", "timed", "stepwise", "few_rows", "lean", "lean_async", "persistent", "tiled",
                       "fma", "gemm"],
           "float16": ["default", "timed", "stepwise", "few_rows", "lean", "lean_async", "persistent", "tiled",
                       "gemm", "mma"]}
CHOICES = ("default", "timed")  # elman's own choices, not kernels
KERNELS["bfloat16"] = KERNELS["float16"]
TOLERANCE = {"float32": 1e-3, "float16": 3e-2, "bfloat16": 3e-2}
SHORT, LONG, WARMUP, REPEATS = 20, 100, 3, 15
LAYER_SEED = 1
WORKER_TIMEOUT_S = 120


def int_list(text):
    return [int(v) for v in text.split(",")]


def slope(torch, fn, x_of):
    """(us per step, fixed us per call) from median wall times at T = SHORT and LONG."""
    median = {}
    for T in (SHORT, LONG):
        x = x_of(T)
        for _ in range(WARMUP):
            fn(x)
        times = []
        for _ in range(REPEATS):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(x)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        median[T] = sorted(times)[REPEATS // 2] * 1e6
    per_step = (median[LONG] - median[SHORT]) / (LONG - SHORT)
    return per_step, median[SHORT] - SHORT * per_step


def seeded_case(torch, B, H, storage):
    """(layer, x_of) for a shape: the layer on the GPU (I = H, tanh, seeded), and x_of(T),
    T steps of B rows of input drawn from a generator seeded for the shape."""
    import elman

    layer = elman.RNN(H, H, device="cuda", seed=LAYER_SEED, storage=storage)
    gen, dtype = torch.Generator(device="cuda").manual_seed(0), getattr(torch, storage)
    return layer, lambda T: (torch.randn(T, B, H, device="cuda", generator=gen) * 0.5).to(dtype)


def error_against_cpu(torch, layer, x, H, storage):
    """(max |GPU - CPU| of the layer's y on x, whether within TOLERANCE): the same seeded
    layer (seeded_case's) on the CPU in float32."""
    import numpy as np

    import elman

    y = torch.from_dlpack(layer(x)[0]).float().cpu().numpy()
    expected = elman.RNN(H, H, seed=LAYER_SEED)(x.float().cpu().numpy())[0]
    error = float(np.abs(y - expected).max())
    return error, bool(np.isfinite(error) and error <= TOLERANCE[storage])


def worker(storage, kernel, shapes):
    """In the subprocess: one JSON line per shape that `kernel` runs."""
    import torch

    import elman

    if kernel == "timed":
        elman.cuda.set_kernel_choice("timed")
    for B, H in shapes:
        torch.cuda.synchronize()
        start = time.perf_counter()
        ran = elman.cuda._cuda.recurrence_kernel(B, H, False, storage)  # for "timed", its trial
        choice_ms = (time.perf_counter() - start) * 1e3
        if kernel not in (*CHOICES, ran):
            continue
        layer, x_of = seeded_case(torch, B, H, storage)
        error, ok = error_against_cpu(torch, layer, x_of(SHORT), H, storage)
        row = {"storage": storage, "kernel": kernel, "ran": ran, "B": B, "H": H, "max_error": error,
               "ok": ok, "choice_ms": choice_ms}
        if row["ok"]:
            row["us_per_step"], row["fixed_us"] = slope(torch, layer, x_of)
        if kernel == "timed":  # what the choice saw: ms per candidate (None: its run failed)
            trial = elman.cuda._cuda.recurrence_trial(B, H, False, storage) or []
            row["trial_ms"] = {k: ms if ms == ms else None for k, ms in trial}
        print(json.dumps(row), flush=True)


def torch_rows(storage, shapes):
    import torch

    torch.backends.cudnn.allow_tf32 = False
    dtype = getattr(torch, storage)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for B, H in shapes:
        module = torch.nn.RNN(H, H).cuda().to(dtype).eval()
        module.flatten_parameters()
        with torch.no_grad():
            per_step, fixed = slope(torch, module, lambda T: torch.randn(T, B, H, device="cuda", generator=gen).to(dtype))
        yield {"storage": storage, "kernel": "torch", "B": B, "H": H, "us_per_step": per_step, "fixed_us": fixed}


def table(rows, storage, shapes):
    kernels = [k for k in KERNELS[storage] if any(r["kernel"] == k for r in rows)]
    lines = [f"storage {storage}: us/step (slope T = {SHORT}..{LONG}); '-': cannot run the shape, "
             "WRONG: failed the check",
             "| B | H | " + " | ".join(kernels) + " | best | torch | torch / best | fixed us: default, torch |",
             "|---:|---:|" + "---:|" * len(kernels) + "---|---:|---:|---:|"]
    for B, H in shapes:
        mine = {r["kernel"]: r for r in rows if (r["B"], r["H"]) == (B, H)}
        cells, best = [], None
        for k in kernels:
            r = mine.get(k)
            if r is None:
                cells.append("-")
            elif not r["ok"]:
                cells.append("WRONG")
            else:
                label = f"{r['us_per_step']:.2f}" + (f" ({r['ran']})" if k in CHOICES else "")
                cells.append(label)
                if k not in CHOICES and (best is None or r["us_per_step"] < best["us_per_step"]):
                    best = r
        peer, default = mine.get("torch"), mine.get("default")
        ratio = f"{peer['us_per_step'] / best['us_per_step']:.2f}x" if best and peer else "-"
        fixed = ", ".join(f"{r['fixed_us']:.0f}" if r and "fixed_us" in r else "-" for r in (default, peer))
        lines.append(f"| {B} | {H} | " + " | ".join(cells) + f" | {best['kernel'] if best else '-'} | "
                     + (f"{peer['us_per_step']:.2f}" if peer else "-") + f" | {ratio} | {fixed} |")
    choices = sorted(r["choice_ms"] for r in rows if r["kernel"] == "timed" and "choice_ms" in r)
    if choices:
        lines.append(f"\nThe timed choice's first call of a shape (its trial): median "
                     f"{choices[len(choices) // 2]:.1f} ms, longest {choices[-1]:.1f} ms over {len(choices)} shapes "
                     "(a process's first includes starting cuBLAS)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int_list, default=[1, 2, 4, 16, 32, 64, 256])
    parser.add_argument("--hidden", type=int_list, default=[64, 128, 256, 512, 1024, 1760])
    parser.add_argument("--storages", default="float32,bfloat16")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # storage kernel
    args = parser.parse_args(argv)
    shapes = [(B, H) for B in args.batches for H in args.hidden]
    if args.worker:
        return worker(*args.worker, shapes)
    try:
        import torch
    except ImportError:
        print("gpu_tune.py: needs torch with CUDA", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_tune.py: no CUDA device", file=sys.stderr)
        return 2
    rows, failed = [], []
    device = torch.cuda.get_device_name()
    storages = args.storages.split(",")

    def save():  # after each kernel: a later hang or timeout loses nothing before it
        reports = [table([r for r in rows if r["storage"] == s], s, shapes) for s in storages]
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu-tune.json").write_text(json.dumps({"device": device, "rows": rows,
                                                                "failed": failed}, indent=1))
            (args.out / "gpu-tune.md").write_text(device + "\n\n" + "\n\n".join(reports) + "\n")
        return reports

    for storage in storages:
        for kernel in KERNELS[storage]:
            env = dict(os.environ, ELMAN_CUDA_KERNEL="" if kernel in CHOICES else kernel)
            command = [sys.executable, __file__, "--worker", storage, kernel,
                       "--batches", ",".join(map(str, args.batches)),
                       "--hidden", ",".join(map(str, args.hidden))]
            try:
                done = subprocess.run(command, env=env, capture_output=True, text=True,
                                      timeout=WORKER_TIMEOUT_S)
                out, status, err = done.stdout, done.returncode, done.stderr
            except subprocess.TimeoutExpired as e:
                out, status, err = e.stdout or "", "timed out", e.stderr or ""
                out, err = (v.decode() if isinstance(v, bytes) else v for v in (out, err))
            rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            if status != 0:
                failed.append(f"{storage} {kernel}: {status}")
                print(f"{storage} {kernel}: {status}\n{err[-2000:]}", file=sys.stderr)
            print(f"{storage} {kernel}: done", file=sys.stderr, flush=True)
            save()
        rows += list(torch_rows(storage, shapes))
        print(save()[storages.index(storage)] + "\n", flush=True)
    return 1 if failed or any(not r.get("ok", True) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
