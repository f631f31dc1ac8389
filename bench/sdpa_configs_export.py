"""sdpa_configs on a GPU: export an attention decoder whose SDPA runs on ExecuTorch's Triton kernel,
stock and with sdpa_configs for a target, and show what got baked.

    source bench/gpu_setup.sh
    python3 bench/sdpa_configs_export.py --target rtx5090 --out $OUT/sdpa_export

Variants (each in its own process, with its own Inductor cache):
- ``et-stock`` / ``et-sdpa_configs``: ``F.scaled_dot_product_attention`` lowered through
  ExecuTorch's CudaBackend (its pass swaps in ``triton::sdpa``);
- ``aoti-stock`` / ``aoti-sdpa_configs``: the model calling ``torch.ops.triton.sdpa`` itself,
  through ``aoti_hooks.aoti_compile_and_package``;
- ``compiled-sdpa_configs``: the same model through ``torch.compile`` inside a session (the same
  hooks): its outputs are compared with eager, since AOTI CUDA packages do not load on the
  GPU image we have (a one-layer probe, in git history); the AOTI package is tried in a fresh process too.

For every variant the generated C++ wrapper's ``loadKernel(..., <shared bytes>, ...)`` lines
give each baked Triton kernel's shared memory per block; the table lists the SDPA kernels'
and the largest of all kernels against the target's budget.
"""
import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

LAYERS = ((16, 8, 256), (16, 2, 512))  # (query heads, KV heads, head dim): Gemma4-31B's two kinds
DIM, LENGTH = 1024, 128


