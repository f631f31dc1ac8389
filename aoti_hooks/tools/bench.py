"""`aoti-hooks bench`: export memory of any program, stock and with plugins, side by side.

Each compile runs in its own process with a cold Inductor cache (``aoti_hooks.tools.demo.worker``),
sampled every 20 ms: host RSS, NVML device memory, CUDA allocated, and the phase the
compile is in (read from the compiling thread's stack: move to device, lowering, autotune,
serialization). Writes ``report.json``, ``report.md`` and ``timeline.png`` (both runs on one
plot, phases shaded).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from ..core.errors import AotiHooksError
from ..core.text import did_you_mean, format_bytes, table
from ..core.types import report_lines
from .demo.measure import host_line
from .demo.timeline import nvml_of, plot_timeline

NO_STOCK = ("Stock was not run (--no-stock): nothing here is compared with it; where a suite measured stock at "
            "smaller sizes, its table projects stock's figures from them.")


def variants(plugin_lists: list[list[str]], backend_specs: dict[str, str], options: dict,
             common_specs: dict[str, str] | None = None, run_options: list[dict] | None = None,
             stock: bool = True) -> list[dict]:
    """stock (unless ``stock`` is False), stock with the backend's own specs (if any), and one run per plugin list.

    Each run gets the options of the plugins in its own list, those of ``run_options`` (one dict per
    list, named in the run's label) over them, and every run ``common_specs``.
    """
    runs = [{"variant": "stock", "plugins": [], "backend_specs": {}, "options": {}}] if stock else []
    if backend_specs:
        label = ",".join(f"{key}={value}" for key, value in backend_specs.items())
        runs.append({"variant": f"stock ({label})", "plugins": [], "backend_specs": backend_specs, "options": {}})
    for plugins, own in zip(plugin_lists, run_options or [{}] * len(plugin_lists)):
        merged = {name: {**options.get(name, {}), **own.get(name, {})} for name in plugins}
        label = ",".join(f"{name}.{key}={value}" for name, given in own.items() for key, value in given.items())
        runs.append({"variant": ",".join(plugins) + (f" ({label})" if label else ""), "plugins": plugins,
                     "backend_specs": {}, "options": {name: given for name, given in merged.items() if given}})
    for run in runs:
        run["backend_specs"] = {**(common_specs or {}), **run["backend_specs"]}
    return runs


def run_bench(program: str | None, model: str | None, plugin_lists: list[list[str]], backend: str | None,
              out: str | None, options: dict | None = None, backend_specs: dict[str, str] | None = None,
              ctx: int | None = None, layers: int | None = None, quiet: bool = False,
              periods: int | None = None, lm_head: str | None = None,
              common_specs: dict[str, str] | None = None, target: str | None = None, keep: bool = False,
              weights: str | None = None, check_steps: int | None = None, max_gpu_peak: int | None = None,
              max_host_peak: int | None = None, jobs: int = 1, peak_breakdown: bool = False,
              inductor: dict[str, str] | None = None, run_options: list[dict] | None = None,
              gpu_memory_limit: int | float | None = None, stock: bool = True) -> dict:
    import torch

    from .demo import et_gemma4
    from .demo.hf import MODELS as HF_MODELS
    from .demo.model import CONFIGS

    if (program is None) == (model is None):
        raise AotiHooksError(f"give either a PROGRAM.pt2 (a torch.export.save file) or --model demo:<config> "
                             f"or --model {et_gemma4.MODEL}")
    executorch_model = model == et_gemma4.MODEL
    if executorch_model:
        if backend == "torch":
            raise AotiHooksError(f"{model} is lowered as ExecuTorch's export.py lowers it (CudaBackend); "
                                 f"leave out --backend or give --backend executorch")
        backend = "executorch"
    backend = backend or "torch"
    hf_model = model is not None and model.startswith("hf:")
    if weights is not None and not executorch_model:
        raise AotiHooksError(f"--weights chooses the int4 or bf16 weights of --model {et_gemma4.MODEL}; it does not apply here")
    if check_steps is not None and not (executorch_model or hf_model):
        raise AotiHooksError(f"--check-steps checks decode steps of --model {et_gemma4.MODEL} or hf:<name> against "
                             f"eager; it does not apply here")
    if jobs < 1:
        raise AotiHooksError("--jobs must be 1 (one compile at a time) or more")
    if check_steps is not None and check_steps < 0:
        raise AotiHooksError("--check-steps must be 0 (no output check) or more")
    base: dict[str, Any] = {"backend": backend, "timeline": True, "target": target}
    if executorch_model:
        if lm_head is not None:
            raise AotiHooksError(f"--lm-head changes the demo decoder; {model} quantizes every linear with --weights int4")
        if periods is not None:
            if periods < 1:
                raise AotiHooksError("--periods needs N >= 1")
            layers = et_gemma4.PERIOD * periods
        if layers is not None and layers < 1:
            raise AotiHooksError("--layers needs N >= 1")
        if ctx is not None and ctx < 16:
            raise AotiHooksError("--ctx must be at least 16 for the prefill method (chunks of 5 or more tokens)")
        base.update(model=model, layers=layers or et_gemma4.PERIOD, ctx=ctx or et_gemma4.Shape.ctx,
                    weights=weights or "int4")
    elif model is not None and model.startswith("hf:") and model[3:] in HF_MODELS:
        if lm_head is not None or periods is not None:
            raise AotiHooksError(f"--lm-head and --periods change the demo decoder; {model} is transformers' own model")
        if layers is not None and layers < 1:
            raise AotiHooksError("--layers needs N >= 1")
        base.update(hf=model[3:], ctx=ctx, layers=layers)
    elif model is not None:
        kind, _, config = model.partition(":")
        if kind != "demo" or config not in CONFIGS:
            choices = [f"demo:{name}" for name in CONFIGS] + [f"hf:{name}" for name in HF_MODELS] + [et_gemma4.MODEL]
            hint = did_you_mean(config, CONFIGS, prefix="demo:") if kind == "demo" else did_you_mean(model, choices)
            raise AotiHooksError(f"unknown model {model!r}{hint}; choose one of "
                                 + ", ".join(choices))
        if periods is not None:
            if not CONFIGS[config].period or periods < 1:
                raise AotiHooksError("--periods needs a model with alternating layers (demo:gemma4-31b-slice) and N >= 1")
            layers = CONFIGS[config].period * periods
        base.update(config=config, ctx=ctx, layers=layers, lm_head=lm_head)
    else:
        if lm_head is not None:
            raise AotiHooksError("--lm-head changes a built-in model; use it with --model demo:<config>")
        check_saved_program(program)
        base["program"] = os.path.abspath(program)
    if backend == "executorch" and not torch.cuda.is_available():
        raise AotiHooksError("--backend executorch lowers through ExecuTorch's CudaBackend and needs a CUDA GPU; "
                             "use --backend torch on this machine" if not executorch_model else
                             f"{model} is lowered through ExecuTorch's CudaBackend and needs a CUDA GPU")
    for flag, given in (("--backend-spec", backend_specs), ("--common-spec", common_specs)):
        if given and backend != "executorch":
            raise AotiHooksError(f"{flag} sets ExecuTorch compile specs; use it with --backend executorch")
    if inductor:
        if backend != "torch":
            raise AotiHooksError("--inductor sets Inductor options of the torch backend's compile; through "
                                 "ExecuTorch give its compile specs with --common-spec")
        from ..seams.inductor import config_value

        base["inductor"] = {key: config_value(key, value) for key, value in inductor.items()}
    if gpu_memory_limit is not None:
        if not torch.cuda.is_available():
            raise AotiHooksError("--gpu-memory-limit caps what a run may allocate on a CUDA GPU; this machine has "
                                 "none (gate the host with --max-host-peak)")
        if gpu_memory_limit <= 0:
            raise AotiHooksError("--gpu-memory-limit needs a size above 0, e.g. 8GiB, or a share of the weights, e.g. 25%")
        base["gpu_memory_limit"] = gpu_memory_limit
    if max_gpu_peak is not None and not torch.cuda.is_available():
        raise AotiHooksError("--max-gpu-peak needs a CUDA GPU to measure; on this machine gate on --max-host-peak")
    if peak_breakdown:
        if not torch.cuda.is_available():
            raise AotiHooksError("--peak-breakdown reads the CUDA allocator's history and needs a CUDA GPU; "
                                 "leave it out on this machine")
        base["peak_breakdown"] = True
    if not plugin_lists or not all(plugin_lists):
        raise AotiHooksError("bench compares stock with plugins; name them with --plugins kv_elide[,...] "
                             "(give --plugins again for another run)")
    folder = Path(out or tempfile.mkdtemp(prefix="aoti-hooks-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aoti-hooks-bench-work-"))  # caches and artifacts, not results
    try:
        results = _run(base, plugin_lists, backend, folder, work, options, backend_specs, common_specs, model, program,
                       lm_head, quiet, 4 if check_steps is None else check_steps, jobs, run_options, stock)
    finally:
        if keep:
            print(f"packages, caches and logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["over_budget"] = over_budget(results["runs"], max_gpu_peak, max_host_peak)
    if max_gpu_peak is not None or max_host_peak is not None:
        results["budgets"] = {"max_gpu_peak": max_gpu_peak, "max_host_peak": max_host_peak}
        _write_report(results, folder)
    return results


def over_budget(runs: list[dict], max_gpu_peak: int | None, max_host_peak: int | None) -> list[str]:
    """One sentence per run with plugins whose peak exceeds a budget (stock runs are the baseline, not gated)."""
    found = []
    for run in runs:
        if not run["plugins"]:
            continue
        if run.get("fits") is False:
            found.append(f"{run['variant']}: did not fit in {format_bytes(run['gpu_memory_limit'])} of GPU memory "
                         f"({run['did_not_fit']})")
        for label, key, limit in (("peak allocated", "peak_allocated", max_gpu_peak),
                                  ("host peak", "host_peak_rss", max_host_peak)):
            if limit is not None and run.get(key) is not None and run[key] > limit:
                found.append(f"{run['variant']}: {label} {format_bytes(run[key])} ({run[key]} B) > "
                             f"{format_bytes(limit)} ({limit} B)")
    return found


def peak_line(run: dict) -> str:
    """One machine-readable line per run: ``aoti-hooks-peak {"run": ..., "peak_allocated": bytes, ...}``."""
    keys = ("peak_allocated", "peak_reserved", "nvml_peak", "nvml_process_peak", "host_peak_rss", "compile_s", "fits")
    return "aoti-hooks-peak " + json.dumps({"run": run["variant"], "plugins": run["plugins"],
                                            **{key: run.get(key) for key in keys}})


def _run(base, plugin_lists, backend, folder, work, options, backend_specs, common_specs, model, program, lm_head,
         quiet, check_steps, jobs=1, run_options=None, stock=True) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from .demo.run import Progress, phase_file, run_in_worker

    planned = variants(plugin_lists, backend_specs or {}, options or {}, common_specs, run_options, stock)
    if base.get("model"):  # ExecuTorch's own model: its seeded weights once, for every variant
        base["weights_file"] = str(work / "weights.pt")
        with Progress(f"making {base['weights']} weights for {base['model']} ({base['layers']} layers)", quiet):
            run_in_worker("weights", base, work, "weights", dict(os.environ))
    done: dict[int, dict] = {}
    lock = threading.Lock()  # runs finish in any order with --jobs > 1; one writes the report at a time
    results = {"command": shlex.join(sys.argv), "backend": backend, "model": model, "program": program,
               "lm_head": lm_head, "shape": {key: base.get(key) for key in ("layers", "ctx", "weights")},
               "jobs": jobs, "stock_run": stock, "runs": [], "complete": False}

    failed = threading.Event()  # set by a failed run: the runs not started yet never start

    def compile_run(index: int) -> None:
        if failed.is_set():
            return
        run = planned[index]
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor-{index}")}
        spec = {**base, **run, "package": str(work / f"run{index}.pt2"), "contents_dir": str(folder),
                # each run's Inductor cache is cold: headers precompiled for one compile cost more than they save
                "inductor_configs": {"aot_inductor.precompile_headers": False,
                                     "aot_inductor.package_constants_in_so": False,
                                     "aot_inductor.package_constants_on_disk_format": "binary_blob",
                                     **base.get("inductor", {})}}
        with Progress(f"[{index + 1}/{len(planned)}] compiling "
                      f"{run['variant']} ({backend})", quiet, watch=phase_file(folder, f"run{index}")):
            try:
                result = run_in_worker("compile", spec, folder, f"run{index}", env)
            except BaseException:
                failed.set()
                raise
        from .kernels import artifact_summary

        result["artifact"] = artifact_summary(spec["package"], base.get("target") if run["plugins"] else None)
        with lock:
            done[index] = result
            print(peak_line(result), flush=True)
            results["runs"] = [done[i] for i in sorted(done)]
            results["device"] = result["device"]
            _write_report(results, folder)  # after every run: a long bench that stops keeps what it measured

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each compile is its own process either way
        for future in [pool.submit(compile_run, index) for index in range(len(planned))]:
            future.result()  # a failure: the runs still running finish into the report, then it raises
    if base.get("hf") and check_steps:
        with Progress(f"checking {check_steps} decode steps: eager and each variant's package, each in its own "
                      f"process", quiet):
            results["check"] = check_package_outputs(base, planned, work, folder, check_steps)
    if base.get("model") and check_steps:
        with Progress(f"checking a prefill and {check_steps} decode steps: eager and each variant's delegates, "
                      f"each in its own process, side by side", quiet):
            results["check"] = check_executorch_outputs(base, planned, work, folder, check_steps)
    results["complete"] = True
    results["timeline_png"] = plot_timeline(results, folder / "timeline.png")  # before the report, which names it
    _write_report(results, folder)
    results["folder"] = str(folder)
    return results


def _write_report(results: dict, folder: Path) -> None:
    (folder / "report.json").write_text(json.dumps(results, indent=1))
    (folder / "report.md").write_text(format_report(results) + "\n")


CHECKS_AT_ONCE = 3  # output checks side by side: each holds the model on the host and on the GPU


def check_package_outputs(base: dict, planned: list[dict], work: Path, folder: Path, steps: int) -> dict:
    """Eager and each variant's package over ``steps`` decode calls, each in its own process: the
    logits' largest difference from eager and from stock, and whether they equal stock's bit for bit.
    A variant that did not fit its GPU memory limit, or whose code cannot run here, says so."""
    import torch

    from .demo.run import StepFailed, run_in_worker
    from .kernels import not_runnable_here

    not_here = not_runnable_here(base.get("target"))
    logits, check = {}, {}
    for name, run in [("eager", None), *((f"run{index}", run) for index, run in enumerate(planned))]:
        variant = "eager" if run is None else run["variant"]
        if run is not None and run.get("plugins") and not_here:
            check[variant] = {"error": f"not run here: {not_here}"}
            continue
        package = work / f"{name}.pt2"
        if run is not None and not package.exists():
            check[variant] = {"error": "no package (the compile did not finish, or did not fit)"}
            continue
        spec = {**base, "steps": steps, "logits": str(work / f"{name}.logits.pt"),
                "package": None if run is None else str(package)}
        try:
            run_in_worker("outputs", spec, folder, f"outputs-{name}", dict(os.environ))
        except StepFailed as error:
            check[variant] = {"error": str(error).splitlines()[0]}
            continue
        logits[variant] = torch.load(spec["logits"])
    eager, stock = logits.get("eager"), logits.get("stock")

    def largest(a, b):
        return None if a is None or b is None else max(float((x - y).abs().max()) for x, y in zip(a, b))

    for run in planned:
        got = logits.get(run["variant"])
        if got is not None:
            check[run["variant"]] = {"steps": len(got), "logits_max_abs_vs_eager": largest(got, eager),
                                     "logits_max_abs_vs_stock": largest(got, stock),
                                     "logits_equal_stock": None if stock is None else
                                     all(torch.equal(x, y) for x, y in zip(got, stock))}
    return check


def check_executorch_outputs(base: dict, planned: list[dict], work: Path, folder: Path, steps: int) -> dict:
    """Eager and each variant's delegates (taken out of its ``.pte``/``.ptd`` and run by torch's AOTI
    runner) over a prefill and ``steps`` decode steps: tokens, and the KV caches after the last step.
    Tokens and equality with stock come from each worker's result (`et_gemma4.saved_outputs`: tokens
    and a SHA-256 per cache, also in ``folder``); only the distance from eager loads the caches.
    A variant whose check fails says why; comparisons with stock are None when stock's failed."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from .demo.run import StepFailed, run_in_worker
    from .kernels import not_runnable_here

    def saved(name):
        return work / f"{name}.outputs.pt"

    not_here = not_runnable_here(base.get("target"))
    with_plugins = {f"run{index}" for index, run in enumerate(planned) if run.get("plugins")}

    def one(name):  # each in its own process; they share the GPU, not a process
        if not_here and name in with_plugins:
            return f"not run here: {not_here}"
        spec = {**base, "steps": steps, "logits": str(saved(name)),
                "folder": None if name == "eager" else str(work / name)}  # a run's lowering folder
        try:
            return run_in_worker("outputs", spec, folder, f"outputs-{name}", dict(os.environ))
        except StepFailed as error:
            return str(error).splitlines()[0]

    names = ["eager", *(f"run{index}" for index in range(len(planned)))]
    with ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE) as pool:
        found = dict(zip(names, pool.map(one, names)))
    runs = {run["variant"]: (name, found[name]) for run, name in zip(planned, names[1:])}
    eager, stock = found["eager"], runs.get("stock", (None, None))[1]
    if isinstance(eager, str):
        return {variant: {"error": f"eager did not run, nothing to compare with: {eager}"} for variant in runs}
    stock = None if isinstance(stock, str) else stock
    eager_caches = torch.load(saved("eager"))["caches"]
    check = {}
    for variant, (name, got) in runs.items():
        if isinstance(got, str):
            check[variant] = {"error": got}
            continue
        caches = torch.load(saved(name))["caches"]
        compared = sorted(set(caches) & set(eager_caches))  # by FQN, as the .ptd names them
        worst = max((float((caches[fqn].float() - eager_caches[fqn].float()).abs().max()) for fqn in compared),
                    default=None)
        del caches
        check[variant] = {"steps": len(got["tokens"]), "tokens": got["tokens"], "eager_tokens": eager["tokens"],
                          "tokens_equal_eager": got["tokens"] == eager["tokens"],
                          "tokens_equal_stock": None if stock is None else got["tokens"] == stock["tokens"],
                          "caches_compared": len(compared), "caches_of_eager": len(eager_caches),
                          "caches_max_abs_vs_eager": worst,
                          "caches_equal_stock": None if stock is None else got["cache_sha256"] == stock["cache_sha256"]}
    return check


