"""bench/suite.py, the one runner of the measurement suites, run for real on its CPU suite."""

import json
import pathlib
import subprocess
import sys
import tarfile
from importlib import metadata

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITE = [sys.executable, str(ROOT / "bench" / "suite.py")]


def suite(*args, **kwargs):
    return subprocess.run([*SUITE, *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kwargs)


@pytest.mark.compile
def test_a_suite_runs_detached_is_copied_out_resumes_and_makes_its_table(tmp_path):
    into, out, results = tmp_path / "into", tmp_path / "out", tmp_path / "results"
    out.mkdir()
    assert suite("start", "smoke", "--into", into).returncode == 0  # returns at once; the suite runs detached
    polled = suite("poll", "smoke", "--into", into, "--copy-to", out, "--seconds", 600)
    assert polled.returncode == 0 and polled.stdout.strip() == "ok", polled.stdout + polled.stderr
    with tarfile.open(out / "smoke.tgz") as archive:  # what a call brings back: reports and logs, no artifacts
        names = archive.getnames()
    assert {"smoke/machine.json", "smoke/demo/report.json"} <= set(names) and not [name for name in names if name.endswith((".pt2", ".so"))]
    made = suite("table", "smoke", "--into", into, "--results", results)
    assert made.returncode == 0, made.stderr
    rows = json.loads((results / "smoke.json").read_text())["rows"]
    assert [row["run"] for row in rows] == ["stock", "kv_elide"] and all(row["host_peak_rss"] > 0 for row in rows)
    table = (results / "smoke.md").read_text()
    assert "aoti-hooks bench --model demo:tiny --plugins kv_elide" in table and "| demo | kv_elide |" in table
    assert "Seconds of each compile per phase" in table and "lowering |" in table and "in plugins' hooks |" in table
    assert "Disk: the most the disk of the bench's work folder held" in table and "- demo, kv_elide: " in table
    # The machine line is the measuring machine's own (written there by the runner, for each bench), not the
    # table maker's; the commit is recorded with the bench the first time a table is made of it.
    assert (into / "smoke" / "demo" / "commit").read_text().strip()
    (into / "smoke" / "demo" / "machine.json").write_text(json.dumps(
        {"gpus": "NVIDIA H200", "cpus": 16, "host": "lent", "python": "3.12.3", "versions": "torch 2.11.0+cu130"}))
    assert suite("table", "smoke", "--into", into, "--results", results, "--commit", "abc1234").returncode == 0
    text = (results / "smoke.md").read_text()
    assert "torch 2.11.0+cu130; NVIDIA H200, 16 CPUs, Python 3.12.3" in text and "abc1234" not in text
    for machine in (into / "smoke" / "machine.json", into / "smoke" / "demo" / "machine.json"):
        machine.unlink()
    missing = suite("table", "smoke", "--into", into, "--results", results)
    assert missing.returncode == 1 and "machine.json is missing" in missing.stderr
    # Started again (a machine that went mid-suite), a complete run is not run again.
    assert suite("start", "smoke", "--into", into).returncode == 0
    assert suite("poll", "smoke", "--into", into, "--seconds", 120).returncode == 0
    assert "demo: complete, not run again" in (into / "smoke" / "runner.log").read_text()
    assert suite("table", "smoke", "--into", into, "--results", results).returncode == 0
    assert f"torch {metadata.version('torch')}" in (results / "smoke.md").read_text()


def test_an_unknown_suite_is_one_sentence():
    done = suite("start", "headlines")
    assert done.returncode == 2
    assert "no suite 'headlines'; the suites are: headline, host, host-cpu, targets-gemma4, scale, compile-time, whole, two-pass" \
        in done.stderr


def test_stock_is_projected_from_the_depths_it_was_measured_at():
    sys.path.insert(0, str(ROOT / "bench"))
    from suite import projected_stock

    gemma = "executorch:gemma4_31b"
    rows = [{"run": "stock", "model": gemma, "layers": 6, "compile_s": 246.0, "peak_allocated": 8 * 2**30, "weight_bytes": 100},
            {"run": "stock", "model": gemma, "layers": 12, "compile_s": 427.0, "peak_allocated": 14 * 2**30, "weight_bytes": 200},
            {"run": "all four", "model": gemma, "layers": 12, "compile_s": 472.0, "peak_allocated": 2**29},
            {"run": "stock", "model": "hf:qwen3", "layers": 4, "compile_s": 10.0}]
    projected = projected_stock(rows, gemma, 60)
    assert projected["projected_from"] == [6, 12] and projected["run"] == "stock (projected)"
    assert projected["peak_allocated"] == 8 * 2**30 + 9 * 6 * 2**30  # 1 GiB a layer, 54 layers on
    assert projected["compile_s"] == round(246.0 + 54 * (427.0 - 246.0) / 6, 1) and projected["weight_bytes"] == 1000
    assert projected["nvml_process_peak"] is None and projected["tokens_equal_stock"] is None
    assert projected_stock(rows[:1] + rows[2:], gemma, 60) is None  # one depth: no line
    rows.append({"run": "stock", "model": gemma, "layers": 24, "compile_s": 700.0, "peak_allocated": 26 * 2**30,
                 "weight_bytes": 400})
    assert projected_stock(rows, gemma, 60)["projected_from"] == [6, 12, 24]  # a least-squares line through three
    at_six = projected_stock(rows, gemma, 6)  # a depth measured elsewhere is on the line too
    assert at_six["projected_from"] == [6, 12, 24] and abs(at_six["compile_s"] - 246.0) < 15


def test_a_run_that_failed_is_named_with_its_error_not_as_not_run(tmp_path):
    into, results = tmp_path / "into", tmp_path / "results"
    (into / "smoke").mkdir(parents=True)
    (into / "smoke" / "machine.json").write_text(json.dumps(
        {"gpus": "NVIDIA H100", "cpus": 16, "host": "lent", "python": "3.12.3", "versions": "torch 2.11.0"}))
    (into / "smoke" / "demo.log").write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                             "OSError: Could not load this library: libcustom_ops_aot_lib.so\n")
    made = suite("table", "smoke", "--into", into, "--results", results)
    assert made.returncode == 0, made.stderr
    table = (results / "smoke.md").read_text()
    assert "- demo failed: OSError: Could not load this library: libcustom_ops_aot_lib.so" in table
    assert "Not run yet" not in table


