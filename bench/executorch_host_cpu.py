"""Host RSS around the core's move in an ExecuTorch method, on the CPU (no GPU needed).

    python3 bench/executorch_host_cpu.py --mode inplace   # as shipped: ExecuTorch's private copy moved in place
    python3 bench/executorch_host_cpu.py --mode copy      # as before: a copy of that copy moved
    python3 bench/executorch_host_cpu.py --mode stock     # no plugins
    python3 bench/executorch_host_cpu.py --mode offload   # kv_elide + const_offload, host values in memory
    python3 bench/executorch_host_cpu.py --mode spill     # kv_elide + const_offload spill=disk (files in a temp folder)

Lowers ExecuTorch's Gemma 4 31B at 2 layers (sliding + full), hidden 1024, ctx 65536 or ``--ctx``, bf16
(`aoti_hooks.tools.models.et_gemma4`)
through the tests' CPU ``AotiBackend`` with kv_elide (and const_offload), and prints host RSS just before the move and
when the compile starts, right after it (after a garbage collection; read by a probe plugin) and the lowering's host peak; then, once the lowering and its
``to_executorch`` are done (after a garbage collection), host RSS (``after_lowering``) and whether the
session, the program ExecuTorch gave it and the moved program are still alive (``alive``; empty with no plugins).
"""
import argparse
import contextlib
import gc
import json
import os
import sys
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests", "support")]

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=("inplace", "copy", "stock", "offload", "spill"), required=True)
parser.add_argument("--ctx", type=int, default=65536)
given = parser.parse_args()
mode = given.mode

from et_helpers import lower, method_spec  # noqa: E402

import aoti_hooks  # noqa: E402
import aoti_hooks.executorch  # noqa: E402,F401
from aoti_hooks.plugin import hookimpl  # noqa: E402
from aoti_hooks.tools.harness.measure import Sampler, host_rss  # noqa: E402
from aoti_hooks.tools.models import et_gemma4  # noqa: E402

shape = et_gemma4.Shape(layers=2, ctx=given.ctx, weights="bf16", hidden=1024, full_last=True)
model, _ = et_gemma4.build(shape, et_gemma4.seeded_weights(shape))
program = et_gemma4.export_decode(model)
del model
gc.collect()
import tempfile  # noqa: E402

plugins = {"stock": [], "offload": ["kv_elide", "const_offload"], "spill": ["kv_elide", "const_offload"]}.get(mode, ["kv_elide"])
options = {"const_offload": {"spill": "disk", "spill_dir": tempfile.mkdtemp()}} if mode == "spill" else {}
around_move = {}
alive = {}  # weak references to what one lowering of ours holds


class Probe:
    """Host RSS around the core's move, read through the hooks: before it (first to be asked) and when
    the compile starts (right after it); ``copy`` makes the program ExecuTorch gave look like the user's."""

    @hookimpl(tryfirst=True)
    def move_program_to_device(self, program, session):
        alive["session"], alive["given program"] = weakref.ref(session), weakref.ref(program)
        if mode == "copy":  # the behaviour before: ExecuTorch's copy is copied again, not moved in place
            session.program_is_private = False
        around_move["before"] = host_rss()

    @hookimpl
    def compile_context(self, session):
        alive["moved program"] = weakref.ref(session.program)
        gc.collect()
        around_move["after"] = host_rss()
        return contextlib.nullcontext()


if plugins:
    aoti_hooks.register_plugin("probe", Probe())
specs = [method_spec("decode")] + (aoti_hooks.compile_specs([*plugins, "probe"], target="local", **options)
                                   if plugins else [])
with Sampler(timeline=True) as sampler:
    pte, edge = lower({"decode": program}, {"decode": specs})
gc.collect()
after_lowering = host_rss()
by_phase = {}  # where in the lowering the host peak is
for _, rss, _, _, phase, _ in sampler.samples:
    by_phase[phase] = max(by_phase.get(phase, 0), rss)
print(json.dumps({"mode": mode, **{k: round(v / 2**30, 2) for k, v in around_move.items()},
                  "host_peak": round(sampler.host_peak / 2**30, 2), "after_lowering": round(after_lowering / 2**30, 2),
                  "alive": {name: ref() is not None for name, ref in alive.items()},
                  "host_peak_by_phase": {k: round(v / 2**30, 2) for k, v in by_phase.items()}}))
