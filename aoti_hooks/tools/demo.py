"""`aoti-hooks demo`: export the built-in decoder stock and with plugins, side by side.

Each compile runs in its own process with its own cold Inductor cache, so peaks and
times are each compile's own; then eager and each package decode several steps, each in a
fresh process, and are compared. Figures are printed exactly as measured.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..core.errors import AotiHooksError
from ..core.text import did_you_mean, format_bytes, table
from ..core.types import report_lines
from .harness.launch import Progress, StepFailed, phase_file, run_in_worker
from .harness.measure import host_line
from .harness.timeline import plot_timeline
from .models.decoder import CONFIGS

MiB = 2**20
NO_PICTURE = 'no picture (matplotlib is not installed: pip install "aoti-hooks[bench]")'


def run_demo(config: str, plugins: list[str], ctx: int | None, layers: int | None, steps: int,
             out: str | None, quiet: bool, options: dict | None = None, target: str | None = None,
             keep: bool = False, inductor: dict | None = None, gpu_memory_limit: int | None = None) -> dict:
    """Stock, then ``plugins`` (none: stock alone); the artifacts stay in ``out`` (or, with ``keep``, in
    the temporary folder), else the temporary folder is removed. ``inductor``: Inductor options of
    both compiles (``max_autotune``, for a script that measures matmul templates). ``gpu_memory_limit``:
    what the compile with plugins may allocate on the GPU (stock stays uncapped, the baseline)."""
    if config not in CONFIGS:
        raise AotiHooksError(f"unknown demo config {config!r}{did_you_mean(config, CONFIGS)}; "
                             f"choose one of {', '.join(CONFIGS)}")
    check_fits_this_machine(config, ctx, layers, gpu_memory_limit)
    folder = Path(out or tempfile.mkdtemp(prefix="aoti-hooks-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        results = _run_demo(folder, config, plugins, ctx, layers, steps, quiet, options, target, inductor or {},
                            gpu_memory_limit)
    except BaseException:
        if not quiet:
            print(f"artifacts and logs of the failed run: {folder}", file=sys.stderr)
        raise
    results["kept"] = bool(out or keep)
    results["timeline_png"] = plot_timeline(
        {"runs": [{**run, "variant": ",".join(run["plugins"]) or "stock"} for run in results["runs"]],
         "device": results["runs"][0]["device"]}, folder / "timeline.png")
    if not results["kept"]:  # everything but the picture, which the table names
        for path in folder.iterdir():
            if path.name != "timeline.png":
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if results["timeline_png"] is None:
            folder.rmdir()
    return results


CPU_DEMO_BYTES = 2 * 2**30  # weights and caches a demo runs on a machine without a GPU; beyond, it says what it costs


def check_fits_this_machine(config: str, ctx: int | None, layers: int | None, gpu_memory_limit) -> None:
    """Before anything starts: a GPU-sized demo on a machine without CUDA is refused with its cost and what to run."""
    import torch

    if torch.cuda.is_available():
        return
    if gpu_memory_limit is not None:
        raise AotiHooksError("--gpu-memory-limit caps what the compile may allocate on a CUDA GPU; this machine has none")
    sized = CONFIGS[config].with_(ctx=ctx, layers=layers)
    weights, caches = sized.weight_bytes(), sized.cache_bytes()
    if weights + caches > CPU_DEMO_BYTES:
        raise AotiHooksError(
            f"demo --config {config} holds {format_bytes(weights)} of weights and {format_bytes(caches)} of caches, "
            f"sized for a CUDA GPU, and this machine has none: on its CPU the demo would run for many minutes and need "
            f"roughly three times that in RAM; run it on a GPU, shrink it (--layers, --ctx), or run the default here "
            f"(aoti-hooks demo)")


def _run_demo(folder: Path, config: str, plugins: list[str], ctx, layers, steps, quiet, options, target,
              inductor, gpu_memory_limit=None) -> dict:
    base = {"config": config, "ctx": ctx, "layers": layers, "target": target, "gpu_memory_limit": gpu_memory_limit,
            "timeline": True,  # samples for the picture
            # Weights as a blob beside the .so, the layout ExecuTorch's AOTI backends write;
            # it keeps multi-GB constants out of the shared library.
            "inductor_configs": {"aot_inductor.precompile_headers": False,
                                 "aot_inductor.package_constants_in_so": False,
                                 "aot_inductor.package_constants_on_disk_format": "binary_blob", **inductor}}
    results = {"config": CONFIGS[config].with_(ctx=ctx, layers=layers).__dict__, "folder": str(folder), "runs": []}
    packages = {}
    for variant, names in (("stock", []), ("plugins", plugins))[: 2 if plugins else 1]:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(folder / f"inductor-{variant}")}
        spec = {**base, "variant": variant, "plugins": names, "options": options or {},
                "package": str(folder / f"{variant}.pt2")}
        label = f"compiling {variant}" + (f" ({','.join(names)})" if names else "")
        with Progress(label, quiet, watch=phase_file(folder, f"compile-{variant}")):
            results["runs"].append(run_in_worker("compile", spec, folder, f"compile-{variant}", env))
        if results["runs"][-1].get("fits") is not False:
            packages[variant] = spec["package"]
    with Progress(f"checking {steps} decode steps: eager and each package in its own process", quiet):
        results["check"] = check_outputs(base, packages, steps, folder)
    for run in results["runs"]:
        if run.get("fits") is False:  # no package: nothing to run or compare
            results["check"][run["variant"]] = {"steps": 0, "max_rel_error_vs_eager": None, "bitwise_equal_to_stock": None,
                                                "constants_equal_to_stock": None,
                                                "note": f"did not fit in {format_bytes(run['gpu_memory_limit'])} of GPU "
                                                        f"memory: {run['did_not_fit']}"}
    return results


def constants_digest(package: str) -> str:
    """SHA-256 over the package's weight blobs, in name order (the constants as written)."""
    import hashlib
    import zipfile

    digest = hashlib.sha256()
    with zipfile.ZipFile(package) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith("_weights.blob")):
            with archive.open(name) as blob:
                for chunk in iter(lambda: blob.read(64 * MiB), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def check_outputs(base: dict, packages: dict, steps: int, folder: Path) -> dict:
    import torch

    from .kernels import not_runnable_here

    digests = {variant: constants_digest(path) for variant, path in packages.items()}
    not_here = not_runnable_here(base.get("target"))  # stock is built for this GPU; the plugins' package for the target
    logits = {}
    for variant, package in [("eager", None), *packages.items()]:
        if not_here and variant not in ("eager", "stock"):
            continue
        spec = {**base, "package": package, "steps": steps, "logits": str(folder / f"{variant}.logits.pt")}
        try:
            run_in_worker("outputs", spec, folder, f"outputs-{variant}", dict(os.environ))
        except StepFailed as error:
            if package is None:
                raise
            # With torch 2.11 and CUDA 13, where libstdc++ is bound from another library, every AOTI CUDA
            # package, even a one-layer Linear, segfaults on load (LIBSTDCXX_HINT). Say so; keep going.
            first = str(error).splitlines()[0]
            return {variant: {"steps": 0, "max_rel_error_vs_eager": None, "bitwise_equal_to_stock": None,
                              "constants_equal_to_stock": digests[variant] == digests["stock"],
                              "note": f"packages not run: {first}; constants compared"}
                    for variant in packages}
        logits[variant] = torch.load(spec["logits"])
    check = {}
    for variant in packages:
        if not_here and variant != "stock":
            check[variant] = {"steps": 0, "max_rel_error_vs_eager": None, "bitwise_equal_to_stock": None,
                              "constants_equal_to_stock": digests[variant] == digests["stock"],
                              "note": f"not run here: {not_here}"}
            continue
        errors = [float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
                  for got, want in zip(logits[variant], logits["eager"])]
        check[variant] = {"steps": steps, "max_rel_error_vs_eager": max(errors),
                          "constants_equal_to_stock": digests[variant] == digests["stock"],
                          "bitwise_equal_to_stock": all(torch.equal(a, b) for a, b in zip(logits[variant], logits["stock"]))}
    return check


def saved(stock: int | None, ours: int | None) -> str:
    """``1.2 GiB (40%)`` saved against stock, ``none (1.3 MiB more)`` when ours is not smaller; ``-`` when unknown."""
    if not stock or ours is None:
        return "-"
    if ours >= stock:
        return "none" + (f" ({format_bytes(ours - stock)} more)" if ours > stock else "")
    return f"{format_bytes(stock - ours)} ({(stock - ours) / stock:.0%})"


def format_demo(results: dict) -> str:
    runs = results["runs"]
    cuda = "peak_allocated" in runs[0]
    header = ["variant", "compile (AOTI call)", "host peak RSS"]
    if cuda:
        header += ["peak allocated", "peak reserved", "NVML device peak"]
    header += ["saved vs stock", "package", "vs eager (max rel err)", "outputs = stock", "constants = stock"]
    measure = "peak_allocated" if cuda else "host_peak_rss"
    rows = []
    for run in runs:
        label = ",".join(run["plugins"]) or "stock"  # what ran (AOTI_HOOKS_DISABLE may have left plugins out)
        check = results["check"][run["variant"]]
        row = [label, f"{run['compile_s']:.1f} s", format_bytes(run["host_peak_rss"])]
        if cuda:
            row += [format_bytes(run["peak_allocated"]), format_bytes(run["peak_reserved"]), format_bytes(run["nvml_peak"])]
        row.append("-" if run is runs[0] else saved(runs[0][measure], run[measure]))
        error = check["max_rel_error_vs_eager"]
        same = check.get("bitwise_equal_to_stock")
        row += [format_bytes(run["package_bytes"]), "not run" if error is None else f"{error:.2e}",
                "not run" if same is None else ("yes" if same else "NO"),
                {True: "yes", False: "NO", None: "-"}[check["constants_equal_to_stock"]]]
        rows.append(row)
    lines = [table(header, rows)]
    first = runs[0]
    where = (f"artifacts in {results['folder']}" if results.get("kept", True)
             else "artifacts removed (--keep or --out DIR keeps them)")
    picture = (f"picture: {results['timeline_png']} (memory over time, phases shaded, stock above)"
               if results.get("timeline_png") else NO_PICTURE)
    lines.append("")
    lines.append(f"device {first['device']}; weights {format_bytes(first['weight_bytes'])}, KV caches {format_bytes(first['cache_bytes'])}; "
                 f"{results['check']['stock']['steps']} decode steps checked; {where}")
    lines.append(picture)
    lines.append("compile (AOTI call) is the compile alone; the progress lines' times are each whole step "
                 "(process start, model build, export, compile).")
    for variant, check in results["check"].items():
        if check.get("note") and (variant == "stock" or check["note"] != results["check"]["stock"].get("note")):
            lines.append(check["note"] if variant == "stock" else f"{variant}: {check['note']}")
    for run in runs:
        if run.get("host_phase_peaks"):
            lines.append(f"host, {','.join(run['plugins']) or 'stock'}: {host_line(run)}")
    for run in runs:  # the plugins the user named; the core's own sections (placement, host, time) are in --json
        lines += report_lines({name: entry for name, entry in run["report"].items() if name in run["plugins"]})
    if any(run["package_bytes"] > 4 * first["weight_bytes"] for run in runs):
        lines.append(package_line(first))
    if len(runs) == 1:
        lines.append("Only stock ran: every plugin named is disabled by AOTI_HOOKS_DISABLE.")
    elif not cuda:
        lines.append("The target is the CPU: there is no device peak; 'saved' is the host peak RSS of the whole compile "
                     "process (torch and the program included). Run on a GPU for device figures.")
    else:
        stock, ours = runs
        budget = first["weight_bytes"] * 1.05 + 256 * MiB
        verdict = "meets" if ours["peak_allocated"] <= budget else "misses"
        lines.append(f"peak allocated {format_bytes(stock['peak_allocated'])} -> {format_bytes(ours['peak_allocated'])}; "
                     f"{verdict} the target weights x 1.05 + 256 MiB = {format_bytes(budget)}")
    return "\n".join(lines)


def package_line(run: dict) -> str:
    """What a package many times the weights holds: a compile writes the KV caches' starting values
    (zeros) into the package like any other buffer, stock and plugins alike, and the compiled code."""
    size, weights, caches = run["package_bytes"], run["weight_bytes"], run.get("cache_bytes") or 0
    caches = caches if size - weights >= caches else 0  # 0 unless the caches are among the package's constants
    held = [f"the weights ({format_bytes(weights)})"]
    if caches:
        held.append(f"the KV caches' starting values ({format_bytes(caches)}; stock's package holds them too)")
    code = size - weights - caches
    return (f"package: {format_bytes(size)}, of it {', '.join(held)} and about {format_bytes(code)} of compiled "
            f"code (kernels, wrapper)")