class Attention(nn.Module):
    def __init__(self, heads, kv_heads, head_dim, direct):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.direct = heads, kv_heads, head_dim, direct
        self.wq = nn.Linear(DIM, heads * head_dim, bias=False)
        self.wk = nn.Linear(DIM, kv_heads * head_dim, bias=False)
        self.wv = nn.Linear(DIM, kv_heads * head_dim, bias=False)
        self.wo = nn.Linear(heads * head_dim, DIM, bias=False)

    def forward(self, x, mask):
        length = x.shape[1]
        q = self.wq(x).view(1, length, self.heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(1, length, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(1, length, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.direct:
            out = torch.ops.triton.sdpa(q, k, v, mask, 0.0, False, 0.0, True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.wo(out.transpose(1, 2).reshape(1, length, -1))


class Decoder(nn.Module):
    def __init__(self, direct):
        super().__init__()
        self.layers = nn.ModuleList(Attention(*shape, direct) for shape in LAYERS)

    def forward(self, x, mask):
        for layer in self.layers:
            x = x + layer(x, mask)
        return x


def build(direct):
    torch.manual_seed(0)
    model = Decoder(direct).to("cuda", torch.bfloat16).eval().requires_grad_(False)
    for parameter in model.parameters():
        nn.init.normal_(parameter, std=0.02)
    return model


def inputs(seed):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(1, LENGTH, DIM, device="cuda", dtype=torch.bfloat16, generator=generator)
    mask = torch.ones(LENGTH, LENGTH, device="cuda", dtype=torch.bool).tril().view(1, 1, LENGTH, LENGTH)
    return x, mask


def baked_kernels(cache_dir):
    """Sorted unique [kernel name, shared bytes] of every generated C++ wrapper's loadKernel calls
    (one kernel name can be baked more than once: one per specialization, e.g. per head dim)."""
    found = set()
    for path in glob.glob(os.path.join(cache_dir, "**", "*.cpp"), recursive=True):
        text = Path(path).read_text(errors="replace")
        for name, shared in re.findall(r'loadKernel\([^;]*?"([^"]+)",\s*(\d+)', text):
            found.add((name, int(shared)))
    return sorted(found)


def compare(got, want):
    got, want = got.float().reshape(-1), want.float().reshape(-1)
    return F.cosine_similarity(got, want, dim=0).item(), (got - want).abs().max().item()


def worker(variant, target, folder):
    import aoti_hooks

    backend, plugins = variant.split("-", 1)
    plugins = [] if plugins == "stock" else [plugins]
    result = {"variant": variant}
    started = time.monotonic()
    if backend == "et":
        from executorch.backends.cuda.cuda_backend import CudaBackend
        from executorch.backends.cuda.cuda_partitioner import CudaPartitioner
        from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

        import aoti_hooks.executorch  # noqa: F401  (turns the integration on)

        model = build(direct=False)
        program = torch.export.export(model, inputs(0))
        specs = [CudaBackend.generate_method_name_compile_spec("forward")]
        if plugins:
            specs += aoti_hooks.compile_specs(plugins, target=target)
        edge = to_edge_transform_and_lower(program, partitioner=[CudaPartitioner(specs)],
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False))
        executorch_program = edge.to_executorch()
        Path(folder, f"{variant}.pte").write_bytes(executorch_program.buffer)
        report = aoti_hooks.executorch.reports().get("forward") if plugins else None
        result["report"] = report.as_dict() if report is not None else {}
    elif backend == "aoti":
        import executorch.backends.cuda.triton.kernels  # noqa: F401  (registers torch.ops.triton.*)

        model = build(direct=True)
        program = torch.export.export(model, inputs(0))
        package = str(Path(folder, f"{variant}.pt2"))
        if plugins:
            with aoti_hooks.session(plugins, target=target) as session:
                aoti_hooks.aoti_compile_and_package(program, package)
            result["report"] = session.report.as_dict()
        else:
            torch._inductor.aoti_compile_and_package(program, package_path=package)
        result["package"] = package
    else:  # compiled: torch.compile inside a session, outputs against eager
        from contextlib import ExitStack

        import executorch.backends.cuda.triton.kernels  # noqa: F401

        from aoti_hooks.hosts.lifecycle import enter_compile_contexts

        model = build(direct=True)
        eager = [model(*inputs(seed)) for seed in range(3)]
        with aoti_hooks.session(plugins, target=target) as session, ExitStack() as stack:
            enter_compile_contexts(session, stack)
            compiled = torch.compile(model)
            got = [compiled(*inputs(seed)) for seed in range(3)]
        result["report"] = session.report.as_dict()
        result["against_eager"] = [compare(g, e) for g, e in zip(got, eager)]
    result["seconds"] = round(time.monotonic() - started, 1)
    result["baked"] = baked_kernels(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    return result


def load_and_run(package):
    """In a fresh process: the AOTI package's outputs against eager (or why it could not run)."""
    import executorch.backends.cuda.triton.kernels  # noqa: F401

    runner = torch._inductor.aoti_load_package(package)
    model = build(direct=True)
    return [compare(runner(*inputs(seed)), model(*inputs(seed))) for seed in range(3)]


def _outputs(result):
    checks = result.get("against_eager") or result.get("package_against_eager")
    if isinstance(checks, list):
        return "; ".join(f"cos {cosine:.5f} err {error:.4f}" for cosine, error in checks)
    return f"package did not run ({checks})" if checks else "-"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="rtx5090")
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", default="et-stock,et-sdpa_configs,aoti-stock,aoti-sdpa_configs,compiled-sdpa_configs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.target, folder)))
        return
    if args.load:
        print("RESULT " + json.dumps(load_and_run(args.load)))
        return
    from aoti_hooks.core.target import parse_target

    budget = parse_target(args.target).smem
    work = Path(tempfile.mkdtemp(prefix="sdpa-configs-export-"))
    results = []
    for variant in args.variants.split(","):
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / variant)}
        done = subprocess.run([sys.executable, __file__, "--target", args.target, "--out", str(folder),
                               "--worker", variant], env=env, capture_output=True, text=True)
        (folder / f"{variant}.log").write_text(done.stdout + done.stderr)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        result = json.loads(lines[-1][7:]) if lines else {"variant": variant, "error": (done.stdout + done.stderr)[-1500:]}
        if "package" in result:
            loaded = subprocess.run([sys.executable, __file__, "--out", str(folder), "--load", result["package"]],
                                    capture_output=True, text=True, env=env)
            found = [line for line in loaded.stdout.splitlines() if line.startswith("RESULT ")]
            result["package_against_eager"] = json.loads(found[-1][7:]) if found else f"exit {loaded.returncode}"
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "report"})[:2000], flush=True)
        (folder / "results.json").write_text(json.dumps({"command": " ".join(map(shlex.quote, sys.argv)), "target": args.target,
                                                         "budget": budget, "runs": results}, indent=1))
    rows = []
    for r in results:
        baked = r.get("baked", [])
        sdpa = [(name, shared) for name, shared in baked if "sdpa" in name]
        largest = max((shared for _, shared in baked), default=None)
        rows.append(f"| {r['variant']} | {r.get('seconds', '-')} | "
                    + (", ".join(f"`{n}` {s}" for n, s in sdpa) or r.get("error", "-")[:200]).replace("\n", " ")
                    + f" | {'yes' if sdpa and max(s for _, s in sdpa) <= budget else 'NO' if sdpa else '-'}"
                    + f" | {largest if largest is not None else '-'} | "
                    + _outputs(r) + " |")
    table = ("| variant | compile s | baked SDPA kernels: shared B | SDPA ≤ budget | largest baked kernel B (any) | outputs vs eager |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows))
    (folder / "results.md").write_text(f"target {args.target}: {budget} B per block\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
