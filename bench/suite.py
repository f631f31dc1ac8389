"""The one runner of the measurement suites: named `aoti-hooks bench` runs, one table each.

    python3 bench/suite.py list
    python3 bench/suite.py start NAME [--into DIR]                      # detached; returns at once
    python3 bench/suite.py poll NAME [--into DIR] [--copy-to $OUT] [--seconds 560]
    python3 bench/suite.py table NAME [--into DIR] [--results DIR]      # bench/results/NAME.md and NAME.json

On the lent GPU machine, after ``source bench/gpu_setup.sh`` and ``export LD_PRELOAD=...``, one call
runs ``start`` then ``poll --copy-to $OUT``: the suite runs detached, and the poll copies what exists
(reports, logs; never artifacts) to ``$OUT`` every 15 s, so a machine given back mid-suite loses
nothing already measured. ``start`` again resumes: a run whose ``report.json`` is complete is not run
again. ``table`` turns the reports into the committed table (command, commit, machine, versions; each
bench's own where a suite took several leases), keeping the ``## Notes`` section written by hand at
its end; the raw reports stay under ``--into`` (default ``/tmp/aoti-hooks-suites``), out of git.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's aoti_hooks, for `table`

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ALL = "kv_elide,chunked_dequant,sdpa_configs,const_offload"
# A 5090's shared memory and memory, code for the GPU that measures: the output check runs the artifact there.
GEMMA4 = ["--model", "executorch:gemma4_31b", "--target", "rtx5090,sm=local"]

# name -> (what it shows, {run: aoti-hooks bench arguments}, environment of its runs; "{run}" is the run's folder)
SUITES: dict[str, tuple[str, dict[str, list[str]], dict[str, str]]] = {
    "headline": ("ExecuTorch's Gemma 4 31B, 1 period @128k, int4, CudaBackend, one pass: stock, `low_memory_mode`, "
                 "kv_elide + chunked_dequant, all four; the output check",
                 {"gemma4": [*GEMMA4, "--backend-spec", "low_memory_mode=ON", "--plugins", "kv_elide,chunked_dequant",
                             "--plugins", ALL, "--jobs", "4"]},
                 {"TORCHINDUCTOR_COMPILE_THREADS": "4"}),
    "host": ("ExecuTorch's Gemma 4 31B, 1 period @128k, int4, CudaBackend, one pass: stock, `low_memory_mode`, all four, "
             "all four with `const_offload.spill=disk`; then a Hugging Face Qwen3 at Qwen3-0.6B's dimensions (ctx 16k, "
             "bf16) through plain AOTI on the GPU, stock and all four; host memory per phase against the weights, what "
             "held it at the peak; the output check",
             {"gemma4": [*GEMMA4, "--backend-spec", "low_memory_mode=ON", "--plugins", ALL,
                         "--plugins", f"{ALL},const_offload.spill=disk,const_offload.spill_dir=/tmp",
                         "--jobs", "4", "--check-steps", "2"],
              "qwen3": ["--model", "hf:qwen3", "--ctx", "16384", "--plugins", ALL]},
             {"TORCHINDUCTOR_COMPILE_THREADS": "4"}),
    "host-cpu": ("plain AOTI on the CPU: the built-in decoder at `demo:gpu`'s widths (4 layers, ctx 2048, bf16) and a "
                 "Hugging Face Qwen3 at Qwen3-0.6B's widths (4 layers, ctx 2048, bf16), stock and kv_elide; host "
                 "memory per phase against the weights, what held it at the peak",
                 {"decoder": ["--model", "demo:gpu", "--layers", "4", "--ctx", "2048", "--plugins", "kv_elide"],
                  "qwen3": ["--model", "hf:qwen3", "--layers", "4", "--ctx", "2048", "--plugins", "kv_elide"]}, {}),
    "targets-gemma4": ("ExecuTorch's Gemma 4 31B, 1 period @128k, int4, CudaBackend, exported on the H200 for `rtx5090` "
                "(sm_120, 101,376 B of shared memory): stock and all four; the GPU code each artifact holds",
                {"gemma4": ["--model", "executorch:gemma4_31b", "--target", "rtx5090", "--plugins", ALL,
                            "--jobs", "2", "--check-steps", "0"]},
                {"TORCHINDUCTOR_COMPILE_THREADS": "4"}),
    "scale": ("at full size under a GPU memory limit: Llama 3 8B's dimensions (transformers' Llama from a config, "
              "bf16, 15 GiB, ctx 8192) through plain AOTI, stock uncapped and kv_elide + chunked_dequant + "
              "const_offload under 8 GiB and 2 GiB; ExecuTorch's Gemma 4 31B at 1, 2 and 4 periods @128k, int4, "
              "CudaBackend, stock, `low_memory_mode` and all four under 25% of the weights",
              {"llama8b-8g": ["--model", "hf:llama3-8b", "--ctx", "8192", "--plugins",
                              "kv_elide,chunked_dequant,const_offload", "--gpu-memory-limit", "8GiB",
                              "--check-steps", "4"],
               "llama8b-2g": ["--model", "hf:llama3-8b", "--ctx", "8192", "--plugins",
                              "kv_elide,chunked_dequant,const_offload", "--gpu-memory-limit", "2GiB",
                              "--check-steps", "4"],
               **{f"gemma4-p{n}": [*GEMMA4, "--periods", str(n), "--backend-spec", "low_memory_mode=ON",
                                   "--plugins", ALL, "--gpu-memory-limit", "25%", "--jobs", "3", "--check-steps", "0"]
                  for n in (1, 2, 4)}},
              {"TORCHINDUCTOR_COMPILE_THREADS": "4"}),
    "compile-time": ("cold compile time, one compile at a time: ExecuTorch's Gemma 4 31B @128k, int4, CudaBackend, "
                     "exported for `rtx5090`, stock then all four, at 1 and 2 periods; each run with an empty Inductor "
                     "cache and an empty verdict cache (sdpa_configs reads only the verdicts it ships)",
                     {f"gemma4-p{n}": ["--model", "executorch:gemma4_31b", "--target", "rtx5090", "--periods", str(n),
                                       "--plugins", ALL, "--jobs", "1", "--check-steps", "0"] for n in (1, 2)},
                     {"AOTI_HOOKS_CACHE_DIR": "{run}/verdict-cache"}),
    "whole": ("the whole model: ExecuTorch's Gemma 4 31B, 10 periods (60 layers) @128k, int4, CudaBackend, all four "
              "(stock does not fit the lease: its figures are projected from `scale`'s 1, 2 and 4 periods), prefill "
              "and decode each lowered in a process of its own, both at once (one after the other they outlast a "
              "lease), code for the GPU that measures, so the .pte runs there: its tokens over 4 decode steps "
              "against eager's; the same at 1 period, the depth the other suites measure",
              {f"gemma4-p{n}": [*GEMMA4, "--periods", str(n), "--no-stock", "--methods-apart", "--plugins", ALL,
                                "--check-steps", "4"] for n in (1, 10)},
              {"TORCHINDUCTOR_COMPILE_THREADS": "8"}),
    "two-pass": ("the same model in the two-pass mode (`autotune_at_compile_time=OFF`): stock and all four; the output check",
                 {"gemma4": [*GEMMA4, "--common-spec", "autotune_at_compile_time=OFF", "--plugins", ALL, "--jobs", "2"]},
                 {"TORCHINDUCTOR_COMPILE_THREADS": "8"}),
    "targets-several": ("one artifact for several GPUs: a Hugging Face Qwen3 at Qwen3-0.6B's dimensions (ctx 4096, bf16) "
                        "through plain AOTI with max_autotune, stock (this GPU's code and shared memory) and kv_elide "
                        "for `rtx4090,rtx5090,h100` (one fatbin per kernel, shared memory capped at 101,376 B); outputs "
                        "and decode time per call over 64 calls, so the cap's cost in speed reads off stock's",
                        {"qwen3": ["--model", "hf:qwen3", "--ctx", "4096", "--target", "rtx4090,rtx5090,h100",
                                   "--plugins", "kv_elide", "--inductor", "max_autotune=True", "--jobs", "1",
                                   "--check-steps", "64"]},
                        {}),
    "exporters": ("the exporters users run, unedited, inside a session: a Hugging Face Qwen3 at Qwen3-0.6B's dimensions "
                  "(bf16) through transformers' ExecutorchExporter (backend cuda, a 16-token prompt, the model built "
                  "for 16k positions) and through optimum-executorch's cuda recipe (its static KV cache 16k long), "
                  "stock and kv_elide + const_offload; each delegate's outputs against stock's",
                  {"transformers": ["--model", "hf:qwen3", "--ctx", "16384", "--exporter", "transformers",
                                    "--plugins", "kv_elide,const_offload", "--jobs", "2", "--check-steps", "2"],
                   "optimum": ["--model", "hf:qwen3", "--ctx", "16384", "--exporter", "optimum",
                               "--plugins", "kv_elide,const_offload", "--jobs", "2", "--check-steps", "4"]},
                  {"TORCHINDUCTOR_COMPILE_THREADS": "4"}),
    "slice": ("the Gemma 4 31B slice (1 layer @8k, bf16) through plain AOTI and through CudaBackend",
              {"torch": ["--model", "demo:gemma4-31b-slice", "--layers", "1", "--ctx", "8192",
                         "--plugins", "kv_elide,const_offload"],
               "executorch": ["--model", "demo:gemma4-31b-slice", "--layers", "1", "--ctx", "8192",
                              "--backend", "executorch", "--plugins", ALL, "--jobs", "2"]},
              {"TORCHINDUCTOR_COMPILE_THREADS": "8"}),
    "executorch-cuda": ("the built-in GPU decoder (16 layers, dim 2048, bf16, ctx 131072) through ExecuTorch's CudaBackend: "
                        "stock, `low_memory_mode`, kv_elide, and both together; what was live at kv_elide's peak",
                        {"decoder": ["--model", "demo:gpu", "--ctx", "131072", "--backend", "executorch",
                                     "--backend-spec", "low_memory_mode=ON", "--plugins", "kv_elide"],
                         "decoder-low-memory": ["--model", "demo:gpu", "--ctx", "131072", "--backend", "executorch",
                                                "--common-spec", "low_memory_mode=ON", "--plugins", "kv_elide"],
                         "decoder-breakdown": ["--model", "demo:gpu", "--ctx", "131072", "--backend", "executorch",
                                               "--plugins", "kv_elide", "--no-stock", "--peak-breakdown"]},
                        {}),
    "smoke": ("the built-in tiny decoder, stock and kv_elide: the runner itself, on any machine",
              {"demo": ["--model", "demo:tiny", "--plugins", "kv_elide"]}, {}),
}
DEFAULT_INTO = "/tmp/aoti-hooks-suites"


def folder(name: str, into: str) -> Path:
    return Path(into) / name


def complete(run_folder: Path) -> bool:
    try:
        return bool(json.loads((run_folder / "report.json").read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def command(args: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "aoti_hooks", "bench", *args, "--out", str(out)]


def run_suite(name: str, into: str, only: list[str] | None = None) -> int:
    """Every run of suite ``name`` (or those in ``only``) not yet complete, one after another; ``DONE`` says how it ended."""
    _, runs, environment = SUITES[name]
    runs = {run: args for run, args in runs.items() if not only or run in only}
    base = folder(name, into)
    base.mkdir(parents=True, exist_ok=True)
    (base / "machine.json").write_text(json.dumps(this_machine(), indent=1) + "\n")
    failed = []
    for run, args in runs.items():
        out = base / run
        if complete(out):
            print(f"{run}: complete, not run again", flush=True)
            continue
        out.mkdir(parents=True, exist_ok=True)
        (out / "machine.json").write_text(json.dumps(this_machine(), indent=1) + "\n")  # a later lease may run the next
        with open(base / f"{run}.log", "w") as log:
            done = subprocess.run(command(args, out), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env={**os.environ, **{key: value.replace("{run}", str(out))
                                                        for key, value in environment.items()}})
        if done.returncode not in (0, 3):  # 3: over a budget, a measured result
            failed.append(f"{run} (exit {done.returncode}, log {run}.log)")
    (base / "DONE").write_text("failed: " + ", ".join(failed) if failed else "ok")
    return 1 if failed else 0


def start(name: str, into: str, only: list[str] | None = None) -> None:
    base = folder(name, into)
    base.mkdir(parents=True, exist_ok=True)
    (base / "DONE").unlink(missing_ok=True)
    with open(base / "runner.log", "a") as log:
        subprocess.Popen([sys.executable, __file__, "run", name, "--into", into, *(["--only", ",".join(only)] if only else [])],
                         stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    print(f"suite {name} started in {base}; poll it: python3 bench/suite.py poll {name} --into {into}")


def copy_out(name: str, into: str, copy_to: str) -> None:
    """``copy_to/NAME.tgz``: the suite's folder without artifacts (packages, programs, weights)."""
    skip = (".pt2", ".pte", ".ptd", ".so", ".pt", ".bin")
    with tarfile.open(Path(copy_to) / f"{name}.tgz", "w:gz") as archive:
        archive.add(folder(name, into), arcname=name, filter=lambda info: None if info.name.endswith(skip) else info)


