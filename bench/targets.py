"""Targets on the GPU: the built-in decoder through plain AOTI, exported for each target, inspected and run.

    python3 bench/targets.py --out DIR [--jobs 3]          # on the lent GPU; writes DIR/targets.json
    python3 bench/targets.py --table DIR                    # here: bench/results/targets.md from it

For each target, `aoti-hooks demo` (as a function) compiles the decoder stock (no session: this GPU's
shared memory and code) and with plugins in a session for the target, with ``max_autotune`` so that
Inductor's matmul templates are among the baked kernels; then both packages are read as
``aoti-hooks inspect PACKAGE --target T`` reads them, and each package runs where its code allows
(the same architecture, or PTX the driver builds here); a package built for another architecture is
not run, which the row says. Every target's stock compile is the same uncapped compile, so the stock
runs' logits give the spread that timing-based autotuning leaves between two compiles of one model:
the tolerance ours is checked against.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = ["h100", "rtx5090,sm=local", "a100,code=ptx", "a100", "rtx4090", "rtx5090"]
PLUGINS = "kv_elide,sdpa_configs"
SHAPE = {"config": "gpu", "layers": 2, "ctx": 8192, "steps": 4}


def one(target: str, out: Path) -> dict:
    """One target in its own process (a demo runs its compiles in worker processes anyway)."""
    folder = out / target.replace(",", "_").replace("=", "-")
    code = ("import json, sys; from aoti_hooks.tools.demo import run_demo; "
            f"r = run_demo({SHAPE['config']!r}, {PLUGINS.split(',')!r}, {SHAPE['ctx']}, {SHAPE['layers']}, "
            f"{SHAPE['steps']}, {str(folder)!r}, quiet=True, target={target!r}, "
            "inductor={'max_autotune': True}); json.dump(r, sys.stdout)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    (out / f"{folder.name}.log").write_text(done.stdout[-20000:] + "\n--- stderr ---\n" + done.stderr[-20000:])
    if done.returncode:
        return {"target": target, "error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}
    from aoti_hooks.tools.kernels import artifact_summary

    results = json.loads(done.stdout)
    stock, ours = results["runs"]
    return {"target": target, "folder": str(folder),
            "stock": {"compile_s": stock["compile_s"], "peak_allocated": stock.get("peak_allocated"),
                      "artifact": artifact_summary(str(folder / "stock.pt2"), target)},
            "ours": {"compile_s": ours["compile_s"], "peak_allocated": ours.get("peak_allocated"), "report": ours["report"],
                     "artifact": artifact_summary(str(folder / "plugins.pt2"), target)},
            "check": results["check"]}


def spread(rows: list[dict]) -> dict:
    """Largest |difference| of logits between two stock compiles, and between ours and its own stock."""
    import torch

    def logits(row, variant):
        path = Path(row["folder"]) / f"{variant}.logits.pt"
        return torch.load(path) if path.exists() else None

    stocks = [(row["target"], logits(row, "stock")) for row in rows if "folder" in row]
    stocks = [(target, found) for target, found in stocks if found is not None]
    between = max((max(float((a - b).abs().max()) for a, b in zip(x, y))
                   for (_, x), (_, y) in itertools.combinations(stocks, 2)), default=None)
    ours = {}
    for row in rows:
        got, own = (logits(row, "plugins"), logits(row, "stock")) if "folder" in row else (None, None)
        if got is not None and own is not None:
            ours[row["target"]] = max(float((a - b).abs().max()) for a, b in zip(got, own))
    return {"stock_vs_stock_max_abs": between, "stock_runs": len(stocks), "ours_vs_stock_max_abs": ours}


def measure(out: Path, jobs: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(lambda target: one(target, out), TARGETS))
    result = {"command": f"python3 bench/targets.py --out {out} --jobs {jobs}", "shape": SHAPE, "plugins": PLUGINS,
              "rows": rows, "spread": spread(rows)}
    (out / "targets.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["spread"]))


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def table(folder: Path, commit: str, machine: str) -> str:
    from aoti_hooks.tools.bench.report import artifact_line

    found = json.loads((folder / "targets.json").read_text())
    within = found["spread"]["stock_vs_stock_max_abs"]
    lines = [f"# Targets: the built-in decoder (`demo:{SHAPE['config']}`, {SHAPE['layers']} layers, ctx {SHAPE['ctx']}, bf16) through "
             f"plain AOTI with `max_autotune`, stock and {PLUGINS} in a session for each target", "",
             f"Commit {commit}; {machine}. Made by `{found['command']}`.", "",
             "| target | compile, stock → ours | peak allocated, stock → ours | ours: baked GPU code | stock against the "
             "target | ours run here | ours vs stock (max abs logits) |", "|---|---|---|---|---|---|---|"]
    for row in found["rows"]:
        if "error" in row:
            lines.append(f"| {row['target']} | failed: {row['error']} | | | | | |")
            continue
        check = row["check"]["plugins"]
        ran = (check.get("note") or "not run") if check["steps"] == 0 else (
            f"{check['steps']} decode steps, max rel err vs eager {check['max_rel_error_vs_eager']:.2e}")
        diff = found["spread"]["ours_vs_stock_max_abs"].get(row["target"])
        verdict = "-" if diff is None else f"{diff:.3g}" + ("" if within is None else
                                                            (" (within stock's spread)" if diff <= within else " (OVER stock's spread)"))
        lines.append(f"| `{row['target']}` | {row['stock']['compile_s']:.0f} s → {row['ours']['compile_s']:.0f} s | "
                     f"{_mib(row['stock']['peak_allocated'])} → {_mib(row['ours']['peak_allocated'])} | "
                     f"{artifact_line(row['ours']['artifact'])} | {artifact_line(row['stock']['artifact'])} | {ran} | {verdict} |")
    lines += ["", f"Two stock compiles differ by up to {within} in the logits "
                  f"({found['spread']['stock_runs']} stock runs, timing-based autotuning): the tolerance."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="measure into this folder (on the GPU)")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--table", help="write bench/results/targets.md from this folder's targets.json")
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--machine", default="NVIDIA H200")
    args = parser.parse_args()
    if args.table:
        text = table(Path(args.table), args.commit, args.machine)
        (ROOT / "bench" / "results" / "targets.md").write_text(text)
        print(text)
        return 0
    if not args.out:
        parser.error("give --out DIR (measure, on a GPU) or --table DIR")
    measure(Path(args.out), args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
