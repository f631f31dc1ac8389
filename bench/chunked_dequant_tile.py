"""chunked_dequant's modes on a GPU against ExecuTorch's one-shot dequant-matmuls at Gemma 4 31B's
shapes (issue 19): numerics, transient and time of `mode=tile` and of `mode=rows` at several budgets,
and the chunk size below which rows stop being bit-identical to one-shot.

    source bench/gpu_setup.sh
    python3 bench/chunked_dequant_tile.py --out $OUT/tile --ops int4,int5,int6,int8 \
        --budgets 64MiB,256MiB,1GiB --floor 1024,2048,4096,5888,8192,12288,16384,24064,32768

For each op, (rows N, columns K) of the lm_head and the MLPs, group size 32 and 128 and M in 1, 4,
128, 2048 (bf16 activations; seeded random codes, scales and steps in the op's ExecuTorch layout,
`tile.example_inputs`): ExecuTorch's eager implementation (the op's CUDA kernel, read through the
plugin's table; its own built-in chunking as installed) is the one-shot reference. Against it, the
tile kernel and the rows chunker at each budget (the plugin's own `Chunker`): max abs error, cosine,
whether bit-identical, the memory each call allocates beyond its inputs and output
(``max_memory_allocated``) and its time (CUDA events, median of 3 after one warm-up). ``--floor``
chunks the lm_head by exactly that many rows per chunk (a budget of rows x bytes per row) and records
whether the output is bit-identical to one-shot, for each op and M. ``--device cpu`` with
``TRITON_INTERPRET=1`` runs the same code at ``--tiny`` shapes on the CPU (a smoke test: float32
activations, since the interpreter computes in numpy, which has no bf16; no memory figures, host
timings).
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

SHAPES = {"lm_head": (262144, 5376), "mlp_up": (21504, 5376), "mlp_down": (5376, 21504)}
TINY = {"lm_head": (2048, 512), "mlp_up": (512, 512), "mlp_down": (256, 1024)}


def measured(fn, args, device):
    """(output, median ms of 3 after a warm-up, bytes allocated beyond inputs and output)."""
    cuda = device.startswith("cuda")
    fn(*args)
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times, transient = [], None
    for _ in range(3):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn(*args)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
            transient = max(torch.cuda.max_memory_allocated() - base - out.numel() * out.element_size(), 0)
        else:
            began = time.perf_counter()
            out = fn(*args)
            times.append((time.perf_counter() - began) * 1000)
        del out
    return fn(*args), sorted(times)[1], transient


def compared(got, want) -> dict:
    diff = got.float() - want.float()
    return {"max_abs_error": diff.abs().max().item(), "max_abs_output": want.float().abs().max().item(),
            "cosine": torch.nn.functional.cosine_similarity(got.float().reshape(-1), want.float().reshape(-1), dim=0).item(),
            "bit_identical": bool(torch.equal(got, want))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--ops", default="int4", help="comma-separated: int4, int5, int6, int8")
    parser.add_argument("--m", default="1,4,128,2048")
    parser.add_argument("--groups", default="32,128")
    parser.add_argument("--budgets", default="", help="mode=rows budgets, e.g. 64MiB,256MiB,1GiB")
    parser.add_argument("--floor", default="", help="rows per chunk to test for bit-identity on the lm_head")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    import executorch.backends.cuda.quantize_op_dispatch  # noqa: F401  (defines ExecuTorch's CUDA ops)
    from aoti_hooks_chunked_dequant import Chunker, executorch_impl, resolved_entries, rows_per_chunk
    from aoti_hooks_chunked_dequant.tile import TILE_KERNELS, example_inputs

    from aoti_hooks import AotiHooksError, Report, parse_size
    from aoti_hooks.seams.ops import argument_names

    resolved = {entry.name: (op, entry, impl) for op, entry, impl in resolved_entries()}
    shapes = TINY if args.tiny else SHAPES
    budgets = [(text, parse_size(text)) for text in args.budgets.split(",") if text]
    floor = [int(rows) for rows in args.floor.split(",") if rows]
    rows_out = []

    def emit(row):
        rows_out.append(row)
        print(json.dumps(row), flush=True)

    for short in args.ops.split(","):
        op_name = f"executorch_cuda::{short}_plain_mm.default"
        op, entry, impl = resolved[op_name]
        one_shot, tile, names = executorch_impl(op_name), TILE_KERNELS[op_name], tuple(argument_names(op))

        def chunked(budget):
            return lambda *call: Chunker(budget, Report(), "chunked_dequant").run(entry, impl, names, call, {})

        for shape, (n, k) in shapes.items():
            for group in map(int, args.groups.split(",")):
                for m in map(int, args.m.split(",")):
                    inputs = example_inputs(op_name, n, k, group, m, device=args.device)
                    if not args.device.startswith("cuda"):  # Triton's interpreter computes in numpy: no bf16
                        inputs = (inputs[0].float(), *inputs[1:])
                    bytes_per_row = int(entry.bytes_per_row(dict(zip(names, inputs))))
                    want, one_ms, one_bytes = measured(one_shot, inputs, args.device)
                    base = {"op": short, "shape": shape, "N": n, "K": k, "group": group, "M": m,
                            "one_shot_ms": one_ms, "one_shot_transient": one_bytes, "bytes_per_row": bytes_per_row}
                    got, ms, transient = measured(tile, inputs, args.device)
                    emit({**base, "variant": "tile", "ms": ms, "transient": transient, **compared(got, want)})
                    for label, budget in budgets:
                        try:
                            rows = min(n, rows_per_chunk(entry, bytes_per_row, budget))
                        except AotiHooksError:
                            continue  # below one chunk: the plugin refuses it in one sentence
                        got, ms, transient = measured(chunked(budget), inputs, args.device)
                        emit({**base, "variant": f"rows {label}", "ms": ms, "transient": transient,
                              "rows_per_chunk": rows, **compared(got, want)})
                    if shape == "lm_head":
                        for rows in floor:
                            got = chunked(rows * bytes_per_row)(*inputs)
                            emit({**base, "variant": f"floor {rows} rows", "rows_per_chunk": rows, **compared(got, want)})
                    del inputs, want, got
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu (Triton's interpreter)"
    (folder / "results.json").write_text(json.dumps({"command": shlex.join(sys.argv), "gpu": gpu,
                                                     "torch": torch.__version__, "rows": rows_out}, indent=1))


if __name__ == "__main__":
    main()
