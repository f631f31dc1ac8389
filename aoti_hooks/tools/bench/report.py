"""bench's report: the Markdown a run writes (`format_report`) and the tables and lines it is made of,
which the suites' tables reuse."""

from __future__ import annotations

import json
import os

from ...core.text import format_bytes, table
from ...core.types import report_lines
from ..harness.measure import host_line
from ..harness.timeline import nvml_of

NO_STOCK = ("Stock was not run (--no-stock): nothing here is compared with it; where a suite measured stock at "
            "smaller sizes, its table projects stock's figures from them.")

def peak_line(run: dict) -> str:
    """One machine-readable line per run: ``aoti-hooks-peak {"run": ..., "peak_allocated": bytes, ...}``."""
    keys = ("peak_allocated", "peak_reserved", "nvml_peak", "nvml_process_peak", "host_peak_rss", "compile_s", "fits")
    return "aoti-hooks-peak " + json.dumps({"run": run["variant"], "plugins": run["plugins"],
                                            **{key: run.get(key) for key in keys}})


PHASE_ORDER = ("move to device", "lowering", "autotune", "serialization", "packaging", "to_executorch", "program write",
               "other")


def host_phase_table(runs: list[dict]) -> str:
    """Host RSS peak of each run in each phase it was seen in."""
    seen = [phase for phase in PHASE_ORDER if any(phase in run.get("host_phase_peaks", {}) for run in runs)]
    rows = [[run["variant"], *(format_bytes(run["host_phase_peaks"][phase]) if phase in run.get("host_phase_peaks", {})
                               else "-" for phase in seen)] for run in runs]
    return table(["run", *seen], rows)


DISK_HEADING = ("Disk: the most the disk of the bench's work folder held above its use when each compile started "
                "(the compile's caches and files, an ExecuTorch program's `.pte` and `.ptd` among them, and the writes "
                "of any run beside it on that disk):")


def disk_line(run: dict) -> str:
    weights = run.get("weight_bytes")
    return format_bytes(run["disk_peak_added"]) + (f" ({run['disk_peak_added'] / weights:.2f}× the weights)" if weights else "")


def disk_lines(runs: list[dict], prefix: str = "") -> list[str]:
    """One line per run whose disk was sampled (`DISK_HEADING` says what the figure holds)."""
    return [f"- {prefix}{run['variant']}: {disk_line(run)}" for run in runs if run.get("disk_peak_added") is not None]


def phase_time_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Seconds of each run's compile in each phase (read from the compiling thread's stack), and in
    the plugins' hooks (the report's `time`, all plugins together, every ExecuTorch method's
    ``time (method)`` too): where a run with plugins spends its extra time. A header and rows; no rows
    for results without the phase times."""
    from ...core.hooks import TIME

    def in_hooks(report: dict) -> float:
        return sum(sum(values.values()) for key, values in report.items() if key == TIME or key.startswith(f"{TIME} ("))

    timed = [run for run in runs if run.get("phase_seconds")]
    seen = [phase for phase in PHASE_ORDER if any(phase in run["phase_seconds"] for run in timed)]
    rows = [[run["variant"], *(f"{run['phase_seconds'][phase]:.1f}" if phase in run["phase_seconds"] else "-"
                               for phase in seen),
             f"{in_hooks(run.get('report', {})):.1f}"] for run in timed]
    return ["run", *seen, "in plugins' hooks"], rows


WHOLE_COMPILE = 0.9  # a function on the stack this share of a compile or more wraps the whole of it
# The two tables of extra seconds, as `extra_seconds_rows` reads them: (the run's key, what the table says).
EXTRA_SECONDS = (
    ("function_own_seconds", "Where the runs with plugins spent more time than stock, by the function whose own code ran "
                             "(innermost on the compiling thread's stack; each second counted once)"),
    ("function_seconds", "Where the runs with plugins spent more time than stock, by every function on the compiling "
                         "thread's stack, callees included (a caller and its slow callee both show; aoti-hooks' own only "
                         "while they run their own code)"),
)


def extra_seconds_rows(runs: list[dict], top: int = 12, key: str = "function_seconds") -> tuple[list[str], list[list[str]]]:
    """The functions whose seconds grew most from stock to each run with plugins: where a run with
    plugins spends its extra time. ``key`` says which seconds (`EXTRA_SECONDS`): on the compiling
    thread's stack, callees included (a caller and its slow callee both show; aoti-hooks' own only while
    they run their own code, `harness.measure.functions_on_stack`), or running itself, innermost on
    the stack (each second counted once, with the function whose code ran). The callers around the
    whole compile (on the stack for `WHOLE_COMPILE` of it or more: the entry points, the session's
    wrapper of them) are left out: their growth is the compile's, which the compile column gives. A
    header and rows; none without stock's figures."""
    stock = next((run for run in runs if run["variant"] == "stock" and run.get(key)), None)
    rows = []
    for run in runs:
        if stock is None or run is stock or not run.get(key):
            continue
        before, after = stock[key], run[key]
        whole = WHOLE_COMPILE * (run.get("compile_s") or float("inf"))
        grown = sorted(((after.get(name, 0.0) - before.get(name, 0.0), name) for name in {*before, *after}
                        if after.get(name, 0.0) < whole), reverse=True)
        rows += [[run["variant"], name, f"{before.get(name, 0.0):.1f}", f"{after.get(name, 0.0):.1f}", f"+{extra:.1f}"]
                 for extra, name in grown[:top] if extra >= 1.0]
    return ["run", "function", "stock s", "run s", "more"], rows


