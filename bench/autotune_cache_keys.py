"""Inductor's autotune cache and a plugin that drops compiled configs (issue 15, part 7), on a GPU.

    source bench/gpu_setup.sh
    python3 bench/autotune_cache_keys.py --target rtx4090 --out $OUT/cache_keys

A ``triton.autotune`` matmul with two configs, one whose tile needs ~192 KiB of shared memory
per block (fits an H100, not an RTX 4090) and one small, is called through a ``triton_op`` and
registered with sdpa_configs (no extra candidates: only the shared-memory fit changes what is
baked, so the generated source is the same as stock's). Each compile runs in its own process;
a sequence shares one ``TORCHINDUCTOR_CACHE_DIR``:

- cold: ``stock`` alone, ``sdpa_configs`` alone (what each should bake);
- warm: ``stock`` then ``sdpa_configs``, and ``sdpa_configs`` then ``stock``;
- unkeyed: the same two warm sequences with the session's cache key switched off
  (``Hooks.generated_code_key`` answering None), as before the fix.

For every compile: the shared memory the package's C++ wrapper bakes for the kernel, whether
the package loads and matches ``torch.mm``, and the ``.best_config`` files in the directory.
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
import zipfile
from pathlib import Path

import torch

SIZE = 2048


def build_kernel():
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton

    @triton.autotune(
        configs=[
            triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64}, num_warps=8, num_stages=4),
            triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=2),
        ],
        key=["M", "N", "K"],
    )
    @triton.jit
    def bench_mm_kernel(a, b, c, M, N, K, sam, sak, sbk, sbn, scm, scn,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        blocks_n = tl.cdiv(N, BLOCK_N)
        rm = (pid // blocks_n) * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = (pid % blocks_n) * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, K, BLOCK_K):
            x = tl.load(a + rm[:, None] * sam + (k + rk)[None, :] * sak)
            y = tl.load(b + (k + rk)[:, None] * sbk + rn[None, :] * sbn)
            acc += tl.dot(x, y)
        tl.store(c + rm[:, None] * scm + rn[None, :] * scn, acc.to(c.dtype.element_ty))

    @triton_op("aoti_hooks_bench::mm", mutates_args=())
    def bench_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        M, K = a.shape
        N = b.shape[1]
        c = a.new_empty(M, N)

        def grid(meta):
            return (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)

        wrap_triton(bench_mm_kernel)[grid](a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                                           c.stride(0), c.stride(1))
        return c

    return bench_mm_kernel


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(SIZE, SIZE, device="cuda", dtype=torch.bfloat16) / SIZE**0.5)

    def forward(self, x):
        return torch.ops.aoti_hooks_bench.mm(x, self.w)


def baked_shared(package):
    """[shared bytes] the package's generated C++ wrapper passes to loadKernel for the bench kernel."""
    found = []
    with zipfile.ZipFile(package) as archive:
        for name in archive.namelist():
            if name.endswith(".cpp"):
                text = archive.read(name).decode(errors="replace")
                found += [int(shared) for kernel, shared in re.findall(r'loadKernel\([^;]*?"([^"]+)",\s*(\d+)', text)
                          if "bench_mm" in kernel]
    return sorted(set(found))


def worker(variant, target, package):
    import aoti_hooks_sdpa_configs as sdpa_configs

    import aoti_hooks
    from aoti_hooks.core.hooks import Hooks

    kernel = build_kernel()
    if variant.endswith("unkeyed"):
        Hooks.generated_code_key = lambda self: None  # as before the fix: the cache cannot tell
    torch.manual_seed(0)
    model = Model().eval().requires_grad_(False)
    x = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.bfloat16)
    program = torch.export.export(model, (x,))
    result = {"variant": variant}
    try:
        if variant.startswith("sdpa_configs"):
            sdpa_configs.register(kernel, name="bench_mm",
                                  check=lambda config: sdpa_configs.Verdict(True, "bench kernel: checked against torch.mm below"))
            with aoti_hooks.session(["sdpa_configs"], target=target, sdpa_configs={"kernels": "bench_mm"}) as session:
                aoti_hooks.aoti_compile_and_package(program, package)
            result["report"] = {key: value for key, value in session.report.get("sdpa_configs").items() if "bench_mm" in key}
        else:
            torch._inductor.aoti_compile_and_package(program, package_path=package)
    except Exception as error:  # noqa: BLE001 - the table shows what failed
        result["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        return result
    result["baked_shared"] = baked_shared(package)
    runner = torch._inductor.aoti_load_package(package)
    got, want = runner(x), x @ model.w
    result["max_error_vs_mm"] = (got.float() - want.float()).abs().max().item()
    return result


SEQUENCES = {
    "cold stock": ["stock"],
    "cold sdpa_configs": ["sdpa_configs"],
    "warm stock→sdpa_configs": ["stock", "sdpa_configs"],
    "warm sdpa_configs→stock": ["sdpa_configs", "stock"],
    "unkeyed stock→sdpa_configs": ["stock", "sdpa_configs-unkeyed"],
    "unkeyed sdpa_configs→stock": ["sdpa_configs-unkeyed", "stock"],
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="rtx4090")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sequences", default=",".join(SEQUENCES), help="which sequences to run, comma-separated")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--package", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.target, args.package)))
        return
    from aoti_hooks.core.target import parse_target

    budget = parse_target(args.target).smem
    work = Path(tempfile.mkdtemp(prefix="cache-keys-"))
    runs = []
    for number, (sequence, variants) in enumerate(SEQUENCES.items()):
        if sequence not in args.sequences.split(","):
            continue
        cache = work / f"cache{number}"
        for step, variant in enumerate(variants):
            package = str(work / f"{number}-{step}-{variant}.pt2")
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
            done = subprocess.run([sys.executable, __file__, "--target", args.target, "--out", str(folder),
                                   "--worker", variant, "--package", package], env=env, capture_output=True, text=True)
            (folder / f"{number}-{step}-{variant}.log").write_text(done.stdout + done.stderr)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            result = json.loads(lines[-1][7:]) if lines else {"variant": variant, "error": (done.stdout + done.stderr)[-600:]}
            result.update(sequence=sequence, step=step,
                          best_config_files=len(glob.glob(str(cache / "**" / "*.best_config"), recursive=True)))
            runs.append(result)
            print(json.dumps(result)[:1500], flush=True)
            (folder / "results.json").write_text(json.dumps({"runs": runs}, indent=1))
    (folder / "results.json").write_text(json.dumps({"command": " ".join(map(shlex.quote, sys.argv)), "target": args.target,
                                                     "budget": budget, "runs": runs}, indent=1))
    rows = [f"| {r['sequence']} | {r['step'] + 1}: {r['variant']} | {r.get('baked_shared', '-')} | "
            f"{r.get('max_error_vs_mm', '-')} | {r['best_config_files']} | {r.get('error', '')[:160]} |" for r in runs]
    table = ("| sequence (one cache dir) | compile | baked shared B | max error vs mm | .best_config files | error |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows))
    (folder / "results.md").write_text(f"target {args.target}: {budget} B per block\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
