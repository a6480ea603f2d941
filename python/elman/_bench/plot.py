"""The chart a person reads at a glance: elman's speed-up over the fastest peer,
one group of bars per configuration, one bar per thread count."""

import json
from pathlib import Path


def plot_file(json_path, png_path=None):
    """Plot a results JSON; the PNG goes beside it unless png_path says otherwise."""
    json_path = Path(json_path)
    result = json.loads(json_path.read_text())
    png_path = Path(png_path) if png_path else json_path.with_suffix(".png")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    plot(result["speedups"], result["environment"], png_path)
    return png_path


def plot(gains, env, path):
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    gains = [g for g in gains if g["speedup"] is not None]
    configs = list(dict.fromkeys(config_of(g) for g in gains))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(configs) + 2), 4.5), layout="constrained")
    draw_bars(ax, gains, configs)
    log_ratio_axis(ax, [g["speedup"] for g in gains])
    ax.set_xticks(range(len(configs)), [",".join(map(str, c)) for c in configs],
                  rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("configuration T,B,I,H")
    ax.set_ylabel("elman speed-up over the fastest peer")
    cpu = env["cpu"]
    ax.set_title(f"elman vs fastest peer, {cpu['name']} (family {cpu.get('family')}), "
                 f"{env['date'][:10]}", fontsize=10)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def config_of(gain):
    return gain["T"], gain["B"], gain["I"], gain["H"]


def draw_bars(ax, gains, configs):
    """One bar per thread count in each configuration's group."""
    threads = sorted({g["threads"] for g in gains})
    width = 0.8 / max(len(threads), 1)
    for k, n in enumerate(threads):
        by_config = {config_of(g): g["speedup"] for g in gains if g["threads"] == n}
        offset = (k - (len(threads) - 1) / 2) * width
        xs = [i + offset for i, c in enumerate(configs) if c in by_config]
        heights = [by_config[c] for c in configs if c in by_config]
        # Bars start at 1x, so that a loss hangs below the line and a win stands above.
        bars = ax.bar(xs, [h - 1 for h in heights], width, bottom=1,
                      label=f"{n} thread{'s' * (n > 1)}")
        ax.bar_label(bars, [f"{h:.1f}" for h in heights], fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=1)


def log_ratio_axis(ax, values):
    """A log scale, on which 0.5x and 2x lie equally far from 1x, ticked at powers of 2."""
    ax.set_yscale("log")
    low = min([0.8] + [v / 1.3 for v in values])
    high = max([1.25] + [v * 1.3 for v in values])
    ticks = [2.0**k for k in range(-10, 11) if low <= 2.0**k <= high]
    ax.set_ylim(low, high)
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