def test_a_table_gives_the_decode_check_and_each_artifacts_gpu_code(tmp_path):
    """What a suite of plain AOTI packages measured after the compile: logits against eager and stock, the
    time per decode call against stock's, and the GPU code each artifact holds against the target."""
    into, results = tmp_path / "into", tmp_path / "results"
    (into / "smoke" / "demo").mkdir(parents=True)
    (into / "smoke" / "machine.json").write_text(json.dumps(
        {"gpus": "NVIDIA H100", "cpus": 16, "host": "lent", "python": "3.12.3", "versions": "torch 2.11.0"}))

    def run(variant, plugins, shared, built_for, problems, report):
        return {"variant": variant, "plugins": plugins, "compile_s": 100.0, "host_peak_rss": 2**30, "weight_bytes": 2**29,
                "report": report, "artifact": {"kernels": 3, "kernels_readable": True, "max_shared_bytes": shared,
                                               "built_for": built_for, "problems": problems, "target": "rtx4090,h100"}}
    refused = {"target": {"refused_for_target_smem": ["triton_mm (110592 B > 101376 B)"] * 2}}
    report = {"model": "hf:qwen3", "shape": {"layers": 28}, "complete": True,
              "runs": [run("stock", [], 110592, ["sm_90"], ["rtx4090: no image for sm_89"], {}),
                       run("kv_elide", ["kv_elide"], 49152, ["sm_89", "sm_90"], [], refused)],
              "check": {"stock": {"steps": 64, "logits_max_abs_vs_eager": 0.0571, "logits_max_abs_vs_stock": 0.0,
                                  "logits_equal_stock": True, "decode_ms_per_call": 4.0},
                        "kv_elide": {"steps": 64, "logits_max_abs_vs_eager": 0.0547, "logits_max_abs_vs_stock": 0.0332,
                                     "logits_equal_stock": False, "decode_ms_per_call": 5.0}}}
    (into / "smoke" / "demo" / "report.json").write_text(json.dumps(report))
    made = suite("table", "smoke", "--into", into, "--results", results)
    assert made.returncode == 0, made.stderr
    table = (results / "smoke.md").read_text()
    assert "| demo | stock | 64 | 0.0571 | 0 | yes | 4 | - |" in table  # as bench's report writes the check
    assert "| demo | kv_elide | 64 | 0.0547 | 0.0332 | NO | 5 | 1.25× |" in table
    assert "- demo, stock: 3 kernels, up to 110592 B shared; built for sm_90; rtx4090: no image for sm_89" in table
    assert ("- demo, kv_elide: 3 kernels, up to 49152 B shared; built for sm_89, sm_90; nothing against the target; "
            "2 autotune choice(s) refused for shared memory over the target's") in table
    rows = json.loads((results / "smoke.json").read_text())["rows"]
    assert [row["decode_ms_per_call"] for row in rows] == [4.0, 5.0] and rows[1]["tokens_equal_stock"] is False


