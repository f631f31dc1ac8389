"""The timeline picture: each run's memory over time, one panel a run, the compile's phases shaded.

bench writes it beside its report and demo beside its table: the whole story at a glance (stock's
peak above, ours below). It needs matplotlib (``pip install "aoti-hooks[bench]"``).
"""

from __future__ import annotations

from pathlib import Path

from ...core.text import format_bytes

PHASE_COLOURS = {"move to device": "#c6dbef", "lowering": "#e5e5e5", "autotune": "#fdd0a2", "serialization": "#c7e9c0"}


def nvml_of(run: dict, jobs: int) -> int | None:
    """NVML's peak for a run: the whole device's when runs compiled one at a time, the process's own
    when several shared the GPU (the device figure then sums them)."""
    return run.get("nvml_process_peak") if jobs > 1 else run.get("nvml_peak")


def _with_gaps(times: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """Break the line where sampling paused (a gap over 5x the usual interval): a gap, not a ramp."""
    if len(times) < 3:
        return times, values
    steps = sorted(b - a for a, b in zip(times, times[1:]))
    limit = 5 * max(steps[len(steps) // 2], 1e-3)
    xs, ys = [times[0]], [values[0]]
    for (t0, t1), value in zip(zip(times, times[1:]), values[1:]):
        if t1 - t0 > limit:
            xs.append((t0 + t1) / 2)
            ys.append(float("nan"))
        xs.append(t1)
        ys.append(value)
    return xs, ys


def plot_timeline(results: dict, path: Path) -> str | None:
    """Every run's memory over time, one panel each on one shared y-axis, phases shaded, each
    run's peaks written above its panel, the legend below the plots; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return None
    runs = results["runs"]
    cuda = results["device"].startswith("cuda")
    figure, axes = plt.subplots(len(runs), 1, figsize=(11, 2.4 * len(runs) + 1.4), sharex=True, sharey=True,
                                squeeze=False)
    nvml_column = 5 if results.get("jobs", 1) > 1 else 2  # the process's own figure when runs shared the GPU
    top = max(max(max(s[1], s[nvml_column] or 0, s[3] or 0) for s in run["timeline"]) for run in runs) / 2**30 * 1.1
    for axis, run in zip(axes[:, 0], runs):
        samples = run["timeline"]
        times = [s[0] for s in samples]
        start = 0
        for index in range(1, len(samples) + 1):  # shade each stretch of one phase
            if index == len(samples) or samples[index][4] != samples[start][4]:
                colour = PHASE_COLOURS.get(samples[start][4])
                if colour:
                    axis.axvspan(times[start], times[index - 1], color=colour, lw=0)
                start = index
        lines = [("host RSS", 1, "tab:blue", "--" if cuda else "-")]
        if cuda:
            lines = [("NVML used", nvml_column, "black", "-"), ("CUDA allocated", 3, "tab:red", "-"), *lines]
        for label, column, colour, style in lines:
            axis.plot(*_with_gaps(times, [(s[column] or 0) / 2**30 for s in samples]), label=label, color=colour, ls=style)
        peaks = [f"host {format_bytes(run['host_peak_rss'])}"]
        if cuda:
            peaks = [f"allocated {format_bytes(run['peak_allocated'])}",
                     f"NVML {format_bytes(nvml_of(run, results.get('jobs', 1)) or 0)}", *peaks]
        axis.set_ylim(0, top)
        axis.set_ylabel("GiB")
        axis.set_title(run["variant"], loc="left", fontsize=10)
        axis.set_title("peaks: " + ", ".join(peaks), loc="right", fontsize=9)  # above the plot, never on the data
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [Patch(color=colour, label=phase) for phase, colour in PHASE_COLOURS.items()]
    figure.legend(handles=handles, loc="lower center", fontsize=8, ncol=len(handles), frameon=False)
    axes[-1, 0].set_xlabel("seconds since the compile started")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return str(path)
