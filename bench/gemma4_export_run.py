"""ExecuTorch's own Gemma 4 31B ``export.py``, unedited, stock and under ``aoti-hooks run``, on the GPU.

    python3 bench/gemma4_export_run.py --out DIR          # on the lent GPU (ExecuTorch installed)

A tiny random checkpoint in the format ``export.py --prequantized`` reads (ExecuTorch's own test
fixture writes it: 6 layers, one period of sliding and full attention, int4) is exported twice,
each in its own process: ``python -m executorch.examples.models.gemma4_31b.export`` as is, and the
same command after ``aoti-hooks run --plugins ... --report R --`` (both through `LAUNCH`, which works
around the torchtune import that stops the script as shipped). The script builds its compile
specs in code, so no ``aoti_hooks.*`` spec reaches it: only ``run`` can. Each process's host peak
RSS and GPU memory (NVML, per process) are sampled; the ``.ptd`` blobs and the ``.pte`` size are
compared; ``run``'s reports are kept. ``DIR/gemma4_export_run.json`` holds it all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLUGINS = "kv_elide,chunked_dequant,sdpa_configs,const_offload"
MODULE = "executorch.examples.models.gemma4_31b.export"
# ``python -m MODULE ARGS``, after importing the CUDA source transformations the way bench does: the
# package ``executorch.extension.llm.modules`` imports torchtune, whose only release (0.6.1) does not
# import with torchao 0.18, so ``export.py`` as shipped in executorch 1.5.1 stops there on any machine
# without a torchtune that imports. The script itself runs unedited.
LAUNCH = ("import runpy, sys; from aoti_hooks.seams.executorch import import_skipping_package_init; "
          "import_skipping_package_init('examples.models.gemma4_31b.cuda_source_transformations', "
          f"'extension.llm.modules'); sys.argv = [{MODULE!r}, *sys.argv[1:]]; "
          f"runpy.run_module({MODULE!r}, run_name='__main__', alter_sys=True)")


def sampled(command: list[str], log: Path) -> dict:
    """Run ``command``; its exit status, wall time, and the host peak RSS and NVML peak of the one
    process of its tree that peaks highest (the exporting one: ``aoti-hooks run`` starts the script as
    its child; Inductor's compile workers are apart, as bench measures a compile)."""
    from aoti_hooks.tools.harness.measure import Nvml

    nvml = Nvml()
    peaks = {"rss": 0, "gpu": 0}
    with open(log, "w") as out:
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        done = threading.Event()

        def sample():
            while not done.is_set():
                for pid in _tree(child.pid):
                    try:
                        with open(f"/proc/{pid}/status") as status:
                            rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
                        peaks["rss"] = max(peaks["rss"], rss)
                        peaks["gpu"] = max(peaks["gpu"], nvml.used_by(pid) or 0)
                    except (OSError, StopIteration, ValueError):  # the process ended between two reads
                        pass
                time.sleep(0.1)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        status = child.wait()
        done.set()
        thread.join()
    return {"exit": status, "wall_s": round(time.monotonic() - started, 1), "host_peak_rss": peaks["rss"],
            "nvml_process_peak": peaks["gpu"], "log": log.name}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc/PID/task/*/children``."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                pass
    return found


def contents(folder: Path) -> dict:
    """The ``.pte``'s size and each ``.ptd`` named blob's size and SHA-256 (what the runtime loads)."""
    from aoti_hooks.tools.harness.artifacts import named_blobs

    ptds = sorted(str(path) for path in folder.glob("*.ptd"))
    blobs = {key: [len(blob), hashlib.sha256(blob).hexdigest()] for key, blob in named_blobs(ptds).items()} if ptds else {}
    pte = sorted(folder.glob("*.pte"))
    return {"pte_bytes": pte[0].stat().st_size if pte else None, "ptd_blobs": blobs}


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seq-len", type=int, default=4096)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint"
    subprocess.run([sys.executable, "-c", "from executorch.examples.models.gemma4_31b.tests.test_pipeline import "
                    f"save_checkpoint; save_checkpoint({str(checkpoint)!r})"], check=True, cwd=ROOT)
    script = ["-c", LAUNCH, "--prequantized", str(checkpoint), "--max-seq-len", str(args.max_seq_len)]
    runs = {}
    for name, prefix in (("stock", [sys.executable]),
                         ("run", [sys.executable, "-m", "aoti_hooks", "run", "--plugins", PLUGINS,
                                  "--report", str(out / "reports.json"), "--", "python"])):
        runs[name] = sampled([*prefix, *script, "--output-dir", str(out / name)], out / f"{name}.log")
        runs[name]["contents"] = contents(out / name)
        print(name, json.dumps({key: value for key, value in runs[name].items() if key != "contents"}), flush=True)
    stock, ours = runs["stock"]["contents"], runs["run"]["contents"]
    result = {"command": f"python3 bench/gemma4_export_run.py --out {out} --max-seq-len {args.max_seq_len}",
              "plugins": PLUGINS, "runs": runs,
              "ptd_equal": bool(stock["ptd_blobs"]) and stock["ptd_blobs"] == ours["ptd_blobs"],
              "reports": _json_or_none(out / "reports.json")}
    (out / "gemma4_export_run.json").write_text(json.dumps(result, indent=1))
    print("ptd blobs equal:", result["ptd_equal"])
    return 0 if runs["stock"]["exit"] == 0 and runs["run"]["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