def test_a_table_gives_each_executorch_runs_tokens_against_eagers_and_where_they_differ(tmp_path):
    """The suite `whole` runs no stock: its verdict is the tokens against eager's, and a differing step
    comes with eager's logit gap and top-2 margin there (the delegates return tokens only)."""
    into, results = tmp_path / "into", tmp_path / "results"
    (into / "smoke" / "demo").mkdir(parents=True)
    (into / "smoke" / "machine.json").write_text(json.dumps(
        {"gpus": "NVIDIA H200", "cpus": 16, "host": "lent", "python": "3.12.3", "versions": "torch 2.11.0"}))
    runs = [{"variant": variant, "plugins": [variant], "compile_s": 100.0, "host_peak_rss": 2**30, "weight_bytes": 2**29,
             "report": {}} for variant in ("kv_elide", "all")]
    entry = {"steps": 5, "tokens": [1, 2, 3, 4, 5], "eager_tokens": [1, 2, 3, 4, 5], "tokens_equal_eager": True,
             "tokens_equal_stock": None, "caches_compared": 2, "caches_of_eager": 2, "caches_max_abs_vs_eager": 0.0,
             "caches_equal_stock": None}
    differing = {**entry, "tokens": [1, 2, 3, 9, 5], "tokens_equal_eager": False,
                 "differing_steps": [{"step": 3, "token": 9, "eager_token": 4, "logit_gap": 0.0156, "top2_margin": 0.0156}]}
    (into / "smoke" / "demo" / "report.json").write_text(json.dumps(
        {"model": "executorch:gemma4_31b", "shape": {"layers": 60}, "complete": True, "stock_run": False,
         "runs": runs, "check": {"kv_elide": entry, "all": differing}}))
    made = suite("table", "smoke", "--into", into, "--results", results)
    assert made.returncode == 0, made.stderr
    table = (results / "smoke.md").read_text()
    assert "- demo, kv_elide: tokens over 5 calls (a prefill, then teacher-forced decode steps) = eager's: yes" in table
    assert ("- demo, all: tokens over 5 calls (a prefill, then teacher-forced decode steps) = eager's: NO; tokens not "
            "eager's: decode 3 gave 9 for eager's 4, which eager's logits put 0.0156 below it (eager's top two 0.0156 "
            "apart)") in table


