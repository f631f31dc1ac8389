"""ExecuTorch's int4 lm_head dequant-matmul run eagerly, as AOTI runs it while autotuning.

    source bench/gpu_setup.sh
    python3 bench/chunked_dequant_eager.py --out $OUT/eager [--rows 262144 --cols 5376]

One ``CudaCoalescedInt4Tensor`` weight (N x K, group 32, synthetic codes) and a decode
activation [1, K] bf16. Each variant runs the op ``executorch_cuda::int4_plain_mm`` on the
GPU and is measured from an empty allocator: peak allocated above the inputs, peak reserved,
the NVML device peak (20 ms samples, so a short transient can be missed there), the time
(median of 3), and whether the output equals the one-shot output bit for bit.

- one-shot: ExecuTorch's implementation with its built-in row chunking switched off
  (``int4_dispatch._DEQUANT_N_THRESHOLD`` raised for the run; this script's only use of a
  private ExecuTorch symbol, to show what the op costs without any chunking);
- executorch built-in: the op as installed (rows > 65536 -> chunks of 32768 rows), called
  directly and through ``F.linear`` on the tensor subclass;
- chunked_dequant at several ``max_transient`` budgets, inside a session's compile context.
"""

import argparse
import json
import shlex
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

import aoti_hooks
from aoti_hooks.core.text import format_bytes, table
from aoti_hooks.hosts.lifecycle import enter_compile_contexts
from aoti_hooks.tools.harness.measure import Sampler

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=262144)
parser.add_argument("--cols", type=int, default=5376)
parser.add_argument("--group", type=int, default=32)
parser.add_argument("--budgets", default="1GiB,256MiB,64MiB")
parser.add_argument("--out", required=True)
args = parser.parse_args()

import executorch.backends.cuda.quantize_op_dispatch  # noqa: E402,F401
from executorch.backends.cuda.coalesced_int4_tensor import CudaCoalescedInt4Tensor  # noqa: E402
from executorch.backends.cuda.quantize_op_dispatch import int4_dispatch  # noqa: E402

N, K, gs = args.rows, args.cols, args.group
gen = torch.Generator(device="cuda").manual_seed(0)


def codes(*shape):
    return torch.randint(0, 256, shape, dtype=torch.uint8, device="cuda", generator=gen)


def steps(*shape):
    return (torch.rand(shape, device="cuda", generator=gen) * 0.01).to(torch.float16)


qdata, scale, zero = codes(N, K // 2), codes(N, K // gs), codes(N, K // gs)
scale_step, zero_step = steps(N, K // 256), steps(N, K // 256)
weight = CudaCoalescedInt4Tensor(qdata, scale, scale_step, zero, zero_step, [1, gs], torch.Size([N, K]))
x = torch.randn(1, K, dtype=torch.bfloat16, device="cuda", generator=gen)
op = torch.ops.executorch_cuda.int4_plain_mm.default


def call_op():
    return op(x, qdata, scale, scale_step, zero, zero_step, gs)


@contextmanager
def no_builtin_chunking():
    saved = int4_dispatch._DEQUANT_N_THRESHOLD
    int4_dispatch._DEQUANT_N_THRESHOLD = 1 << 62
    try:
        yield
    finally:
        int4_dispatch._DEQUANT_N_THRESHOLD = saved


@contextmanager
def plugin(budget):
    session = aoti_hooks.session(["chunked_dequant"], target="local", chunked_dequant={"max_transient": budget})
    with session, ExitStack() as stack:
        enter_compile_contexts(session, stack)
        yield session


def measure(name, fn, context):
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times, report = [], {}
    with Sampler() as sampler:
        for _ in range(3):
            with context() as session:
                torch.cuda.synchronize()
                start = time.perf_counter()
                out = fn()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
                if session is not None:
                    report = session.report.get("chunked_dequant")
    return {"variant": name, "peak_allocated_above_inputs": torch.cuda.max_memory_allocated() - base,
            "peak_reserved": torch.cuda.max_memory_reserved(), "nvml_peak": sampler.device_peak,
            "nvml_baseline": sampler.device_baseline, "median_s": statistics.median(times), "report": report,
            "out": out}


@contextmanager
def nothing():
    yield None


input_bytes = sum(t.numel() * t.element_size() for t in (qdata, scale, zero, scale_step, zero_step, x))
runs = [measure("one-shot (no chunking)", call_op, no_builtin_chunking),
        measure("executorch built-in (32768-row chunks)", call_op, nothing),
        measure("executorch built-in via F.linear(x, CudaCoalescedInt4Tensor)", lambda: F.linear(x, weight), nothing)]
for budget in args.budgets.split(","):
    runs.append(measure(f"chunked_dequant max_transient={budget}", call_op, lambda b=budget: plugin(b)))
reference = runs[0]["out"]
for run in runs:
    out = run.pop("out")
    run["bitwise_equal_to_one_shot"] = bool(torch.equal(out, reference))
    run["max_abs_diff"] = float((out.float() - reference.float()).abs().max())

folder = Path(args.out)
folder.mkdir(parents=True, exist_ok=True)
results = {"command": shlex.join(["python3", *sys.argv]), "device": torch.cuda.get_device_name(),
           "torch": torch.__version__, "rows": N, "cols": K, "group_size": gs, "input_bytes": input_bytes, "runs": runs}
(folder / "eager.json").write_text(json.dumps(results, indent=1))
rows = [[run["variant"], format_bytes(run["peak_allocated_above_inputs"]), format_bytes(run["peak_reserved"]),
         format_bytes(run["nvml_peak"] or 0), f"{run['median_s'] * 1000:.1f} ms",
         "yes" if run["bitwise_equal_to_one_shot"] else f"no ({run['max_abs_diff']:.3g})",
         "; ".join(f"{k}={v}" for k, v in run["report"].items() if k in ("int4_plain_mm.default", "peak_transient_bytes"))]
        for run in runs]
text = table(["variant", "peak allocated above inputs", "peak reserved", "NVML peak", "time", "= one-shot",
              "plugin report"], rows)
(folder / "eager.md").write_text(text + "\n")
print(text)