def census_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """What held the host memory at each run's census nearest its peak (`harness.census`): a header and rows."""
    from ..harness.census import GROUPS

    rows = []
    for run in runs:
        taken = run.get("host_census")
        if not taken:
            continue
        largest = "; ".join(f"{format_bytes(item['bytes'])} {item['dtype']}{item['shape']} held by {item['held_by']}"
                            for item in taken["largest_new"][:2]) or "-"
        files = "; ".join(f"{format_bytes(item['bytes'])} {os.path.basename(item['path'])}"
                          + (" (shared memory)" if item.get("shared_memory") or item["path"].startswith("/dev/zero")
                             else "")
                          for item in taken.get("file_pages_by_file", [])[:3]) or "-"
        if taken.get("failed"):
            largest = f"a census at {format_bytes(taken['rss'])} failed ({taken['failed']}); this is an earlier one"
        rows.append([run["variant"], f"{format_bytes(taken['rss'])} ({taken['phase']})",
                     *(format_bytes(taken["groups"][group]) if group in taken["groups"] else "-" for group in GROUPS),
                     largest, files])
    return ["run", "census at RSS (phase)", *GROUPS, "largest new", "files with resident pages"], rows


SHARED_MEMORY_HEADING = ("Shared memory, which no file takes and no Python object shows (CUDA maps pinned host memory "
                         "shared):")


def shared_memory_line(run: dict) -> str | None:
    """Where a run's shared memory went, when it grew ``SHARED_GROWTH`` past its start: pinned host
    memory (CUDA maps it shared) is RSS that no file can take and no Python object shows."""
    from ..harness.measure import SHARED_GROWTH

    peak, start = run.get("host_shared_peak"), run.get("host_shared_baseline") or 0
    if peak is None or peak < start + SHARED_GROWTH:
        return None
    parts = [f"shared memory (pinned host memory, /dev/shm) peaked at {format_bytes(peak)}, "
             f"{format_bytes(start)} at the start"]
    if run.get("pinned_peak") is not None:
        parts.append(f"torch's pinned-memory allocator held at most {format_bytes(run['pinned_peak'])}")
    growth = run.get("host_shared_growth")
    if growth:
        parts.append(f"it passed {format_bytes(start + SHARED_GROWTH)} in {growth['phase']}, where the threads were: "
                     + (" | ".join(growth["stacks"]) or "(no Python frame)"))
    return "; ".join(parts)


def shared_memory_lines(runs: list[dict], prefix: str = "") -> list[str]:
    """One line per run once any run's shared memory grew: a run that stayed near its start says so,
    so a missing line is never read as a missing measurement."""
    from ..harness.measure import SHARED_GROWTH

    said = [(run, shared_memory_line(run)) for run in runs]
    if not any(line for _, line in said):
        return []
    lines = []
    for run, line in said:
        if line is None and run.get("host_shared_peak") is not None:
            line = (f"shared memory peaked at {format_bytes(run['host_shared_peak'])}, within "
                    f"{format_bytes(SHARED_GROWTH)} of its start ({format_bytes(run.get('host_shared_baseline') or 0)})")
        if line:
            lines.append(f"- {prefix}{run['variant']}: {line}")
    return lines


