"""Probe: bench's output check of ``executorch:gemma4_31b`` on the GPU, at the tests' tiny dimensions,
for stock and, side by side, the plugins named: weights, the CudaBackend lowering, then eager and the
delegates (out of the .pte/.ptd, int4 shims forwarded) over a prefill and 4 decode steps.

    source bench/gpu_setup.sh
    python3 bench/et_gemma4_check_tiny.py --out $OUT/tiny [--plugins kv_elide,const_offload]
"""
import argparse
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aoti_hooks.tools.bench.checks import check_executorch_outputs
from aoti_hooks.tools.harness.launch import run_in_worker
from aoti_hooks.tools.models.et_gemma4 import MODEL

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--plugins", default="")
args = parser.parse_args()
out, work = Path(args.out), Path(tempfile.mkdtemp(prefix="aoti-hooks-tiny-"))
out.mkdir(parents=True, exist_ok=True)
plugins = [name for name in args.plugins.split(",") if name]
base = {"model": MODEL, "tiny": True, "layers": 6, "ctx": 64, "weights": "int4", "backend": "executorch",
        "target": "rtx5090"}
planned = [{"variant": "stock", "plugins": [], "backend_specs": {}, "options": {}}]
if plugins:
    planned.append({"variant": ",".join(plugins), "plugins": plugins, "backend_specs": {},
                    "options": {name: {"min_bytes": "1KiB"} for name in plugins if name in ("kv_elide", "const_offload")}})


def lowered(index):  # each lowering in its own process, the two side by side
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor-{index}")}
    result = run_in_worker("compile", {**base, **planned[index], "package": str(work / f"run{index}.pt2")}, out,
                           f"run{index}", env)
    return {key: result.get(key) for key in ("variant", "compile_s", "peak_allocated", "nvml_process_peak",
                                             "artifacts", "report")}


with ThreadPoolExecutor(max_workers=len(planned)) as pool:
    results = list(pool.map(lowered, range(len(planned))))
check = check_executorch_outputs(base, planned, work, out, 4)
(out / "check.json").write_text(json.dumps({"runs": results, "check": check}, indent=1))
print(json.dumps(check, indent=1))