def poll(name: str, into: str, copy_to: str | None, seconds: float) -> int:
    """Wait up to ``seconds`` for the suite, copying what exists to ``copy_to`` every 15 s and at the end."""
    done = folder(name, into) / "DONE"
    deadline = time.monotonic() + seconds
    while not done.exists() and time.monotonic() < deadline:
        if copy_to:
            copy_out(name, into, copy_to)
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
    if copy_to:
        copy_out(name, into, copy_to)
    print(done.read_text() if done.exists() else f"suite {name} still running; poll again")
    return 0 if done.exists() else 2


def this_machine() -> dict:
    """What the suite runs on, written by the measuring machine itself: the table is often made elsewhere."""
    found = []
    for dist in ("torch", "triton", "executorch", "aoti-hooks"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:  # not installed there
            pass
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=60).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):  # no NVIDIA driver: a CPU machine
        gpus = []
    gpus = [gpu.strip() for gpu in gpus if gpu.strip()]
    return {"gpus": ", ".join(gpus) or "no GPU", "cpus": os.cpu_count(), "host": platform.node(),
            "python": platform.python_version(), "versions": ", ".join(found)}


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip() or "unknown"


def _gib(value) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, a line per row."""
    return [f"| {' | '.join(header)} |", "|---" * len(header) + "|", *(f"| {' | '.join(row)} |" for row in rows)]


def _of_weights(value, row: dict) -> str:
    weights = row.get("weight_bytes")
    return _gib(value) + (f" ({value / weights:.2f}×)" if value is not None and weights else "")


def _failure(log: Path) -> str | None:
    """The error a run's bench ended with (the last line of its log that names an exception), or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.strip() for line in lines if re.match(r"^\s*[\w.]*(Error|Exception)\b.*:", line)
              or line.startswith("aoti-hooks")]
    return errors[-1][:400] if errors else None