def format_report(results: dict) -> str:
    cuda = results["device"].startswith("cuda")
    jobs = results.get("jobs", 1)
    nvml_label = "NVML peak (process)" if jobs > 1 else "NVML peak"
    header = ["run", "compile", "host peak"] + (["peak allocated", "peak reserved", nvml_label] if cuda else [])
    header += ["artifacts", "weights"]
    executorch = results["backend"] == "executorch" and results.get("stock_run", True)
    if executorch:
        header.append(".ptd = stock")
    stock = next((run for run in results["runs"] if run["variant"] == "stock"), None)
    stock_ptd = {name: digest for name, digest in (stock or {"artifacts": {}})["artifacts"].items() if name.endswith(".ptd")}
    rows = []
    for run in results["runs"]:
        row = [run["variant"], f"{run['compile_s']:.1f} s", format_bytes(run["host_peak_rss"])]
        if cuda:
            nvml = nvml_of(run, jobs)
            row += [format_bytes(run["peak_allocated"]), format_bytes(run["peak_reserved"]),
                    _bytes(nvml)]
        row += [format_bytes(run["package_bytes"]), format_bytes(run["weight_bytes"])]
        if executorch:
            ptd = {name: digest for name, digest in run["artifacts"].items() if name.endswith(".ptd")}
            row.append("-" if run is stock else "?" if stock is None else ("yes" if ptd == stock_ptd and ptd else "NO"))
        rows.append(row)
    source = results["model"] or results["program"]
    shape = results.get("shape") or {}
    if results["model"] and shape.get("layers"):
        source += f" ({shape['layers']} layers, ctx {shape['ctx']}" + (f", {shape['weights']})" if shape.get("weights") else ")")
    if results.get("exporter"):
        from ..models.exporters import EXPORTERS

        through = f"through {EXPORTERS[results['exporter']]}"
    else:
        through = f"backend {results['backend']}"
    lines = [f"# aoti-hooks bench: {source}, {through}, on {results['device']}", "",
             "```", table(header, rows), "```"]
    if results.get("check") and any("logits_equal_stock" in entry for entry in results["check"].values()):
        lines += ["", "Outputs: each variant's package, loaded by torch's AOTI runner in its own process, over the same "
                      "decode calls as eager (seeded tokens, each call writing the caches the next reads):", "", "```",
                  table(*decode_check_rows(results["check"])), "```",
                  *(f"- {variant}: not checked: {entry['error']}" for variant, entry in results["check"].items()
                    if "error" in entry)]
    elif results.get("check") and results.get("exporter"):
        checked = [[variant, str(entry["calls"]), str(entry["outputs_per_call"]), _yes(entry["outputs_equal_stock"]),
                    "-" if entry["outputs_max_abs_vs_stock"] is None else f"{entry['outputs_max_abs_vs_stock']:.3g}"]
                   for variant, entry in results["check"].items() if "error" not in entry]
        lines += ["", "Outputs: each variant's delegate out of its .pte/.ptd, run by torch's AOTI runner on the same "
                      "seeded inputs, against stock's:", "", "```",
                  table(["run", "calls", "outputs per call", "= stock (bit for bit)", "max abs vs stock"], checked),
                  "```", *(f"- {variant}: check failed: {entry['error']}" for variant, entry in results["check"].items()
                           if "error" in entry)]
    elif results.get("check"):
        failed = {variant: entry["error"] for variant, entry in results["check"].items() if "error" in entry}
        checked = [[variant, str(entry["steps"]), _yes(entry["tokens_equal_eager"]), _yes(entry["tokens_equal_stock"]),
                    f"{entry['caches_compared']}/{entry['caches_of_eager']}",
                    "-" if entry["caches_max_abs_vs_eager"] is None else f"{entry['caches_max_abs_vs_eager']:.3g}",
                    _yes(entry["caches_equal_stock"])]
                   for variant, entry in results["check"].items() if "error" not in entry]
        lines += ["", "Outputs: each variant's delegates out of its .pte/.ptd, run by torch's AOTI runner (prefill, "
                      "then teacher-forced decode steps, temperature 0), against eager:", "", "```",
                  table(["run", "calls", "tokens = eager", "tokens = stock", "caches compared",
                         "caches max abs vs eager", "caches = stock"], checked), "```",
                  *(f"- {variant}: check failed: {error}" for variant, error in failed.items()),
                  *(f"- {variant}: {differing_line(entry['differing_steps'])}"
                    for variant, entry in results["check"].items() if entry.get("differing_steps"))]
    if results.get("budgets"):
        limits = ", ".join(f"{label} {format_bytes(results['budgets'][key])}" for label, key in
                           (("peak allocated", "max_gpu_peak"), ("host peak", "max_host_peak"))
                           if results["budgets"][key] is not None)
        verdict = [f"- over: {line}" for line in results["over_budget"]] or ["- every run with plugins is within it"]
        lines += ["", f"Budget for runs with plugins: {limits}", *verdict]
    limited = [run for run in results["runs"] if run.get("gpu_memory_limit")]
    if limited:
        lines += ["", f"GPU memory limit for runs with plugins: {format_bytes(limited[0]['gpu_memory_limit'])} through the "
                      f"caching allocator (stock runs uncapped, the baseline); the CUDA context is not in it:", "",
                  *(f"- {run['variant']}: " + ("fits" if run["fits"] else f"did not fit ({run['did_not_fit']})")
                    + (f"; CUDA context {format_bytes(run['cuda_context_bytes'])}" if run.get("cuda_context_bytes") else "")
                    for run in limited)]
    if jobs > 1:
        lines += ["", f"Compiled up to {jobs} runs at once, each in its own process: peaks are each run's own "
                      f"(allocator; NVML's per-process figure; RSS); compile times are not comparable with one at a time."]
    apart = [run for run in results["runs"] if run.get("methods_apart")]
    if apart:
        lines += ["", "Prefill and decode lowered each in a process of its own, both at once (--methods-apart). "
                      "ExecuTorch lowers a program's methods one after the other, so each method's peak is what a "
                      "user lowering both meets: the figures above are the larger of the two, the compile the longer:",
                  "", *(f"- {run['variant']}: {methods_line(run)}" for run in apart)]
    if not results.get("stock_run", True):
        lines += ["", NO_STOCK]
    if not results.get("complete", True):
        lines += ["", "Incomplete: the bench stopped before every run finished; these are the runs it finished."]
    if not cuda:
        lines += ["", "No CUDA device: the figures are host memory only."]
    measured = [run for run in results["runs"] if run.get("host_phase_peaks")]
    if measured:
        lines += ["", "Host memory (RSS), against the weights:", "", *(f"- {run['variant']}: {host_line(run)}" for run in measured),
                  "", "Host RSS peak per phase of the compile:", "", "```", host_phase_table(measured), "```"]
    on_disk = disk_lines(results["runs"])
    if on_disk:
        lines += ["", DISK_HEADING, "", *on_disk]
    header, rows = phase_time_rows(results["runs"])
    if rows:
        lines += ["", "Seconds of each compile per phase, and of them in the plugins' hooks (each hook's in the "
                      "report's `time` line):", "", "```", table(header, rows), "```"]
    for key, words in EXTRA_SECONDS:
        header, rows = extra_seconds_rows(results["runs"], key=key)
        if rows:
            lines += ["", f"{words}:", "", "```", table(header, rows), "```"]
    header, rows = census_rows(results["runs"])
    if rows:
        lines += ["", "What held the host memory at the census nearest each run's peak (CPU tensor storages by "
                      "holder, bytes objects, and the anonymous memory no Python object accounts for):", "", "```",
                  table(header, rows), "```"]
    shared = shared_memory_lines(results["runs"])
    if shared:
        lines += ["", SHARED_MEMORY_HEADING, "", *shared]
    for run in results["runs"]:
        if run["report"]:
            lines += ["", f"{run['variant']}:", *(f"- {line}" for line in report_lines(run["report"]))]
    artifacts = [(run["variant"], run["artifact"]) for run in results["runs"] if run.get("artifact")]
    if any(found["kernels"] or found["built_for"] for _, found in artifacts):
        lines += ["", "GPU code in each artifact (`aoti-hooks inspect`, each against the target):", "",
                  *(f"- {variant}: {artifact_line(found)}" for variant, found in artifacts)]
    for run in results["runs"]:
        breakdown = run.get("peak_breakdown")
        if breakdown:
            replayed = breakdown["peak_bytes"]
            known = breakdown.get("allocator_peak")
            partial = (f"; the history replays to {format_bytes(replayed)} of the allocator's {format_bytes(known)} "
                       f"peak: it dropped early events" if known and replayed < known else "")
            lines += ["", f"{run['variant']}: live at the allocator's peak ({format_bytes(replayed)} in "
                          f"{breakdown['blocks']} blocks{partial}), by where it was allocated:", "```",
                      *(f"{format_bytes(group['bytes']):>10} {group['blocks']:6d} blocks  {group['where']}"
                        for group in breakdown["groups"]), "```"]
    lines += ["", timeline_line(results)]
    return "\n".join(lines)


