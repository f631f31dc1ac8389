"""One demo step in its own process, so each compile's peaks are its own.

``python -m aoti_hooks.tools.harness.worker compile SPEC.json`` exports the built-in decoder and
compiles it (stock, or with the plugins named), writing the measurements as JSON. With
``"backend": "executorch"`` it lowers the decoder to a ``.pte`` through ExecuTorch's
``CudaBackend`` instead (``"backend_specs"`` adds the backend's own specs, e.g.
``{"low_memory_mode": "ON"}``). With ``"peak_breakdown": true`` it records the CUDA allocator's
history and lists what is live at the peak.
With ``"model": "executorch:gemma4_31b"`` the program is ExecuTorch's own Gemma 4 31B (`et_gemma4`),
whose seeded weights ``python -m aoti_hooks.tools.harness.worker weights SPEC.json`` makes once for every variant.
``python -m aoti_hooks.tools.harness.worker outputs SPEC.json`` decodes several steps with eager or
with one package, each in a fresh process (a package loaded next to a compile, or next to
another package, has segfaulted on torch 2.11 + CUDA), and saves the logits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Callable

import torch

from ...core.types import tensor_bytes
from ...seams import allocator
from ..models import et_gemma4
from ..models.decoder import CONFIGS, build, decode_steps, export_decoder
from .artifacts import contents_path, described, file_digest, write_program
from .measure import Sampler, live_at_peak

# Functions on the compiling thread's stack for less than this many seconds are left out of a result.
FUNCTION_SECONDS_KEPT = 0.5


def out_of_memory(error: BaseException) -> str | None:
    """The first line of the out-of-memory error ``error`` is or wraps (Inductor wraps what its
    compile raises), or None when it is some other failure."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower():
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return first.split(" GPU 0 has a total capacity")[0][:300]  # torch's advice on fragmentation follows
        error = error.__cause__ or error.__context__
    return None


def cuda_context_bytes(device: torch.device) -> int | None:
    """What the driver charges this process before the compile beyond what torch's allocator holds:
    the CUDA context (kernels, libraries), which no allocator limit covers."""
    from .measure import Nvml

    used = Nvml(device.index or 0).used_by(os.getpid())
    return None if used is None else max(0, used - torch.cuda.memory_reserved(device))


def config_of(spec: dict):
    return CONFIGS[spec["config"]].with_(ctx=spec.get("ctx"), layers=spec.get("layers"))


def device_of(spec: dict) -> torch.device:
    return torch.device(spec.get("device") or ("cuda:0" if torch.cuda.is_available() else "cpu"))