def check_saved_program(path: str) -> None:
    """``path`` must be a ``torch.export.save`` file; a text file or a compiled AOTI package is named as such."""
    if not os.path.isfile(path):
        raise AotiHooksError(f"program {path!r} does not exist; give a file written by torch.export.save")
    if not zipfile.is_zipfile(path):
        # A script given as the program (``bench step4_hf.py``) must not be told to overwrite itself.
        suggested = os.path.splitext(os.path.basename(path))[0] + ".pt2"
        if suggested == os.path.basename(path):
            suggested = "program.pt2"
        raise AotiHooksError(f"{path!r} is not a torch.export.save file (not a zip archive); save the exported "
                             f"program with torch.export.save(exported_program, {suggested!r}) and give that file")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any("/data/aotinductor/" in f"/{name}" for name in names):
        raise AotiHooksError(f"{path!r} is a compiled AOTI package (aoti_compile_and_package wrote it); bench compiles "
                             f"itself and wants the program before compiling: torch.export.save(exported_program, PATH)")
    if not any(name.endswith(("models/model.json", "serialized_exported_program.json")) for name in names):
        raise AotiHooksError(f"{path!r} is a zip archive but not a torch.export.save file; save the exported program "
                             f"with torch.export.save(exported_program, PATH)")


PHASE_ORDER = ("move to device", "lowering", "autotune", "serialization", "packaging", "to_executorch", "program write",
               "other")


