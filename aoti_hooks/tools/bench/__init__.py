"""`aoti-hooks bench`: export memory of any program, stock and with plugins, side by side.

Each compile runs in its own process with a cold Inductor cache (``aoti_hooks.tools.harness.worker``),
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

from ...core.errors import AotiHooksError
from ...core.text import did_you_mean, format_bytes
from ..harness.timeline import plot_timeline
from .checks import check_executorch_outputs, check_exporter_outputs, check_package_outputs
from .report import format_report, peak_line


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
              gpu_memory_limit: int | float | None = None, stock: bool = True, exporter: str | None = None,
              methods_apart: bool = False) -> dict:
    import torch

    from ..models import et_gemma4
    from ..models.decoder import CONFIGS
    from ..models.hf import MODELS as HF_MODELS

    if (program is None) == (model is None):
        raise AotiHooksError(f"give either a PROGRAM.pt2 (a torch.export.save file) or --model demo:<config> "
                             f"or --model {et_gemma4.MODEL}")
    executorch_model = model == et_gemma4.MODEL
    if executorch_model:
        if backend == "torch":
            raise AotiHooksError(f"{model} is lowered as ExecuTorch's export.py lowers it (CudaBackend); "
                                 f"leave out --backend or give --backend executorch")
        backend = "executorch"
    hf_model = model is not None and model.startswith("hf:")
    if exporter is not None:
        if not hf_model:
            raise AotiHooksError(f"--exporter {exporter} lowers a Hugging Face model; give --model hf:<name>")
        if backend == "torch":
            raise AotiHooksError(f"--exporter {exporter} lowers to ExecuTorch's CudaBackend; leave out --backend")
        backend = "executorch"
    backend = backend or "torch"
    if weights is not None and not executorch_model:
        raise AotiHooksError(f"--weights chooses the int4 or bf16 weights of --model {et_gemma4.MODEL}; it does not apply here")
    if check_steps is not None and not (executorch_model or hf_model):
        raise AotiHooksError(f"--check-steps checks decode steps of --model {et_gemma4.MODEL} or hf:<name> against "
                             f"eager; it does not apply here")
    if methods_apart and not executorch_model:
        raise AotiHooksError(f"--methods-apart lowers the prefill and decode methods of --model {et_gemma4.MODEL} "
                             f"each in a process of its own; it does not apply here")
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
                    weights=weights or "int4", methods_apart=methods_apart)
    elif model is not None and model.startswith("hf:") and model[3:] in HF_MODELS:
        if lm_head is not None or periods is not None:
            raise AotiHooksError(f"--lm-head and --periods change the demo decoder; {model} is transformers' own model")
        if layers is not None and layers < 1:
            raise AotiHooksError("--layers needs N >= 1")
        base.update(hf=model[3:], ctx=ctx, layers=layers)
        if exporter is not None:
            from ..models.exporters import check_installed

            check_installed(exporter)
            base["exporter"] = exporter
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
        if exporter is not None:
            raise AotiHooksError(f"--exporter {exporter} lowers through ExecuTorch's CudaBackend and needs a CUDA GPU "
                                 f"(stock fails there too); run it on a machine with one")
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
        from ...seams.inductor import config_value

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


def _run(base, plugin_lists, backend, folder, work, options, backend_specs, common_specs, model, program, lm_head,
         quiet, check_steps, jobs=1, run_options=None, stock=True) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from ..harness.launch import Progress, phase_file, run_in_worker

    planned = variants(plugin_lists, backend_specs or {}, options or {}, common_specs, run_options, stock)
    done: dict[int, dict] = {}
    lock = threading.Lock()  # runs finish in any order with --jobs > 1; one writes the report at a time
    results = {"command": shlex.join(sys.argv), "backend": backend, "model": model, "program": program,
               "lm_head": lm_head, "shape": {key: base.get(key) for key in ("layers", "ctx", "weights")},
               "jobs": jobs, "stock_run": stock, "exporter": base.get("exporter"), "runs": [], "complete": False}

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
        apart = base.get("methods_apart")
        with Progress(f"[{index + 1}/{len(planned)}] compiling {run['variant']} ({backend}"
                      f"{', prefill and decode in two processes at once' if apart else ''})", quiet,
                      watch=phase_file(folder, f"run{index}-prefill" if apart else f"run{index}")):
            try:
                result = (lowered_apart(spec, folder, f"run{index}", env) if apart
                          else run_in_worker("compile", spec, folder, f"run{index}", env))
            except BaseException:
                failed.set()
                raise
        from ..kernels import artifact_summary

        # stock too: whether its artifact would launch on the target is what the target is for
        result["artifact"] = artifact_summary(spec["package"], base.get("target"))
        with lock:
            done[index] = result
            print(peak_line(result), flush=True)
            results["runs"] = [done[i] for i in sorted(done)]
            results["device"] = result["device"]
            _write_report(results, folder)  # after every run: a long bench that stops keeps what it measured

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each compile is its own process either way
        for future in [pool.submit(compile_run, index) for index in range(len(planned))]:
            future.result()  # a failure: the runs still running finish into the report, then it raises
    if base.get("exporter") and check_steps:
        with Progress(f"checking {check_steps} calls of each variant's delegate, taken out of its .pte/.ptd, on the "
                      f"same inputs, each in its own process", quiet):
            results["check"] = check_exporter_outputs(base, planned, work, folder, check_steps)
    elif base.get("hf") and check_steps:
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


METHOD_PEAKS = ("compile_s", "peak_allocated", "peak_reserved", "nvml_peak", "nvml_process_peak", "host_peak_rss",
                "host_peak_anonymous", "pinned_peak", "disk_peak_added")


def lowered_apart(spec: dict, folder: Path, name: str, env: dict) -> dict:
    """ExecuTorch's two methods lowered each in a process of its own, both at once (``--methods-apart``):
    one result whose figures are the larger of the two. ExecuTorch lowers a program's methods one after
    the other, so each method's peak is what a user lowering both meets; the wall time is the longer
    one. Each method's own figures are under ``methods``; ``host_peak_rss_together`` bounds what the
    two processes held at once on this machine."""
    from concurrent.futures import ThreadPoolExecutor

    from ..harness.launch import run_in_worker
    from ..models.et_gemma4 import METHODS

    package = os.path.splitext(spec["package"])[0]

    def one(method: str) -> dict:
        return run_in_worker("compile", {**spec, "methods": [method], "method": method,
                                         "package": os.path.join(package, f"{method}.pt2")},
                             folder, f"{name}-{method}", {**env, "TORCHINDUCTOR_CACHE_DIR": f"{env['TORCHINDUCTOR_CACHE_DIR']}-{method}"})

    with ThreadPoolExecutor(max_workers=len(METHODS)) as pool:
        found = dict(zip(METHODS, pool.map(one, METHODS)))
    return merged_methods(found)


def merged_methods(found: dict[str, dict]) -> dict:
    """One run's result from each method's (see `lowered_apart`): the timeline, census and phases of the
    method with the higher host peak, each peak the larger, the plugins' reports of both."""
    largest = max(found.values(), key=lambda result: result.get("host_peak_rss") or 0)
    merged = {**largest, "methods_apart": True,
              "methods": {method: {key: result.get(key) for key in METHOD_PEAKS} for method, result in found.items()},
              "report": {key: value for result in found.values() for key, value in (result.get("report") or {}).items()},
              "artifacts": {f"{method}/{file}": value for method, result in found.items()
                            for file, value in (result.get("artifacts") or {}).items()},
              "package_bytes": sum(result.get("package_bytes") or 0 for result in found.values())}
    for key in METHOD_PEAKS:
        values = [result[key] for result in found.values() if result.get(key) is not None]
        merged[key] = max(values) if values else None
    merged["host_peak_rss_together"] = sum(result.get("host_peak_rss") or 0 for result in found.values())
    unfit = [result for result in found.values() if result.get("fits") is False]
    if unfit:  # under a GPU memory limit, a method that did not fit is the run's verdict
        merged.update(fits=False, did_not_fit=unfit[0]["did_not_fit"])
    return merged


def _write_report(results: dict, folder: Path) -> None:
    (folder / "report.json").write_text(json.dumps(results, indent=1))
    (folder / "report.md").write_text(format_report(results) + "\n")


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


