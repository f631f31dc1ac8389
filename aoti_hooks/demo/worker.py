"""One demo step in its own process, so each compile's peaks are its own.

``python -m aoti_hooks.demo.worker compile SPEC.json`` exports the built-in decoder and
compiles it (stock, or with the plugins named), writing the measurements as JSON.
``python -m aoti_hooks.demo.worker outputs SPEC.json`` decodes several steps with eager or
with one package, each in a fresh process (a package loaded next to a compile, or next to
another package, has segfaulted on torch 2.11 + CUDA), and saves the logits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import torch

from .measure import Sampler
from .model import CONFIGS, build, decode_steps, export_decoder

def config_of(spec: dict):
    return CONFIGS[spec["config"]].with_(ctx=spec.get("ctx"), layers=spec.get("layers"))


def device_of(spec: dict) -> torch.device:
    return torch.device(spec.get("device") or ("cuda:0" if torch.cuda.is_available() else "cpu"))


def compile_one(spec: dict) -> dict:
    import aoti_hooks
    from aoti_hooks.target import parse_target

    config, device = config_of(spec), device_of(spec)
    model = build(config)
    program = export_decoder(model)
    del model
    weight_bytes = sum(t.numel() * t.element_size() for n, t in program.state_dict.items() if "cache" not in n)
    configs = dict(spec.get("inductor_configs") or {})
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    target = dataclasses.replace(parse_target("local"), device=str(device))
    report = {}
    with Sampler() as sampler:
        start = time.perf_counter()
        if spec["plugins"]:
            with aoti_hooks.session(spec["plugins"], target=target, **spec.get("options", {})) as session:
                path = aoti_hooks.aoti_compile_and_package(program, spec["package"], inductor_configs=configs)
            report = session.report.as_dict()
        else:
            from torch.export.passes import move_to_device_pass

            if device.type != "cpu":
                program = move_to_device_pass(program, device)
            path = torch._inductor.aoti_compile_and_package(program, package_path=spec["package"], inductor_configs=configs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    result = {
        "variant": spec["variant"],
        "plugins": spec["plugins"],
        "device": str(device),
        "compile_s": round(seconds, 2),
        "host_peak_rss": sampler.host_peak,
        "package_bytes": os.path.getsize(path),
        "weight_bytes": weight_bytes,
        "cache_bytes": config.cache_bytes(),
        "report": report,
    }
    if device.type == "cuda":
        result.update(
            peak_allocated=torch.cuda.max_memory_allocated(device),
            peak_reserved=torch.cuda.max_memory_reserved(device),
            nvml_peak=sampler.device_peak,
            nvml_baseline=sampler.device_baseline,
        )
    return result


@torch.no_grad()
def outputs(spec: dict) -> dict:
    """Decode ``steps`` with eager (no ``package``) or with a package; save the logits."""
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
    result = compile_one(spec) if command == "compile" else outputs(spec)
    with open(spec["result"], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
