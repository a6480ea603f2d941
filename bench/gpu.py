"""elman on CUDA against torch.nn.RNN on CUDA (cuDNN), with the CPU benchmark's protocol.

    python bench/gpu.py                          # the grid below; files to bench/results/
    python bench/gpu.py --config 1000,1,256,256 --repeats 50 --out /tmp/results
    python bench/gpu.py --kernel-choice timed    # kernels picked by timing them (elman.cuda.set_kernel_choice)

For every configuration (T, B, I, H), float32, tanh, one layer, zero initial state:

1. The same weights in both: a seeded torch.nn.RNN, and elman.from_torch(it).to("cuda")
   (W_x = weight_ih.T, b = bias_ih + bias_hh).
2. Check, then time. Both are checked against the float64 oracle
   (elman.reference.forward) on the first min(T, 32) steps of the input, |err| <= 1e-4 +
   1e-4 |oracle| (the CPU benchmark's rtol = atol = 1e-4); one that fails is not timed.
   elman's error is also given as a multiple of the plain float32 NumPy loop's error
   (the tests' tolerance rule allows 4x).
3. Whole forward passes on device-resident input (a torch CUDA tensor; elman reads it in
   place through __cuda_array_interface__), timed with CUDA events around each call (a
   device synchronise after each, so work on any stream is counted): two warm-up calls,
   then at least 11 calls and until about 1 s has passed (or exactly --repeats); the
   median is reported, with min and max in the JSON. A back-to-back wall-clock time
   (n calls, one synchronise) is recorded as a cross-check of the events.
4. cuDNN twice: in true float32 (torch.backends.cudnn.allow_tf32 = False: the same
   arithmetic as elman, the speed-up is taken against it), and with PyTorch's default
   (allow_tf32 = True: cuDNN may use TF32 tensor cores, 10-bit mantissas), shown for
   information with its own error, since that is what torch users get by default.
5. The yardstick: the best float32 torch.matmul of n x n x n, n in (4096, 8192), TF32
   off (torch.backends.cuda.matmul.allow_tf32 = False): "of sgemm" is elman's GFLOP/s
   (2*T*B*H*(I+H) flops per pass) divided by it. It is meaningful at large batch; at
   B = 1 a step is a matrix-vector product bound by reading W_y, far below sgemm.

Writes gpu-bench-<date>-<gpu>.json and .md into --out and prints the Markdown table.
Exit status 1 if elman failed a check or raised, 2 if there is no CUDA.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

CONFIGS = [(1000, 1, 64, 64), (1000, 1, 128, 128), (1000, 1, 256, 256), (500, 1, 512, 512),
           (250, 1, 1024, 1024), (100, 16, 1760, 1760), (150, 4, 256, 256), (100, 64, 256, 256),
           (50, 64, 1760, 1760), (25, 256, 512, 512), (20, 1024, 1024, 1024)]
SEED = 0
CHECK_STEPS = 32
RTOL = ATOL = 1e-4
TARGET_S = 1.0
MIN_REPEATS = 11
MAX_REPEATS = 500
SGEMM_SIZES = (4096, 8192)


def parse_config(text):
    parts = [int(p) for p in text.split(",")]
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--config: expected T,B,I,H (positive integers), got {text!r}")
    return tuple(parts)


def progress(message):
    print(message, file=sys.stderr, flush=True)


def to_numpy(a, torch):
    """A torch tensor, an elman.cuda.DeviceArray or a NumPy array as a NumPy array."""
    if isinstance(a, np.ndarray):
        return a
    if not isinstance(a, torch.Tensor):
        a = torch.as_tensor(a, device="cuda")
    return a.detach().cpu().numpy()


def time_calls(fn, torch, repeats=None):
    """Median, min, max ms of fn() by CUDA events; and a back-to-back wall-clock ms."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    deadline = time.perf_counter() + TARGET_S
    while True:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
        n = len(times)
        if repeats is not None:
            if n >= repeats:
                break
        elif n >= MAX_REPEATS or (n >= MIN_REPEATS and time.perf_counter() > deadline):
            break
    back_to_back = min(len(times), 20)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(back_to_back):
        fn()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) * 1e3 / back_to_back
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "repeats": len(times), "wall_back_to_back_ms": wall}


def measure_sgemm(torch):
    best = None
    for n in SGEMM_SIZES:
        g = torch.Generator(device="cuda").manual_seed(SEED)
        a = torch.randn(n, n, device="cuda", generator=g)
        b = torch.randn(n, n, device="cuda", generator=g)
        t = time_calls(lambda: torch.matmul(a, b), torch, repeats=10)
        gflops = 2 * n ** 3 / (t["median_ms"] * 1e-3) / 1e9
        progress(f"sgemm {n}^3 float32 (TF32 off): {gflops:,.0f} GFLOP/s")
        if best is None or gflops > best["gflops"]:
            best = {"n": n, "gflops": gflops, "median_ms": t["median_ms"]}
        del a, b
    return best