def _checked(measured: dict) -> dict:
    """The run's artifact summary; bench checked only the runs with plugins against the target before it
    recorded which target it checked, so such a report's stock artifact was not checked."""
    found = measured["artifact"]
    return found if "target" in found or measured.get("plugins") else {**found, "target": None}


def _refused(measured: dict) -> str:
    """What a target cost in kernel choices: the autotune choices refused for shared memory it cannot hold."""
    refused = ((measured.get("report") or {}).get("target") or {}).get("refused_for_target_smem")
    return f"; {len(refused)} autotune choice(s) refused for shared memory over the target's" if refused else ""


def _contents(run_folder: Path) -> dict:
    """variant -> what its ExecuTorch lowering wrote (the .ptd's blobs by size and sha256, the weight table)."""
    return {path.name.removesuffix(".contents.json"): json.loads(path.read_text())
            for path in run_folder.glob("*.contents.json")}


def table(name: str, into: str, results: Path = RESULTS, commit: str | None = None) -> Path:
    """``results``/NAME.md (one table) and NAME.json (its rows) from the suite's reports."""
    from aoti_hooks.tools.bench.report import (  # imports torch: only the
        DISK_HEADING,
        EXTRA_SECONDS,
        PHASE_ORDER,
        SHARED_MEMORY_HEADING,
        artifact_line,
        census_rows,
        decode_check_rows,
        differing_line,
        disk_lines,
        extra_seconds_rows,
        phase_time_rows,  # table needs it
        shared_memory_lines,
    )
    from aoti_hooks.tools.harness.measure import host_added

    what, runs, environment = SUITES[name]
    commit = commit or _commit()  # recorded with each bench tabled for the first time
    rows = []
    measured_by = {}  # bench -> (commit, machine): a suite's benches may come from several leases
    censuses, shared, timings, stocks_missing, code, decodes, eager, disk = [], [], [], [], [], [], [], []
    extra: dict[str, list[list[str]]] = {}  # what a table of extra seconds says -> its rows
    not_run = [run for run in runs if not (folder(name, into) / run / "report.json").exists()]
    for run in runs:
        if run in not_run:
            continue
        report = json.loads((folder(name, into) / run / "report.json").read_text())
        measured_by[run] = _measured_by(folder(name, into), run, commit)
        header, found = census_rows(report["runs"])
        censuses += [[run, *row] for row in found]
        time_header, found = phase_time_rows(report["runs"])
        timings += [(time_header, [run, *row]) for row in found]
        for key, words in EXTRA_SECONDS:
            extra_header, found = extra_seconds_rows(report["runs"], top=8, key=key)
            extra.setdefault(words, []).extend([run, *row] for row in found)
        check = report.get("check") or {}
        if any("logits_equal_stock" in entry for entry in check.values()):
            decode_header, found = decode_check_rows(check)
            stock_ms = (check.get("stock") or {}).get("decode_ms_per_call")
            decodes += [[run, *row, _against(check[row[0]].get("decode_ms_per_call"), stock_ms, row[0])]
                        for row in found]
        eager += [f"- {run}, {variant}: tokens over {entry['steps']} calls (a prefill, then teacher-forced decode "
                  f"steps) = eager's: " + ("yes" if entry["tokens_equal_eager"] else
                                          "NO; " + differing_line(entry.get("differing_steps") or []))
                  for variant, entry in check.items() if "tokens_equal_eager" in entry]
        contents = _contents(folder(name, into) / run)
        shared += shared_memory_lines(report["runs"], prefix=f"{run}, ")
        disk += disk_lines(report["runs"], prefix=f"{run}, ")
        code += [f"- {run}, {measured['variant']}: {artifact_line(_checked(measured))}{_refused(measured)}"
                 for measured in report["runs"] if (found := measured.get("artifact")) and (found["kernels"] or found["built_for"])]
        stocks_missing += [] if report.get("stock_run", True) else [(run, report.get("model"), report["shape"]["layers"])]
        for measured in report["runs"]:
            verdict = check.get(measured["variant"], {})
            written = contents.get(measured["variant"])
            added, anonymous_added = host_added(measured)
            rows.append({"bench": run, "run": measured["variant"], "model": report.get("model"),
                         "layers": (report.get("shape") or {}).get("layers"), "compile_s": measured.get("compile_s"),
                         "peak_allocated": measured.get("peak_allocated"), "peak_reserved": measured.get("peak_reserved"),
                         "nvml_process_peak": measured.get("nvml_process_peak"),
                         "host_peak_rss": measured.get("host_peak_rss"),
                         "host_peak_anonymous": measured.get("host_peak_anonymous"),
                         "host_added": added, "host_anonymous_added": anonymous_added,
                         "weight_bytes": measured.get("weight_bytes"),
                         "host_phase_peaks": measured.get("host_phase_peaks"),
                         # tokens of ExecuTorch's model; every output of an exporter's delegate
                         "tokens_equal_stock": verdict.get("tokens_equal_stock", verdict.get(
                             "outputs_equal_stock", verdict.get("logits_equal_stock"))),
                         **{key: verdict.get(key) for key in DECODE_CHECK},
                         "caches_equal_stock": verdict.get("caches_equal_stock"),
                         "gpu_memory_limit": measured.get("gpu_memory_limit"), "did_not_fit": measured.get("did_not_fit"),
                         "artifact_equal_stock": None if written is None or "stock" not in contents
                         else written == contents["stock"]})
    measured_stock = [*rows, *_committed_rows("scale", results)]
    for run, model, layers in stocks_missing:
        projection = projected_stock(measured_stock, model, layers)
        if projection is not None:
            rows.append({**projection, "bench": run})
    commands = [shlex.join(["aoti-hooks", "bench", *args]) for args in runs.values()]
    if not measured_by:  # nothing measured yet: the suite's own machine line
        measured_by = {None: _measured_by(folder(name, into), None, commit)}
    made_at, machine = next(iter(measured_by.values()))
    meta = {"suite": name, "what": what, "command": f"python3 bench/suite.py start {name}", "commands": commands,
            "environment": environment, "commit": made_at, "machine": machine}
    leases: dict[str, list] = {}  # a commit and machine's line -> its benches, in the suite's order
    for run, (at, by) in measured_by.items():
        leases.setdefault(f"Commit {at}; {by['versions']}; {by['gpus']}, {by['cpus']} CPUs, Python {by['python']}",
                          []).append(run)
    if len(leases) == 1:
        measured_line = f"{next(iter(leases))}. Made by "
    else:
        meta["measured_by"] = {run: {"commit": at, "machine": by} for run, (at, by) in measured_by.items()}
        measured_line = ("Measured in several runs, compile times comparable only within a bench: "
                         + "; ".join(f"{', '.join(benches)}: {line}" for line, benches in leases.items()) + ". Made by ")
    lines = [f"# Suite `{name}`: {what}", "",
             f"{measured_line}"
             f"`{meta['command']}`, which runs:", "", "```",
             *(f"{' '.join(f'{k}={v}' for k, v in environment.items())} {line}".strip() for line in commands), "```", "",
             "| bench | run | compile | peak allocated | reserved | NVML (process) | host peak RSS | host added by the compile "
             "| anonymous peak | anonymous added | tokens (outputs) = stock | caches = stock | .ptd and weight table = stock |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    shown = {True: "yes", False: "NO", None: "-"}
    stock_compile = {row["bench"]: row["compile_s"] for row in rows if row["run"] == "stock" or row.get("projected_from")}
    for row in rows:
        reference = stock_compile.get(row["bench"])
        ratio = (f" ({row['compile_s'] / reference:.2f}× stock)" if row["compile_s"] and reference
                 and row["run"] != "stock" and not row.get("projected_from") else "")
        compiled = (f"did not fit {_gib(row['gpu_memory_limit'])}" if row.get("did_not_fit")
                    else f"{row['compile_s'] or '-'} s{ratio}")
        lines.append(f"| {row['bench']} | {row['run']} | {compiled} | {_gib(row['peak_allocated'])} | "
                     f"{_gib(row['peak_reserved'])} | {_gib(row['nvml_process_peak'])} | "
                     f"{_of_weights(row['host_peak_rss'], row)} | {_of_weights(row['host_added'], row)} | "
                     f"{_of_weights(row['host_peak_anonymous'], row)} | {_of_weights(row['host_anonymous_added'], row)} | "
                     f"{shown[row['tokens_equal_stock']]} | {shown[row['caches_equal_stock']]} | "
                     f"{shown[row['artifact_equal_stock']]} |")
    unfit = [row for row in rows if row.get("did_not_fit")]
    lines += [""] * bool(unfit) + [
        f"- {row['bench']}, {row['run']}: did not fit its limit of {_gib(row['gpu_memory_limit'])} (the caching "
        f"allocator's; the CUDA context is outside it): {row['did_not_fit']} Its figures are up to the failure, after "
        f"{row['compile_s']} s." for row in unfit]
    failed = {run: reason for run in not_run if (reason := _failure(folder(name, into) / f"{run}.log"))}
    lines += [""] * bool(failed) + [f"- {run} failed: {reason}" for run, reason in failed.items()]
    if set(not_run) - set(failed):
        lines += ["", f"Not run yet: {', '.join(run for run in not_run if run not in failed)} "
                      f"(`python3 bench/suite.py start {name}` runs only what is missing)."]
    lines += [""] * bool(eager) + eager
    projected = [row for row in rows if row.get("projected_from")]
    if projected:
        lines += ["", *(f"- {row['bench']}, {row['run']}: a projection, not a measurement: a straight line through stock's "
                        f"runs of the same model at {', '.join(map(str, row['projected_from']))} layers, extended to "
                        f"{row['layers']}; the ratios to stock in its bench are to this projection" for row in projected)]
    if decodes:
        lines += ["", "Outputs over the same decode calls, each package in its own process (seeded tokens, each call "
                      "writing the caches the next reads), and the median time per call against stock's:", "",
                  *_markdown(["bench", *decode_header, "against stock"], decodes)]
    phased = [row for row in rows if row.get("host_phase_peaks")]
    if phased:
        phases = [phase for phase in PHASE_ORDER if any(phase in row["host_phase_peaks"] for row in phased)]
        lines += ["", "Host RSS peak in each phase of the compile (the phase read from the compiling thread's stack):", "",
                  *_markdown(["bench", "run", *phases], [[row["bench"], row["run"], *(_gib(row["host_phase_peaks"].get(phase))
                                                                                 for phase in phases)] for row in phased])]
    if censuses:
        lines += ["", "What held the host memory at the census nearest each run's peak: CPU tensor storages by holder "
                      "(each storage once), bytes objects of 1 MiB or more, and the anonymous memory no Python object "
                      "accounts for (C++ allocations, libraries, free lists). Storages mapped from files count with "
                      "their holder but are file pages:", "",
                  *_markdown(["bench", *header], censuses)]
    for time_header in dict.fromkeys(tuple(header) for header, _ in timings):  # one table per set of phases
        lines += ["", "Seconds of each compile per phase (read from the compiling thread's stack), and of them in the "
                      "plugins' hooks:", "",
                  *_markdown(["bench", *time_header], [row for header, row in timings if tuple(header) == time_header])]
    for words, found in extra.items():
        if found:
            lines += ["", f"{words}:", "", *_markdown(["bench", *extra_header], found)]
    if code:
        lines += ["", "GPU code in each artifact (`aoti-hooks inspect`, each against the target):", "",
                  *code]
    if shared:
        lines += ["", SHARED_MEMORY_HEADING, "", *shared]
    if disk:
        lines += ["", DISK_HEADING, "", *disk]
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    path = results / f"{name}.md"
    path.write_text("\n".join(lines) + "\n" + _notes(path))
    return path


NOTES = "## Notes"


def _notes(path: Path) -> str:
    """The hand-written section (from a ``## Notes`` line to the end) of the table ``path`` holds now:
    what a person read from the run is kept when the table is made again."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    at = text.find(f"\n{NOTES}\n")
    return "" if at < 0 else text[at:]


DECODE_CHECK = ("steps", "logits_max_abs_vs_eager", "logits_max_abs_vs_stock", "decode_ms_per_call")


def _against(ms: float | None, stock_ms: float | None, variant: str) -> str:
    """A run's time per decode call as a multiple of stock's in its bench."""
    return f"{ms / stock_ms:.2f}×" if ms and stock_ms and variant != "stock" else "-"


PROJECTED = ("compile_s", "peak_allocated", "peak_reserved", "nvml_process_peak", "host_peak_rss", "host_peak_anonymous",
             "weight_bytes")


def projected_stock(rows: list[dict], model: str | None, layers: int) -> dict | None:
    """Stock's row for ``model`` at ``layers``, projected by a least-squares line through its measured stock rows
    (at ``layers`` too, where another suite measured it there); None unless it was measured at two depths or
    more. Stock grows about linearly in depth (per period: one more layer's weights, caches and transients)."""
    found: dict[int, dict] = {}
    for row in rows:
        if row.get("run") == "stock" and row.get("model") == model and row.get("layers"):
            found.setdefault(row["layers"], row)  # one row per depth: this suite's, else the committed table's
    if len(found) < 2:
        return None
    depths = sorted(found)
    projected: dict = {"run": "stock (projected)", "model": model, "layers": layers, "projected_from": depths}
    for key in PROJECTED:
        points = [(depth, found[depth][key]) for depth in depths if found[depth].get(key) is not None]
        if len({depth for depth, _ in points}) < 2:
            projected[key] = None
            continue
        mean_x = sum(depth for depth, _ in points) / len(points)
        mean_y = sum(value for _, value in points) / len(points)
        slope = (sum((depth - mean_x) * (value - mean_y) for depth, value in points)
                 / sum((depth - mean_x) ** 2 for depth, _ in points))
        value = mean_y + slope * (layers - mean_x)
        projected[key] = round(value, 1) if key == "compile_s" else int(value)
    return {**{key: None for key in ("peak_reserved", "host_added", "host_anonymous_added", "host_phase_peaks",
                                     "tokens_equal_stock", "caches_equal_stock", "artifact_equal_stock",
                                     *DECODE_CHECK)}, **projected}


def _measured_by(base: Path, run: str | None, commit: str) -> tuple[str, dict]:
    """The commit whose wheels measured bench ``run`` and the machine that did (the bench's own
    ``machine.json``, else the suite's). The commit is recorded in the bench's folder the first time a
    table is made of it, so a table made later, with a bench measured in a later lease, keeps it."""
    for machine_file in ([base / run / "machine.json"] if run else []) + [base / "machine.json"]:
        try:
            machine = json.loads(machine_file.read_text())
            break
        except (OSError, ValueError):
            continue
    else:
        raise SystemExit(f"suite.py: {base / 'machine.json'} is missing; the runner writes it on the machine that "
                         f"measures: copy the whole suite folder here")
    if run is None:
        return commit, machine
    recorded = base / run / "commit"
    try:
        return recorded.read_text().strip() or commit, machine
    except OSError:
        recorded.write_text(commit + "\n")
        return commit, machine


def _committed_rows(name: str, results: Path) -> list[dict]:
    """The rows of suite ``name``'s committed table (none when it has not been made)."""
    try:
        return json.loads((results / f"{name}.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the measurement suites' one runner")
    parser.add_argument("verb", choices=("list", "start", "run", "poll", "table"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--into", default=DEFAULT_INTO, help=f"the suites' raw reports (default {DEFAULT_INTO})")
    parser.add_argument("--copy-to", help="poll: copy the suite's reports and logs here every 15 s ($OUT)")
    parser.add_argument("--seconds", type=float, default=560, help="poll: how long to wait at most (default 560)")
    parser.add_argument("--results", default=str(RESULTS), help="table: where NAME.md and NAME.json go (bench/results)")
    parser.add_argument("--commit", help="table: the commit whose wheels measured (default: this checkout's HEAD)")
    parser.add_argument("--only", help="start, run: these runs of the suite only (comma-separated), e.g. gemma4")
    args = parser.parse_args(argv)
    if args.verb == "list":
        for name, (what, _, _) in SUITES.items():
            print(f"{name:10} {what}")
        return 0
    if args.name not in SUITES:
        print(f"suite.py: no suite {args.name!r}; the suites are: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    only = args.only.split(",") if args.only else None
    unknown = sorted(set(only or []) - set(SUITES[args.name][1]))
    if unknown:
        print(f"suite.py: suite {args.name} has no run {unknown[0]!r}; its runs are: {', '.join(SUITES[args.name][1])}",
              file=sys.stderr)
        return 2
    if args.verb == "start":
        start(args.name, args.into, only)
        return 0
    if args.verb == "run":
        return run_suite(args.name, args.into, only)
    if args.verb == "poll":
        return poll(args.name, args.into, args.copy_to, args.seconds)
    print(f"written: {table(args.name, args.into, Path(args.results), args.commit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
