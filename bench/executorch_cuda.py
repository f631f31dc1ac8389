"""The demo's GPU decoder lowered through ExecuTorch's CudaBackend + CudaPartitioner, several
ways side by side: each lowering in its own process with a cold Inductor cache.

    source bench/gpu_setup.sh
    python3 bench/executorch_cuda.py --ctx 131072 --out $OUT/et [--variants stock,low_memory,kv_elide,both]
             [--breakdown low_memory,kv_elide]

``aoti-hooks bench --model demo:gpu --backend executorch --backend-spec low_memory_mode=ON`` makes the
same comparison; this script stays because it reproduces ``bench/results/executorch_h100.md`` and its
``--breakdown`` (what is live at each peak), which ``aoti-hooks bench`` does not offer.

Writes ``results.json`` and ``results.md`` (peak allocated / reserved / NVML, host peak,
compile time, .pte/.ptd sizes and digests, plugin reports) to ``--out``. Variants named in
``--breakdown`` run once more with the CUDA allocator's history recorded and list what is
live at the peak (those runs are slower; their times are not the table's).
"""
import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from aoti_hooks.core.text import format_bytes, table
from aoti_hooks.tools.harness.launch import Progress, run_in_worker

VARIANTS = {
    "stock": ([], {}),
    "low_memory": ([], {"low_memory_mode": "ON"}),
    "kv_elide": (["kv_elide"], {}),
    "both": (["kv_elide"], {"low_memory_mode": "ON"}),  # kv_elide replaces low_memory_mode
}

parser = argparse.ArgumentParser()
parser.add_argument("--ctx", type=int, default=131072)
parser.add_argument("--layers", type=int, default=None)
parser.add_argument("--variants", default="stock,low_memory,kv_elide,both")
parser.add_argument("--breakdown", default="")
parser.add_argument("--out", required=True, help="results, logs and blob digests")
parser.add_argument("--work", default=None, help="Inductor caches and the lowered files (default: a temp folder)")
args = parser.parse_args()

folder = Path(args.out)
folder.mkdir(parents=True, exist_ok=True)
import tempfile  # noqa: E402

work = Path(args.work or tempfile.mkdtemp(prefix="aoti-hooks-et-bench-"))
runs = []
jobs = [(name, False) for name in args.variants.split(",") if name]
jobs += [(name, True) for name in args.breakdown.split(",") if name]
for name, breakdown in jobs:
    plugins, backend_specs = VARIANTS[name]
    tag = name + ("-breakdown" if breakdown else "")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor-{tag}")}
    spec = {"config": "gpu", "ctx": args.ctx, "layers": args.layers, "variant": tag, "plugins": plugins,
            "backend": "executorch", "backend_specs": backend_specs, "options": {},
            "package": str(work / f"{tag}.pt2"), "peak_breakdown": breakdown,
            "contents_dir": str(folder / "contents")}
    with Progress(f"lowering {tag}", False):
        try:
            runs.append(run_in_worker("compile", spec, folder, f"lower-{tag}", env))
        except RuntimeError as error:
            print(error, file=sys.stderr)
            runs.append({"variant": tag, "error": str(error)[-2000:]})
    (folder / "results.json").write_text(json.dumps({"command": shlex.join(sys.argv), "ctx": args.ctx, "runs": runs}, indent=1))

rows = []
for run in runs:
    if "error" in run:
        rows.append([run["variant"], "failed"] + [""] * 8)
        continue
    sizes = {name.rsplit(".", 1)[-1]: size for name, (size, _) in run["artifacts"].items()}
    rows.append([
        run["variant"], f"{run['compile_s']:.1f} s", format_bytes(run["peak_allocated"]),
        format_bytes(run["peak_reserved"]), format_bytes(run["nvml_peak"] or 0), format_bytes(run["host_peak_rss"]),
        format_bytes(sizes.get("pte", 0)), format_bytes(sizes.get("ptd", 0)),
        "; ".join(f"{k}={v}" for entry in run["report"].values() for k, v in entry.items()) or "-",
    ])
header = ["variant", "lowering", "peak allocated", "peak reserved", "NVML peak", "host peak", ".pte", ".ptd", "report"]
lines = [f"ctx {args.ctx}; weights {format_bytes(runs[0].get('weight_bytes', 0))}, "
         f"caches {format_bytes(runs[0].get('cache_bytes', 0))}", "", "```", table(header, rows), "```"]
digests = {run["variant"]: {name: digest for name, (_, digest) in run.get("artifacts", {}).items()} for run in runs}
lines += ["", "artifact digests (sha256):", "```", json.dumps(digests, indent=1), "```"]
for run in runs:
    if run.get("peak_breakdown"):
        lines += ["", f"live at the allocator peak, {run['variant']} "
                      f"({format_bytes(run['peak_breakdown']['peak_bytes'])}):", "```"]
        lines += [f"{format_bytes(g['bytes']):>10} {g['blocks']:5d} blocks  {g['where']}" for g in run["peak_breakdown"]["groups"]]
        lines += ["```"]
(folder / "results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
