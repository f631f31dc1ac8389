"""What holds the export peak with kv_elide? Records CUDA allocator history during the
compile of the demo's GPU decoder and lists the live allocations at the moment of peak.

    source bench/gpu_setup.sh; python3 bench/kv_elide_peak_snapshot.py --ctx 131072 > $OUT/peak.txt
"""
import argparse
import sys
import time

import torch

import aoti_hooks
from aoti_hooks.tools.demo import CONFIGS, build, export_decoder
from aoti_hooks.tools.demo.measure import live_at_peak
from aoti_hooks.seams import allocator
from aoti_hooks.core.target import Target

parser = argparse.ArgumentParser()
parser.add_argument("--ctx", type=int, default=131072)
parser.add_argument("--plugins", default="kv_elide")
args = parser.parse_args()

config = CONFIGS["gpu"].with_(ctx=args.ctx)
program = export_decoder(build(config))
weights = sum(t.numel() * t.element_size() for n, t in program.state_dict.items() if "cache" not in n)
torch.cuda.init()
allocator.record_history()
configs = {"aot_inductor.precompile_headers": False, "aot_inductor.package_constants_in_so": False,
           "aot_inductor.package_constants_on_disk_format": "binary_blob"}
start = time.perf_counter()
plugins = [p for p in args.plugins.split(",") if p]
with aoti_hooks.session(plugins, target=Target("local", None, None, "cuda:0")) as session:
    aoti_hooks.aoti_compile_and_package(program, "/tmp/peak.pt2", inductor_configs=configs)
seconds = time.perf_counter() - start
snapshot = allocator.take_history()

breakdown = live_at_peak(snapshot, top=25)
print(f"plugins={plugins} ctx={args.ctx} compile {seconds:.1f} s; report {session.report.as_dict()}")
print(f"weights {weights / 2**20:.1f} MiB; peak allocated (trace) {breakdown['peak_bytes'] / 2**20:.1f} MiB; "
      f"max_memory_allocated {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB; {breakdown['blocks']} live blocks at peak")
for group in breakdown["groups"]:
    print(f"{group['bytes'] / 2**20:10.1f} MiB  {group['blocks']:5d} blocks  {group['where']}")