def host_phase_table(runs: list[dict]) -> str:
    """Host RSS peak of each run in each phase it was seen in."""
    seen = [phase for phase in PHASE_ORDER if any(phase in run.get("host_phase_peaks", {}) for run in runs)]
    rows = [[run["variant"], *(format_bytes(run["host_phase_peaks"][phase]) if phase in run.get("host_phase_peaks", {})
                               else "-" for phase in seen)] for run in runs]
    return table(["run", *seen], rows)


def phase_time_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Seconds of each run's compile in each phase (read from the compiling thread's stack), and in
    the plugins' hooks (the report's `time`, all plugins together, every ExecuTorch method's
    ``time (method)`` too): where a run with plugins spends its extra time. A header and rows; no rows
    for results without the phase times."""
    from ..core.hooks import TIME

    def in_hooks(report: dict) -> float:
        return sum(sum(values.values()) for key, values in report.items() if key == TIME or key.startswith(f"{TIME} ("))

    timed = [run for run in runs if run.get("phase_seconds")]
    seen = [phase for phase in PHASE_ORDER if any(phase in run["phase_seconds"] for run in timed)]
    rows = [[run["variant"], *(f"{run['phase_seconds'][phase]:.1f}" if phase in run["phase_seconds"] else "-"
                               for phase in seen),
             f"{in_hooks(run.get('report', {})):.1f}"] for run in timed]
    return ["run", *seen, "in plugins' hooks"], rows


def census_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """What held the host memory at each run's census nearest its peak (`demo.census`): a header and rows."""
    from .demo.census import GROUPS

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
    from .demo.measure import SHARED_GROWTH

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
                    "-" if nvml is None else format_bytes(nvml)]
        row += [format_bytes(run["package_bytes"]), format_bytes(run["weight_bytes"])]
        if executorch:
            ptd = {name: digest for name, digest in run["artifacts"].items() if name.endswith(".ptd")}
            row.append("-" if run is stock else "?" if stock is None else ("yes" if ptd == stock_ptd and ptd else "NO"))
        rows.append(row)
    source = results["model"] or results["program"]
    shape = results.get("shape") or {}
    if results["model"] and shape.get("layers"):
        source += f" ({shape['layers']} layers, ctx {shape['ctx']}" + (f", {shape['weights']})" if shape.get("weights") else ")")
    lines = [f"# aoti-hooks bench: {source}, backend {results['backend']}, on {results['device']}", "",
             "```", table(header, rows), "```"]
    if results.get("check") and any("logits_equal_stock" in entry for entry in results["check"].values()):
        def number(value):
            return "-" if value is None else f"{value:.3g}"

        checked = [[variant, str(entry["steps"]), number(entry["logits_max_abs_vs_eager"]),
                    number(entry["logits_max_abs_vs_stock"]), _yes(entry["logits_equal_stock"])]
                   for variant, entry in results["check"].items() if "error" not in entry]
        lines += ["", "Outputs: each variant's package, loaded by torch's AOTI runner in its own process, over the same "
                      "decode calls as eager (seeded tokens, each call writing the caches the next reads):", "", "```",
                  table(["run", "calls", "logits max abs vs eager", "vs stock", "= stock"], checked), "```",
                  *(f"- {variant}: not checked: {entry['error']}" for variant, entry in results["check"].items()
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
                  *(f"- {variant}: check failed: {error}" for variant, error in failed.items())]
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
    header, rows = phase_time_rows(results["runs"])
    if rows:
        lines += ["", "Seconds of each compile per phase, and of them in the plugins' hooks (each hook's in the "
                      "report's `time` line):", "", "```", table(header, rows), "```"]
    header, rows = census_rows(results["runs"])
    if rows:
        lines += ["", "What held the host memory at the census nearest each run's peak (CPU tensor storages by "
                      "holder, bytes objects, and the anonymous memory no Python object accounts for):", "", "```",
                  table(header, rows), "```"]
    shared = [f"- {run['variant']}: {line}" for run in results["runs"] if (line := shared_memory_line(run))]
    if shared:
        lines += ["", SHARED_MEMORY_HEADING, "", *shared]
    for run in results["runs"]:
        if run["report"]:
            lines += ["", f"{run['variant']}:", *(f"- {line}" for line in report_lines(run["report"]))]
    artifacts = [(run["variant"], run["artifact"]) for run in results["runs"] if run.get("artifact")]
    if any(found["kernels"] or found["built_for"] for _, found in artifacts):
        lines += ["", "GPU code in each artifact (`aoti-hooks inspect`; runs with plugins against the target):", "",
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


def artifact_line(found: dict) -> str:
    """``12 kernels, up to 101376 B shared; built for sm_120; launches on the target`` (or its problems)."""
    kernels = (f"{found['kernels']} kernels, up to {found['max_shared_bytes']} B shared" if found["kernels_readable"]
               else f"{found['kernels']} kernels, their shared memory compiled in (not readable)")
    verdict = ("; ".join(found["problems"][:3]) + (f" (+{len(found['problems']) - 3} more)" if len(found["problems"]) > 3
                                                    else "")) if found["problems"] else "nothing against the target"
    return f"{kernels}; built for {', '.join(found['built_for']) or 'no CUDA binary'}; {verdict}"


NO_TIMELINE = 'no timeline.png (matplotlib is not installed: pip install "aoti-hooks[bench]")'


def timeline_line(results: dict) -> str:
    """The report's last line; says the same as the command's stdout about the timeline plot."""
    if results.get("timeline_png"):
        return "Memory over time, phases shaded: timeline.png (samples in report.json)."
    return f"Memory over time: samples in report.json; {NO_TIMELINE}."


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "NO")