def differing_line(steps: list[dict]) -> str:
    """The steps whose token is not eager's, each with eager's view of it (its delegates return tokens only)."""
    if not steps:
        return "eager's logits were not kept"
    return "tokens not eager's: " + "; ".join(
        f"{'prefill' if row['step'] == 0 else 'decode ' + str(row['step'])} gave {row['token']} for eager's "
        f"{row['eager_token']}, which eager's logits put {row['logit_gap']:.3g} below it (eager's top two "
        f"{row['top2_margin']:.3g} apart)" for row in steps)


def decode_check_rows(check: dict) -> tuple[list[str], list[list[str]]]:
    """bench's output check of packages that decode (logits against eager and stock, the median time per
    call), a row per variant it checked: a header and rows."""
    def number(value):
        return "-" if value is None else f"{value:.3g}"

    rows = [[variant, str(entry["steps"]), number(entry["logits_max_abs_vs_eager"]),
             number(entry["logits_max_abs_vs_stock"]), _yes(entry["logits_equal_stock"]),
             number(entry.get("decode_ms_per_call"))]
            for variant, entry in check.items() if "error" not in entry]
    return ["run", "calls", "logits max abs vs eager", "vs stock", "= stock", "ms per call (median)"], rows


def methods_line(run: dict) -> str:
    """Each method's compile and peaks, and the host memory both processes held at most together."""
    each = "; ".join(f"{method} {figures['compile_s']} s, peak allocated {_bytes(figures.get('peak_allocated'))}, "
                     f"host peak {_bytes(figures.get('host_peak_rss'))}" for method, figures in run["methods"].items())
    return f"{each}; host memory of the two processes together at most {_bytes(run.get('host_peak_rss_together'))}"


def _bytes(value) -> str:
    return "-" if value is None else format_bytes(value)


def artifact_line(found: dict) -> str:
    """``12 kernels, up to 101376 B shared; built for sm_120; launches on the target`` (or its problems)."""
    kernels = (f"{found['kernels']} kernels, up to {found['max_shared_bytes']} B shared" if found["kernels_readable"]
               else f"{found['kernels']} kernels, their shared memory compiled in (not readable)")
    verdict = ("; ".join(found["problems"][:3]) + (f" (+{len(found['problems']) - 3} more)" if len(found["problems"]) > 3
                                                    else "")) if found["problems"] else (
        "nothing against the target" if found.get("target", True) else "not checked against the target")
    return f"{kernels}; built for {', '.join(found['built_for']) or 'no CUDA binary'}; {verdict}"


NO_TIMELINE = 'no timeline.png (matplotlib is not installed: pip install "aoti-hooks[bench]")'


def timeline_line(results: dict) -> str:
    """The report's last line; says the same as the command's stdout about the timeline plot."""
    if results.get("timeline_png"):
        return "Memory over time, phases shaded: timeline.png (samples in report.json)."
    return f"Memory over time: samples in report.json; {NO_TIMELINE}."


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "NO")