def compile_one(spec: dict) -> dict:
    device = device_of(spec)
    if spec.get("model") == et_gemma4.MODEL:
        lowering, weight_bytes, cache_bytes = et_gemma4.prepared_lowering(spec)
    elif spec.get("exporter"):
        from ..models.exporters import prepared_lowering

        lowering, weight_bytes, cache_bytes = prepared_lowering(spec)
    else:
        lowering, weight_bytes, cache_bytes = _prepared_compile(spec, device)
    limit = spec.get("gpu_memory_limit") if spec["plugins"] else None  # stock is the uncapped baseline
    if isinstance(limit, float):  # a share of the weights (``25%`` on the command line)
        limit = int(limit * weight_bytes)
    context = None
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
        context = cuda_context_bytes(device)
        if limit:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
    if spec.get("peak_breakdown"):
        allocator.record_history()
    did_not_fit = None
    with Sampler(timeline=bool(spec.get("timeline")), census=True, phase_file=spec.get("phase_file"),
                 disk_folder=os.path.dirname(os.path.abspath(spec["package"]))) as sampler:
        started_at = time.time()  # wall clock: when runs compile side by side, which overlapped
        start = time.perf_counter()
        try:
            report, artifacts = lowering()
        except Exception as error:
            did_not_fit = out_of_memory(error) if limit else None
            if did_not_fit is None:
                raise
            report, artifacts = {}, dict
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    artifacts = artifacts()  # described after the sampling: reading the files back is the bench's work, not the compile's
    result = {
        "variant": spec["variant"],
        "plugins": spec["plugins"],
        "device": str(device),
        "compile_s": round(seconds, 2),
        "started_at": started_at,
        "host_peak_rss": sampler.host_peak,
        "host_baseline_rss": sampler.host_baseline,  # held before the compile: the user's program and model
        "host_peak_anonymous": sampler.host_anonymous_peak,
        "host_anonymous_baseline": sampler.host_anonymous_baseline,
        "host_phase_peaks": sampler.phase_peaks,
        "phase_seconds": {phase: round(seconds, 2) for phase, seconds in sampler.phase_seconds.items()},
        "function_seconds": {function: round(seconds, 1) for function, seconds in sampler.function_seconds.items()
                             if seconds >= FUNCTION_SECONDS_KEPT},
        "function_own_seconds": {function: round(seconds, 1) for function, seconds in sampler.function_own_seconds.items()
                                 if seconds >= FUNCTION_SECONDS_KEPT},
        "host_census": sampler.host_census,
        # the package's disk: this compile's writes, and those of any process beside it on that disk
        "disk_peak_added": None if sampler.disk_peak is None else sampler.disk_peak - sampler.disk_baseline,
        "host_shared_peak": sampler.host_shared_peak,  # pinned host memory and /dev/shm: RSS no file takes
        "host_shared_baseline": sampler.host_shared_baseline,
        "host_shared_growth": sampler.shared_growth,
        "backend": spec.get("backend", "torch"),
        "backend_specs": spec.get("backend_specs", {}),
        "package_bytes": sum(size for size, _ in artifacts.values()),
        "artifacts": artifacts,
        "weight_bytes": weight_bytes,
        "cache_bytes": cache_bytes,
        "report": report,
    }
    if limit:
        result.update(gpu_memory_limit=limit, fits=did_not_fit is None, did_not_fit=did_not_fit)
    if device.type == "cuda":
        result.update(
            cuda_context_bytes=context,
            peak_allocated=torch.cuda.max_memory_allocated(device),
            peak_reserved=torch.cuda.max_memory_reserved(device),
            nvml_peak=sampler.device_peak,
            nvml_baseline=sampler.device_baseline,
            nvml_process_peak=sampler.process_peak,
            pinned_peak=pinned_peak(),
        )
    if spec.get("timeline"):
        result["timeline"] = sampler.samples
    if spec.get("peak_breakdown"):
        result["peak_breakdown"] = live_at_peak(allocator.take_history())
        result["peak_breakdown"]["allocator_peak"] = result.get("peak_allocated")  # the replay misses what its history dropped
    return result


def pinned_peak() -> int | None:
    """The most pinned host memory torch's host allocator held (``pin_memory``, non-blocking copies
    to the host); None where this torch does not say."""
    try:
        return torch.cuda.host_memory_stats().get("allocated_bytes.peak")
    except (AttributeError, RuntimeError):
        return None


def _prepared_compile(spec: dict, device: torch.device):
    """The demo decoder (or a saved program) exported; a function that compiles it (stock, with
    plugins, or lowered through ExecuTorch), its weights' bytes and its caches' bytes."""
    import aoti_hooks
    from aoti_hooks.core.target import parse_target

    cache_bytes = None
    if spec.get("program"):  # a torch.export.save file
        config = None
        program = torch.export.load(spec["program"])
        weight_bytes = sum(map(tensor_bytes, program.parameters()))
    elif spec.get("hf"):  # transformers' own model, built from a config
        from ..models.hf import exported

        config = None
        program, weight_bytes, cache_bytes = exported(spec["hf"], spec.get("layers"), spec.get("ctx"))
    else:
        config = config_of(spec)
        model = build(config)
        if spec.get("lm_head") == "int4":
            from ..models.quant import int4_lm_head

            int4_lm_head(model)
        program = export_decoder(model)
        del model
        # each tensor once: a tied embedding/lm_head is one tensor under two names
        unique = {id(t): t for n, t in program.state_dict.items() if "cache" not in n}
        weight_bytes = sum(map(tensor_bytes, unique.values()))
    configs = dict(spec.get("inductor_configs") or {})
    target = parse_target(spec["target"]) if spec.get("target") else parse_target("local")
    if target.device is None:
        target = dataclasses.replace(target, device=str(device))

    def lowering() -> tuple[dict, Callable[[], dict]]:
        nonlocal program
        if spec.get("backend") == "executorch":
            return lower_executorch(spec, program)
        report = {}
        if spec["plugins"]:
            with aoti_hooks.session(spec["plugins"], target=target, **spec.get("options", {})) as session:
                path = aoti_hooks.aoti_compile_and_package(program, spec["package"], inductor_configs=configs)
            report = session.report.as_dict()
        else:
            from torch.export.passes import move_to_device_pass

            if device.type != "cpu":
                program = move_to_device_pass(program, device)
            path = torch._inductor.aoti_compile_and_package(program, package_path=spec["package"], inductor_configs=configs)
        return report, lambda: {os.path.basename(path): file_digest(path)}

    return lowering, weight_bytes, config.cache_bytes() if config is not None else cache_bytes