def test_a_run_that_did_not_fit_its_limit_says_so_instead_of_a_compile_time(tmp_path):
    """A run under --gpu-memory-limit that ran out of memory is a measured result, but not a compile: its row
    names the limit and the error, never a compile time against stock's."""
    into, results = tmp_path / "into", tmp_path / "results"
    (into / "smoke" / "demo").mkdir(parents=True)
    (into / "smoke" / "machine.json").write_text(json.dumps(
        {"gpus": "NVIDIA H100", "cpus": 16, "host": "lent", "python": "3.12.3", "versions": "torch 2.11.0"}))
    stock = {"variant": "stock", "plugins": [], "compile_s": 250.0, "peak_allocated": 8 * 2**30, "weight_bytes": 2**30}
    ours = {"variant": "kv_elide", "plugins": ["kv_elide"], "compile_s": 220.0, "peak_allocated": 2**29,
            "weight_bytes": 2**30, "gpu_memory_limit": 2**28, "fits": False,
            "did_not_fit": "RuntimeError: CUDA out of memory. Tried to allocate 222.00 MiB."}
    (into / "smoke" / "demo" / "report.json").write_text(json.dumps(
        {"model": "demo:tiny", "shape": {"layers": 2}, "complete": True, "runs": [stock, ours]}))
    made = suite("table", "smoke", "--into", into, "--results", results)
    assert made.returncode == 0, made.stderr
    table = (results / "smoke.md").read_text()
    assert "| demo | kv_elide | did not fit 256.0 MiB | 512.0 MiB |" in table and "0.88× stock" not in table
    assert ("- demo, kv_elide: did not fit its limit of 256.0 MiB (the caching allocator's; the CUDA context is outside "
            "it): RuntimeError: CUDA out of memory. Tried to allocate 222.00 MiB. Its figures are up to the failure, "
            "after 220.0 s.") in table
    assert json.loads((results / "smoke.json").read_text())["rows"][1]["did_not_fit"].startswith("RuntimeError")


def test_a_suite_measured_over_two_leases_names_each_benchs_commit_and_machine(tmp_path):
    """A suite too long for one lease: each bench keeps the machine that measured it and the commit its
    table was first made at, and the table says the compile times compare only within a bench."""
    into, results = tmp_path / "into", tmp_path / "results"
    machines = {"gemma4-p1": {"gpus": "NVIDIA H100 80GB HBM3", "cpus": 16, "host": "a", "python": "3.12.3",
                              "versions": "torch 2.11.0"},
                "gemma4-p2": {"gpus": "NVIDIA H200", "cpus": 16, "host": "b", "python": "3.12.3",
                              "versions": "torch 2.11.0"}}
    for bench, layers in (("gemma4-p1", 6), ("gemma4-p2", 12)):
        (into / "compile-time" / bench).mkdir(parents=True)
        (into / "compile-time" / bench / "machine.json").write_text(json.dumps(machines[bench]))
        runs = [{"variant": variant, "plugins": plugins, "compile_s": seconds, "host_peak_rss": 2**30,
                 "weight_bytes": 2**29, "report": {}}
                for variant, plugins, seconds in (("stock", [], 100.0 * layers), ("all four", ["kv_elide"], 104.0 * layers))]
        (into / "compile-time" / bench / "report.json").write_text(json.dumps(
            {"model": "executorch:gemma4_31b", "shape": {"layers": layers}, "complete": True, "runs": runs}))
        if bench == "gemma4-p1":  # the first lease: its table made, its commit recorded with it
            (into / "compile-time" / "machine.json").write_text(json.dumps(machines[bench]))
            first = suite("table", "compile-time", "--into", into, "--results", results, "--commit", "aaaaaaa")
            assert first.returncode == 0, first.stderr
            assert "Commit aaaaaaa; torch 2.11.0; NVIDIA H100 80GB HBM3" in (results / "compile-time.md").read_text()
            with open(results / "compile-time.md", "a") as table:  # what a person read from the run
                table.write("\n## Notes\n\nRead from the first lease.\n")
    made = suite("table", "compile-time", "--into", into, "--results", results, "--commit", "bbbbbbb")
    assert made.returncode == 0, made.stderr
    table = (results / "compile-time.md").read_text()
    assert ("Measured in several runs, compile times comparable only within a bench: gemma4-p1: Commit aaaaaaa; "
            "torch 2.11.0; NVIDIA H100 80GB HBM3, 16 CPUs, Python 3.12.3; gemma4-p2: Commit bbbbbbb; torch 2.11.0; "
            "NVIDIA H200, 16 CPUs") in table
    assert "| gemma4-p2 | all four | 1248.0 s (1.04× stock) |" in table and "Not run yet" not in table
    assert table.endswith("\n## Notes\n\nRead from the first lease.\n")  # kept when the table is made again
    measured_by = json.loads((results / "compile-time.json").read_text())["measured_by"]
    assert {bench: entry["commit"] for bench, entry in measured_by.items()} == {"gemma4-p1": "aaaaaaa",
                                                                              "gemma4-p2": "bbbbbbb"}
