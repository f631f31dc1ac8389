"""What of the lowering outlives it, on the CPU: host RSS and weak references after an ExecuTorch lowering.

    python3 bench/executorch_retained_cpu.py stock     # no plugins
    python3 bench/executorch_retained_cpu.py offload   # kv_elide + const_offload, host values in memory

Lowers the bench's Gemma 4 31B (2 layers, hidden 1024, ctx 16384, bf16; bench/real_models.py) through the
tests' CPU ``AotiBackend`` and prints host RSS before, after the lowering (after a garbage collection)
and after ``to_executorch``; with plugins, whether the session, the program ExecuTorch gave it and the
moved program are still alive then. Asked by the GPU's end-of-lowering host peak (results/spill_h200.md).
"""
import gc
import os
import sys
import types
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests", "executorch"), os.path.join(HERE, "..", "tests")]
mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode not in ("stock", "offload"):
    sys.exit("usage: executorch_retained_cpu.py stock|offload")

import real_models  # noqa: E402
from et_helpers import BACKEND, method_spec  # noqa: E402
from executorch.backends.aoti.aoti_partitioner import AotiPartitioner  # noqa: E402
from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower  # noqa: E402

import aoti_hooks  # noqa: E402
import aoti_hooks.executorch  # noqa: E402,F401
from aoti_hooks.demo.measure import host_rss  # noqa: E402
from aoti_hooks.seams import executorch as seam  # noqa: E402

model, _ = real_models.build_gemma4(types.SimpleNamespace(hidden=1024, ctx=16384, layers=2))
program = real_models.export_gemma4(model)
del model
gc.collect()
specs = [method_spec("decode")] + (aoti_hooks.compile_specs(["kv_elide", "const_offload"], target="local")
                                   if mode == "offload" else [])
refs = {}
original = seam._SessionBackend.move_program_to_device


def traced(self, edge_program, *args):
    refs["session"], refs["given program"] = weakref.ref(self._session), weakref.ref(edge_program)
    moved = original(self, edge_program, *args)
    refs["moved program"] = weakref.ref(moved)
    return moved


seam._SessionBackend.move_program_to_device = traced
print(f"{mode}: host RSS before {host_rss() / 2**30:.2f} GiB")
edge = to_edge_transform_and_lower({"decode": program}, partitioner={"decode": [AotiPartitioner(BACKEND, specs)]},
                                   compile_config=EdgeCompileConfig(_check_ir_validity=False))
gc.collect()
alive = {name: ref() is not None for name, ref in refs.items()}
print(f"{mode}: after the lowering {host_rss() / 2**30:.2f} GiB; still alive: {alive or 'n/a (no plugins)'}")
buffer = edge.to_executorch().buffer
gc.collect()
print(f"{mode}: after to_executorch {host_rss() / 2**30:.2f} GiB (.pte {len(buffer) / 2**30:.2f} GiB)")