def lower_executorch(spec: dict, program) -> tuple[dict, Callable[[], dict]]:
    """Lower ``program`` through ExecuTorch's CudaBackend; the plugins' report and what describes the files written."""
    from executorch.backends.cuda.cuda_backend import CudaBackend
    from executorch.backends.cuda.cuda_partitioner import CudaPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from executorch.exir.backend.compile_spec_schema import CompileSpec

    import aoti_hooks
    import aoti_hooks.executorch

    specs = [CudaBackend.generate_method_name_compile_spec("forward")]
    specs += [CompileSpec(key, str(value).encode()) for key, value in spec.get("backend_specs", {}).items()]
    if spec["plugins"]:
        specs += aoti_hooks.compile_specs(spec["plugins"], target=spec.get("target") or "local", **spec.get("options", {}))
    edge = to_edge_transform_and_lower(program, partitioner=[CudaPartitioner(specs)],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False))
    written = write_program(edge.to_executorch(), os.path.splitext(spec["package"])[0])  # one folder per lowering
    report = aoti_hooks.executorch.reports().get("forward")
    return (report.as_dict() if report is not None and spec["plugins"] else {}), lambda: described(written, contents_path(spec))


@torch.no_grad()
def hf_outputs(spec: dict) -> dict:
    """Decode ``steps`` of Hugging Face model ``spec["hf"]`` with eager (its exported program) or with a
    package; save the logits. Each call writes the caches the next one reads, as generation does."""
    from ..models.hf import decode_inputs, exported

    device = device_of(spec)
    if spec.get("package"):
        runner = torch._inductor.aoti_load_package(spec["package"])
    else:
        from torch.export.passes import move_to_device_pass

        program, _, _ = exported(spec["hf"], spec.get("layers"), spec.get("ctx"))
        runner = move_to_device_pass(program, device).module() if device.type != "cpu" else program.module()
    logits, seconds = [], []
    for inputs in decode_inputs(spec["hf"], spec.get("steps", 4)):
        inputs = {key: value.to(device) for key, value in inputs.items()}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = runner(**inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
        logits.append(out.float().cpu())
    torch.save(logits, spec["logits"])
    timed = sorted(seconds[1:])  # the first call loads the kernels
    return {"steps": len(logits), "decode_ms_per_call": round(1000 * timed[len(timed) // 2], 3) if timed else None}


@torch.no_grad()
def outputs(spec: dict) -> dict:
    """Decode ``steps`` with eager (no ``package``) or with a package; save the logits."""
    if spec.get("exporter"):
        from ..models.exporters import outputs as exporter_outputs

        return exporter_outputs(spec)
    if spec.get("hf"):
        return hf_outputs(spec)
    config, device = config_of(spec), device_of(spec)
    steps = decode_steps(config, spec.get("steps", 4), start=spec.get("start", 0))
    if spec.get("package"):
        runner = torch._inductor.aoti_load_package(spec["package"])
    else:
        runner = build(config).to(device)
    logits = [runner(tokens.to(device), pos.to(device)).float().cpu() for tokens, pos in steps]
    torch.save(logits, spec["logits"])
    return {"steps": len(logits)}


def main() -> None:
    command, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as handle:
        spec = json.load(handle)
    if command == "compile":
        result = compile_one(spec)
    else:
        result = et_gemma4.outputs(spec) if spec.get("model") == et_gemma4.MODEL else outputs(spec)
    with open(spec["result"], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
