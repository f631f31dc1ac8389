"""Export memory of models no one here wrote, stock vs plugins, each variant in its own process.

    source bench/gpu_setup.sh
    python3 bench/real_models.py --model gemma4-et --ctx 65536 --out $OUT/gemma4
    python3 bench/real_models.py --model hf-llama --ctx 32768 --out $OUT/hf

``gemma4-et``: ExecuTorch's ``examples.models.gemma4_31b`` at real head dimensions (256 sliding,
512 full; 32/16/4 heads; vocab 262144; window 1024), ``--hidden`` wide, 2 layers (sliding +
full), bf16, seeded random weights; exported as its ``export.py`` does (``materialize_runtime_buffers``,
strict export of the decode method, its Inductor settings) and lowered through ``CudaBackend``:
stock, ``low_memory_mode=ON``, kv_elide, kv_elide + const_offload. The ``.ptd`` digests are compared.

``hf-llama``: a Hugging Face Llama built from a config (static cache, ``max_cache_len=--ctx``),
exported through ``TorchExportableModuleForDecoderOnlyLM`` on the CPU and compiled with plain AOTI
for the GPU: stock (``move_to_device_pass`` then ``aoti_compile_and_package``), kv_elide,
const_offload, both. Each package is then loaded in a fresh process and decodes 5 steps; the
outputs are compared with stock's.

Every compile: peak allocated, peak reserved, NVML device peak (sampled), host peak RSS, time.
Writes ``results.json`` and ``results.md`` to ``--out`` after every variant.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HF_VARIANTS = {"stock": [], "kv_elide": ["kv_elide"], "const_offload": ["const_offload"],
               "kv_elide+const_offload": ["kv_elide", "const_offload"]}
ET_VARIANTS = {"stock": ([], False), "low_memory": ([], True), "kv_elide": (["kv_elide"], False),
               "kv_elide+const_offload": (["kv_elide", "const_offload"], False)}
OPTIONS = {"kv_elide": {"min_bytes": "1MiB"}, "const_offload": {"min_bytes": "16MiB"}}
STEPS = 5


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


# --- models ---------------------------------------------------------------------------------

def build_gemma4(args):
    import torch
    from executorch.examples.models.gemma4_31b.model import Gemma4_31B, Gemma4_31BConfig, materialize_runtime_buffers

    config = Gemma4_31BConfig(hidden_size=args.hidden, intermediate_size=4 * args.hidden, num_hidden_layers=2,
                              layer_types=["sliding_attention", "full_attention"], max_seq_len=args.ctx)
    torch.manual_seed(0)
    model = Gemma4_31B(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    model.lm_head.weight = model.embed_tokens.weight  # tie_word_embeddings
    model = model.to(torch.bfloat16)
    materialize_runtime_buffers(model, dtype=torch.bfloat16)
    return model.eval(), config


def export_gemma4(model):
    import torch

    with torch.no_grad():  # the decode method, as export.py exports it
        return torch.export.export(model, (torch.tensor([[0]]), torch.tensor([0]), torch.tensor([1.0])), strict=True)


def build_hf(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.integrations.executorch import TorchExportableModuleForDecoderOnlyLM

    config = LlamaConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                         num_hidden_layers=args.layers, num_attention_heads=args.hidden // 128,
                         num_key_value_heads=args.hidden // 128, max_position_embeddings=args.ctx,
                         tie_word_embeddings=False, torch_dtype="bfloat16")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    model.generation_config.cache_implementation = "static"
    return TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=args.ctx).eval()


def export_hf(module):
    import torch

    with torch.no_grad():
        return module.export(input_ids=torch.tensor([[1]]), cache_position=torch.tensor([0]))


def weights_bytes(program) -> int:
    import torch

    tensors = {id(t.untyped_storage()): t.untyped_storage().nbytes()
               for t in [*program.state_dict.values(), *program.constants.values()] if isinstance(t, torch.Tensor)}
    return sum(tensors.values())


# --- workers (one process per variant) -------------------------------------------------------

def measured(fn):
    """Run ``fn`` with every peak measured; returns (result, measurements)."""
    import torch

    from aoti_hooks.tools.harness.measure import Sampler

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with Sampler(timeline=True) as sampler:
        result = fn()
        torch.cuda.synchronize()
    rss_by_phase: dict[str, int] = {}  # where in the compile the host peak happens
    for _, rss, _, _, phase in sampler.samples:
        rss_by_phase[phase] = max(rss_by_phase.get(phase, 0), rss)
    return result, {
        "host_peak_by_phase": rss_by_phase,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_allocated": torch.cuda.max_memory_allocated(),
        "peak_reserved": torch.cuda.max_memory_reserved(),
        "nvml_peak": sampler.device_peak,
        "nvml_baseline": sampler.device_baseline,
        "host_peak": sampler.host_peak,
    }


def worker_hf(args, work: Path) -> dict:
    import torch

    import aoti_hooks

    program = export_hf(build_hf(args))
    plugins = HF_VARIANTS[args.variant]
    package = work / f"{args.variant}.pt2"
    configs = {"aot_inductor.precompile_headers": False}
    user_graph = str(program.graph)
    report = {}

    def compile_stock():
        from torch.export.passes import move_to_device_pass

        return torch._inductor.aoti_compile_and_package(
            move_to_device_pass(program, "cuda:0"), package_path=str(package), inductor_configs=configs)

    def compile_ours():
        with aoti_hooks.session(plugins, target="h100", **{name: OPTIONS[name] for name in plugins}) as session:
            path = aoti_hooks.aoti_compile_and_package(program, str(package), inductor_configs=configs)
        report.update(session.report.as_dict())
        return path

    weights = weights_bytes(program)
    _, numbers = measured(compile_stock if not plugins else compile_ours)
    return {"variant": args.variant, "plugins": plugins, **numbers, "program_bytes": weights,
            "package": str(package), "package_bytes": package.stat().st_size, "report": report,
            "user_graph_unchanged": str(program.graph) == user_graph if plugins else None}


def worker_decode(args, work: Path) -> dict:
    import torch

    runner = torch._inductor.aoti_load_package(str(work / f"{args.variant}.pt2"))
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 32000, (STEPS,), generator=generator)
    outputs = []
    with torch.no_grad():
        for step in range(STEPS):
            out = runner(input_ids=tokens[step].view(1, 1).cuda(), cache_position=torch.tensor([step]).cuda())
            outputs.append(out.float().cpu())
    torch.save(outputs, work / f"{args.variant}.outputs.pt")
    return {"variant": args.variant, "steps": STEPS}


def worker_gemma4(args, work: Path) -> dict:
    import torch._inductor.config as inductor_config
    from executorch.backends.cuda.cuda_backend import CudaBackend
    from executorch.backends.cuda.cuda_partitioner import CudaPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.backend.compile_spec_schema import CompileSpec
    from executorch.exir.passes import MemoryPlanningPass

    import aoti_hooks
    import aoti_hooks.executorch as integration

    inductor_config.coordinate_descent_tuning = False  # export.py's settings
    inductor_config.aot_inductor.compile_wrapper_opt_level = "O0"
    model, _ = build_gemma4(args)
    program = export_gemma4(model)
    del model
    plugins, low_memory = ET_VARIANTS[args.variant]
    specs = [CudaBackend.generate_method_name_compile_spec("decode")]
    if low_memory:
        specs.append(CompileSpec("low_memory_mode", b"ON"))
    if plugins:
        specs += aoti_hooks.compile_specs(plugins, target="h100", **{name: OPTIONS[name] for name in plugins})
    out = work / args.variant
    out.mkdir(parents=True, exist_ok=True)
    weights = weights_bytes(program)

    def lower():
        edge = to_edge_transform_and_lower(
            {"decode": program}, partitioner={"decode": [CudaPartitioner(specs)]},
            compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True))
        et_program = edge.to_executorch(config=ExecutorchBackendConfig(
            extract_delegate_segments=True, do_quant_fusion_and_const_prop=True,
            memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False), emit_mutable_buffer_names=True))
        with open(out / "model.pte", "wb") as f:
            et_program.write_to_file(f)
        et_program.write_tensor_data_to_file(str(out))

    _, numbers = measured(lower)
    ptd = sorted(out.glob("*.ptd"))
    report = integration.reports()["decode"].as_dict() if plugins else {}
    return {"variant": args.variant, "plugins": plugins, "low_memory_mode": low_memory, **numbers,
            "program_bytes": weights, "pte_bytes": (out / "model.pte").stat().st_size,
            "ptd": {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in ptd}, "report": report}


# --- the parent: variants side by side -------------------------------------------------------

def run_worker(kind: str, args, variant: str, work: Path) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor-{variant}-{kind}")}
    if kind == "decode":  # loading an AOTI CUDA package on this image needs the system libstdc++ first
        env["LD_PRELOAD"] = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
    command = [sys.executable, __file__, "--worker", kind, "--variant", variant, "--work", str(work),
               "--model", args.model, "--ctx", str(args.ctx), "--hidden", str(args.hidden), "--layers", str(args.layers)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"variant": variant, "error": (done.stderr or done.stdout)[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def gib(value) -> str:
    return "-" if value is None else f"{value / 2**30:.2f}"


def markdown(results: list[dict], args, command: str) -> str:
    lines = [f"# {args.model}, ctx {args.ctx}", "", f"Command: `{command}`", "",
             "| variant | peak allocated GiB | peak reserved GiB | NVML peak GiB | host peak GiB | s | program GiB | checks | plugin report |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['variant']} | error: {result['error'].splitlines()[-1][:150]} |||||||")
            continue
        report = "; ".join(f"{plugin}: " + ", ".join(f"{k}={len(v) if isinstance(v, list) else v}" for k, v in entry.items())
                           for plugin, entry in result.get("report", {}).items())
        lines.append(f"| {result['variant']} | {gib(result['peak_allocated'])} | {gib(result['peak_reserved'])} | "
                     f"{gib(result['nvml_peak'])} | {gib(result['host_peak'])} | {result['seconds']} | "
                     f"{gib(result['program_bytes'])} | {result.get('checks', '')} | {report} |")
    return "\n".join(lines) + "\n"


def parent(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="aoti-hooks-real-"))
    command = "python3 bench/real_models.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    variants = args.variants.split(",") if args.variants else list(HF_VARIANTS if args.model == "hf-llama" else ET_VARIANTS)
    results: list[dict] = []
    for variant in variants:
        print(f"[{time.strftime('%H:%M:%S')}] {args.model} {variant}: compiling", flush=True)
        result = run_worker("compile", args, variant, work)
        if args.model == "hf-llama" and "error" not in result:
            decoded = run_worker("decode", args, variant, work)
            if "error" in decoded:
                result["checks"] = "load/decode failed: " + decoded["error"].splitlines()[-1][:120]
        results.append(result)
        compare(results, args.model, work)
        (out / "results.json").write_text(json.dumps({"command": command, "results": results}, indent=1))
        (out / "results.md").write_text(markdown(results, args, command))
        print(markdown(results, args, command).splitlines()[-1], flush=True)
    print(markdown(results, args, command))


def compare(results: list[dict], model: str, work: Path) -> None:
    """Fill each result's ``checks`` against stock: outputs over the steps (HF) or the .ptd digests (ExecuTorch)."""
    stock = next((r for r in results if r["variant"] == "stock" and "error" not in r), None)
    if stock is None and not (model == "hf-llama" and (work / "stock.outputs.pt").exists()):
        return  # (a later run over the same --work compares with the stock outputs kept there)
    for result in results:
        if "error" in result or result.get("checks", "").startswith("load"):
            continue
        if model == "hf-llama":
            import torch

            mine, theirs = work / f"{result['variant']}.outputs.pt", work / "stock.outputs.pt"
            if mine.exists() and theirs.exists():
                got, want = torch.load(mine), torch.load(theirs)
                equal = all(torch.equal(a, b) for a, b in zip(got, want))
                worst = max(float((a - b).abs().max()) for a, b in zip(got, want))
                result["checks"] = f"{len(got)} steps {'equal to' if equal else 'differ from'} stock (max abs {worst:.3g})"
        else:
            same = result["ptd"] == stock["ptd"]
            result["checks"] = ".ptd equal to stock" if same else ".ptd differs from stock"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("gemma4-et", "hf-llama"), required=True)
    parser.add_argument("--ctx", type=int, default=65536)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4, help="hf-llama layers (gemma4-et: always sliding + full)")
    parser.add_argument("--variants", default="")
    parser.add_argument("--out")
    parser.add_argument("--work")
    parser.add_argument("--worker", choices=("compile", "decode"))
    parser.add_argument("--variant")
    args = parser.parse_args()
    if args.worker is None:
        if not args.out:
            parser.error("--out is required")
        parent(args)
        return
    work = Path(args.work)
    if args.worker == "decode":
        result = worker_decode(args, work)
    elif args.model == "hf-llama":
        result = worker_hf(args, work)
    else:
        result = worker_gemma4(args, work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