def check(name, y, h, ey, eh, ny=None):
    """Max abs error against the oracle, pass/fail at rtol = atol = 1e-4, and (given the
    naive float32 loop's output) the error as a multiple of the naive error."""
    err_y, err_h = np.abs(y - ey), np.abs(h - eh)
    ok = bool(np.all(err_y <= ATOL + RTOL * np.abs(ey)) and np.all(err_h <= ATOL + RTOL * np.abs(eh)))
    ok = ok and bool(np.isfinite(y).all() and np.isfinite(h).all())
    result = {"max_abs_error": float(max(err_y.max(), err_h.max())), "check_ok": ok}
    if ny is not None:
        naive = float(np.abs(ny - ey).max())
        result["naive_f32_error"] = naive
        result["error_over_naive"] = result["max_abs_error"] / naive if naive > 0 else None
    progress(f"  {name:<13} check {'ok' if ok else 'FAILED'}: max abs error {result['max_abs_error']:.2e}"
             + (f" ({result['error_over_naive']:.2f}x the naive float32 loop's)"
                if result.get("error_over_naive") is not None else ""))
    return result


def run_config(cfg, torch, elman, sgemm_gflops, repeats):
    T, B, I, H = cfg
    progress(f"{T},{B},{I},{H}")
    row = {"T": T, "B": B, "I": I, "H": H, "flops": 2 * T * B * H * (I + H)}
    torch.manual_seed(SEED)
    module = torch.nn.RNN(I, H)                            # float32, tanh, U(-1/sqrt(H), 1/sqrt(H))
    layer = elman.from_torch(module.eval()).to("cuda")
    module = module.cuda().eval()
    g = torch.Generator(device="cuda").manual_seed(SEED + 1)
    x = torch.rand(T, B, I, device="cuda", generator=g) * 2 - 1

    # -- check: the first CHECK_STEPS steps against the oracle --------------------------------
    Tc = min(T, CHECK_STEPS)
    xc = x[:Tc].contiguous()
    xc_np = xc.cpu().numpy()
    ey, eh = elman.reference.forward(layer, xc_np)
    ny, _ = elman.reference.forward(layer, xc_np, dtype=np.float32)
    impls = {}
    try:
        y, h = layer(xc)
        impls["elman"] = check("elman", to_numpy(y, torch), to_numpy(h, torch), ey, eh, ny)
        impls["elman"]["device_output"] = type(y).__name__
        impls["elman"]["kernel"] = elman.cuda._cuda.recurrence_kernel(B, H, False, "float32")
    except Exception as e:  # noqa: BLE001  (reported, the run goes on)
        impls["elman"] = {"check_ok": False, "error": f"{type(e).__name__}: {e}"}
        progress(f"  elman raised {impls['elman']['error']}")
    for name, tf32 in (("cudnn_fp32", False), ("cudnn_default", True)):
        torch.backends.cudnn.allow_tf32 = tf32
        with torch.no_grad():
            y, h = module(xc)
        impls[name] = check(name, to_numpy(y, torch), to_numpy(h, torch), ey, eh)
        impls[name]["allow_tf32"] = tf32
    # -- time whole forward passes -------------------------------------------------------------
    for name, r in impls.items():
        if not r["check_ok"]:
            r["status"] = "not timed: failed the check"
            continue
        if name == "elman":
            fn = lambda: layer(x)                          # noqa: E731
        else:
            torch.backends.cudnn.allow_tf32 = r["allow_tf32"]

            def fn():
                with torch.no_grad():
                    return module(x)
        try:
            r.update(time_calls(fn, torch, repeats))
        except Exception as e:  # noqa: BLE001
            r.update(status=f"timing raised {type(e).__name__}: {e}", check_ok=False)
            continue
        r["status"] = "ok"
        r["us_per_step"] = r["median_ms"] * 1e3 / T
        r["gflops"] = row["flops"] / (r["median_ms"] * 1e-3) / 1e9
        r["fraction_of_sgemm"] = r["gflops"] / sgemm_gflops
        progress(f"  {name:<13} {r['median_ms']:9.3f} ms  {r['us_per_step']:9.2f} us/step  "
                 f"(back-to-back wall {r['wall_back_to_back_ms']:.3f} ms)")
    torch.backends.cudnn.allow_tf32 = True                 # PyTorch's default
    ours = impls["elman"]
    for name in ("cudnn_fp32", "cudnn_default"):
        peer = impls[name]
        if ours.get("status") == "ok" and peer.get("status") == "ok":
            ours[f"speedup_vs_{name}"] = peer["median_ms"] / ours["median_ms"]
    # events must bracket elman's work: a wall clock far above them would mean they do not
    if ours.get("status") == "ok" and ours["wall_back_to_back_ms"] > 1.5 * ours["median_ms"] + 0.2:
        ours["note"] = "back-to-back wall time well above the event time"
    row["impls"] = impls
    del module, layer, x
    torch.cuda.empty_cache()
    return row


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def markdown(meta, rows):
    lines = [f"GPU: {meta['gpu']}, torch {meta['torch']}, cuDNN {meta['cudnn']}, CUDA {meta['cuda']}; "
             f"sgemm yardstick {meta['sgemm']['gflops']:,.0f} GFLOP/s "
             f"(float32 {meta['sgemm']['n']}^3, TF32 off); elman's kernel choice: "
             f"{meta.get('kernel_choice', 'rule')}", "",
             "| T, B, I, H | elman us/step (kernel) | of sgemm | cuDNN fp32 us/step | speed-up | "
             "cuDNN default (TF32) us/step | speed-up | elman err (x naive f32) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        e, f32, d = r["impls"]["elman"], r["impls"]["cudnn_fp32"], r["impls"]["cudnn_default"]

        def us(i):
            return fmt(i.get("us_per_step"), ".2f") if i.get("status") == "ok" else (
                "check failed" if not i.get("check_ok") else "error")
        err = (f"{e['max_abs_error']:.1e} ({fmt(e.get('error_over_naive'), '.1f')}x)"
               if "max_abs_error" in e else e.get("error", "-"))
        lines.append(
            f"| {r['T']}, {r['B']}, {r['I']}, {r['H']} | {us(e)}"
            + (f" ({e['kernel']})" if "kernel" in e else "") + " | "
            f"{pct(e.get('fraction_of_sgemm'))} | "
            f"{us(f32)} | {fmt(e.get('speedup_vs_cudnn_fp32'), '.2f')}{'x' if e.get('speedup_vs_cudnn_fp32') else ''} | "
            f"{us(d)} | {fmt(e.get('speedup_vs_cudnn_default'), '.2f')}{'x' if e.get('speedup_vs_cudnn_default') else ''} | {err} |")
    notes = [f"- {r['T']},{r['B']},{r['I']},{r['H']}: {n}" for r in rows
             for n in [r["impls"]["elman"].get("note")] if n]
    notes += [f"- {r['T']},{r['B']},{r['I']},{r['H']}: cuDNN default error "
              f"{r['impls']['cudnn_default']['max_abs_error']:.1e} (failed the 1e-4 check; TF32 allowed)"
              for r in rows if not r["impls"]["cudnn_default"]["check_ok"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=parse_config, action="append",
                        help="T,B,I,H (repeatable); default: the grid in this file")
    parser.add_argument("--repeats", type=int, default=None, help="exactly this many timed calls")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                        help="folder for the JSON and Markdown files (default bench/results/)")
    parser.add_argument("--kernel-choice", choices=("rule", "timed"), default="rule",
                        help="how elman picks its recurrence kernels (elman.cuda.set_kernel_choice)")
    args = parser.parse_args(argv)

    import torch

    import elman
    import elman.cuda
    import elman.reference  # noqa: F401  (elman.reference.forward below)

    if not torch.cuda.is_available():
        print("bench/gpu.py: torch sees no CUDA device", file=sys.stderr)
        return 2
    if not elman.cuda.is_available():
        print(f"bench/gpu.py: elman.cuda is not available (built: {elman.cuda.is_built()}, "
              f"devices: {elman.cuda.device_count()})", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    elman.cuda.set_kernel_choice(args.kernel_choice)

    props = torch.cuda.get_device_properties(0)
    meta = {"gpu": torch.cuda.get_device_name(0), "sm_count": props.multi_processor_count,
            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
            "cuda": torch.version.cuda, "elman": elman.__version__,
            "python": platform.python_version(), "host": platform.node(),
            "kernel_choice": args.kernel_choice,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "protocol": {"check_steps": CHECK_STEPS, "rtol": RTOL, "atol": ATOL,
                         "target_s": TARGET_S, "min_repeats": MIN_REPEATS,
                         "repeats": args.repeats, "timer": "CUDA events, median",
                         "dtype": "float32", "nonlinearity": "tanh", "num_layers": 1}}
    progress(f"device: {meta['gpu']}, torch {meta['torch']}, cuDNN {meta['cudnn']}, elman {meta['elman']}")
    meta["sgemm"] = measure_sgemm(torch)

    rows = [run_config(cfg, torch, elman, meta["sgemm"]["gflops"], args.repeats)
            for cfg in (args.config or CONFIGS)]

    table = markdown(meta, rows)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    gpu = re.sub(r"[^a-z0-9]+", "-", meta["gpu"].lower()).strip("-")[:24] or "gpu"
    base = out / f"gpu-bench-{stamp}-{gpu}"
    base.with_suffix(".json").write_text(json.dumps({**meta, "results": rows}, indent=1) + "\n")
    base.with_suffix(".md").write_text(table)
    progress(f"wrote {base}.json and .md")
    failed = [r for r in rows if r["impls"]["elman"].get("status") != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
