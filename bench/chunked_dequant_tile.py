"""chunked_dequant mode=tile on a GPU: the fused int4 tile kernel against ExecuTorch's one-shot
dequant-matmul at Gemma 4 31B's shapes (issue 19, numerics and transient).

    source bench/gpu_setup.sh
    python3 bench/chunked_dequant_tile.py --out $OUT/tile

For each (rows N, columns K) of the lm_head and the MLPs, group size 32 and 128 and M in 1, 4,
128, 2048 (bf16 activations, seeded random int4 codes, scale/zero codes and fp16 steps in
ExecuTorch's coalesced layout): max abs error and cosine of the tile kernel against ExecuTorch's
eager implementation (the op's CUDA kernel, which calls ``_dequant_matmul``, read through the
plugin's table; unchunked below its 65536-row threshold, its own 32768-row chunks above), the memory each call allocates beyond its inputs and output
(``max_memory_allocated``), and its time (CUDA events, median of 3 after one warm-up).
"""
import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

SHAPES = {"lm_head": (262144, 5376), "mlp_up": (21504, 5376), "mlp_down": (5376, 21504)}


def case(n, k, group, m, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    u8 = lambda *shape: torch.randint(0, 256, shape, dtype=torch.uint8, device="cuda", generator=g)
    steps = lambda: (torch.rand(n, k // 256, device="cuda", generator=g) * 0.01).to(torch.float16)
    x = torch.randn(m, k, device="cuda", generator=g).to(torch.bfloat16)
    return x, u8(n, k // 2), u8(n, k // group), steps(), u8(n, k // group), steps(), group


def measured(fn, args):
    fn(*args)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn(*args)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
        transient = torch.cuda.max_memory_allocated() - base - out.numel() * out.element_size()
        del out
    return fn(*args), sorted(times)[1], max(transient, 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--m", default="1,4,128,2048")
    args = parser.parse_args()
    import executorch.backends.cuda.quantize_op_dispatch  # noqa: F401  (defines ExecuTorch's CUDA ops)
    from aoti_hooks_chunked_dequant import executorch_impl
    from aoti_hooks_chunked_dequant.tile import INT4_OP, int4_tile_mm

    one_shot = executorch_impl(INT4_OP)  # ExecuTorch's CUDA kernel of the op: its _dequant_matmul

    rows = []
    for name, (n, k) in SHAPES.items():
        for group in (32, 128):
            for m in map(int, args.m.split(",")):
                inputs = case(n, k, group, m)
                want, one_ms, one_bytes = measured(one_shot, inputs)
                got, tile_ms, tile_bytes = measured(int4_tile_mm, inputs)
                diff = (got.float() - want.float())
                cosine = torch.nn.functional.cosine_similarity(got.float().reshape(-1), want.float().reshape(-1), dim=0).item()
                row = {"shape": name, "N": n, "K": k, "group": group, "M": m, "max_abs_error": diff.abs().max().item(),
                       "max_abs_output": want.float().abs().max().item(), "cosine": cosine,
                       "one_shot_ms": one_ms, "tile_ms": tile_ms, "one_shot_transient": one_bytes,
                       "tile_transient": tile_bytes}
                rows.append(row)
                print(json.dumps(row), flush=True)
                del inputs, want, got, diff
                torch.cuda.empty_cache()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"command": shlex.join(sys.argv), "gpu": torch.cuda.get_device_name(),
                                                     "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
