"""`aoti-hooks bench` on the CPU: a torch.export.save file compiled stock and with kv_elide,
each in its own process, sampled over time with phases; report.json, report.md, timeline.png."""

import json
import time

import pytest
import torch

from aoti_hooks.core.text import format_bytes
from aoti_hooks.tools.bench import over_budget
from aoti_hooks.tools.cli import main
from aoti_hooks.tools.harness.census import GROUPS
from aoti_hooks.tools.models.decoder import CONFIGS, build, export_decoder


@pytest.mark.compile
def test_bench_a_saved_program(tmp_path, capsys):
    """With --jobs 2 the two compiles run each in its own process; the report keeps the runs in their
    planned order whichever finishes first, and says they shared the machine. (That they run side by
    side is the scheduler's, tested with stand-ins below: real processes' timing depends on the load.)"""
    program = tmp_path / "tiny.pt2"
    torch.export.save(export_decoder(build(CONFIGS["tiny"])), str(program))
    out = tmp_path / "bench"
    assert main(["bench", str(program), "--plugins", "kv_elide", "--option", "kv_elide.min_bytes=1KiB",
                 "--out", str(out), "--max-host-peak", "1KiB", "--jobs", "2"]) == 3  # a gate no compile process can meet
    printed = capsys.readouterr()
    assert "host memory only" in printed.out and "[2/2] compiling kv_elide" in printed.err
    report = json.loads((out / "report.json").read_text())
    stock, ours = report["runs"]
    assert report["jobs"] == 2 and "Compiled up to 2 runs at once" in (out / "report.md").read_text()
    peaks = [json.loads(line.split(" ", 1)[1]) for line in printed.out.splitlines() if line.startswith("aoti-hooks-peak ")]
    assert sorted((p["run"], p["host_peak_rss"]) for p in peaks) == [("kv_elide", ours["host_peak_rss"]),
                                                                     ("stock", stock["host_peak_rss"])]
    assert printed.err.count("over budget:") == 1 and "kv_elide: host peak" in printed.err  # stock is not gated
    assert report["over_budget"] == [f"kv_elide: host peak {format_bytes(ours['host_peak_rss'])} "
                                     f"({ours['host_peak_rss']} B) > 1.0 KiB (1024 B)"]
    assert "Budget for runs with plugins: host peak 1.0 KiB" in (out / "report.md").read_text()
    assert over_budget(report["runs"], None, ours["host_peak_rss"]) == []  # at the limit is within it
    assert (stock["variant"], ours["variant"]) == ("stock", "kv_elide")
    assert all(isinstance(run["disk_peak_added"], int) for run in report["runs"])  # the work folder's disk, sampled
    assert f"- kv_elide: {format_bytes(ours['disk_peak_added'])}" in (out / "report.md").read_text()
    assert ours["report"]["kv_elide"]["tensors_claimed"] == 2 * CONFIGS["tiny"].layers
    assert stock["report"] == {}
    for run in report["runs"]:
        phases = {sample[4] for sample in run["timeline"]}
        # Read from the compiling thread's stack every 20 ms: a tiny model's serialization can fall
        # between two samples when two compiles share two cores (each phase: the test below).
        assert "lowering" in phases and phases <= {"lowering", "serialization", "packaging", "move to device", "autotune", "other"}, phases
        assert len(run["timeline"]) >= 10 and run["host_peak_rss"] >= max(sample[1] for sample in run["timeline"])
        assert run["package_bytes"] > 0 and run["weight_bytes"] == sum(
            t.numel() * t.element_size() for t in build(CONFIGS["tiny"]).parameters())
        seconds = sum(run["phase_seconds"].values())  # every sampled moment of the compile goes to one phase
        assert "lowering" in run["phase_seconds"] and abs(seconds - run["compile_s"]) <= 0.1 * run["compile_s"] + 0.5
        # each function's seconds on the compiling thread's stack: Inductor's compile among them, none longer than it
        functions = run["function_seconds"]
        assert any(name.startswith("compile_fx.py:") for name in functions), sorted(functions)[:20]
        assert max(functions.values()) <= run["compile_s"] + 0.5
    assert ours["report"]["time"]["kv_elide.claim_tensors_s"] >= 0  # the seconds in each plugin's hooks
    assert "Seconds of each compile per phase" in (out / "report.md").read_text()
    assert "kv_elide: caches_found=6, tensors_claimed=6" in (out / "report.md").read_text()
    for run in report["runs"]:  # the program's tensors were loaded before the compile: the census finds them there
        census = run["host_census"]
        assert census["groups"]["held before the compile"] >= run["weight_bytes"] > 0, census
        assert census["rss"] <= run["host_peak_rss"] and set(census["groups"]) == set(GROUPS)
    assert "What held the host memory at the census nearest each run's peak" in (out / "report.md").read_text()
    pytest.importorskip("matplotlib")
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.compile
def test_bench_without_stock_runs_only_the_plugins_and_says_so(tmp_path, capsys):
    from aoti_hooks.tools.bench.report import NO_STOCK

    out = tmp_path / "bench"
    assert main(["bench", "--model", "demo:tiny", "--plugins", "kv_elide", "--no-stock", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [run["variant"] for run in report["runs"]] == ["kv_elide"] and report["stock_run"] is False
    assert NO_STOCK in (out / "report.md").read_text() and "[1/1] compiling kv_elide" in capsys.readouterr().err


def test_the_timeline_marks_each_phase_by_the_functions_on_the_watched_threads_stack():
    from aoti_hooks.tools.harness.measure import Sampler

    with Sampler(interval=3600, timeline=True) as sampler:  # its own thread samples once; these on demand
        while not sampler.samples:  # the thread's one sample comes first
            time.sleep(0.001)

        def aoti_compile_and_package():
            sampler._sample()

            def move_to_device_pass():
                sampler._sample()

            def benchmark_all_configs():
                sampler._sample()

            class AotCodeCompiler:  # matched by its qualified name: a bare ``compile`` marks nothing
                @staticmethod
                def compile():
                    sampler._sample()

            def compile():
                sampler._sample()

            def package_aoti():
                sampler._sample()

            for phase in (move_to_device_pass, benchmark_all_configs, AotCodeCompiler.compile, package_aoti):
                phase()
            compile()

        aoti_compile_and_package()
        sampler._sample()
    marked = [sample[4] for sample in sampler.samples[1:-1]]  # not the thread's first nor __exit__'s
    assert marked == ["lowering", "move to device", "autotune", "serialization", "packaging", "lowering", "other"], marked
    assert set(sampler.phase_peaks) == {"other", "lowering", "move to device", "autotune", "serialization", "packaging"}
    assert sampler.host_baseline > 0 and sampler.host_anonymous_peak <= sampler.host_peak


@pytest.mark.parametrize("argv, message", [
    (["bench"], "give either a PROGRAM.pt2"),
    (["bench", "--model", "demo:nope"], "unknown model 'demo:nope'; choose one of demo:cpu"),
    (["bench", "--model", "demo:tyni"], "unknown model 'demo:tyni' (did you mean 'demo:tiny'?)"),
    (["bench", "--model", "demo:tiny", "--plugins", ""], "--plugins is empty; name at least one plugin"),
    (["bench", "--model", "demo:tiny", "--jobs", "0"], "--jobs must be 1 (one compile at a time) or more"),
    (["bench", "--model", "demo:tiny", "--peak-breakdown"], "--peak-breakdown reads the CUDA allocator's history and needs a CUDA GPU"),
    (["bench", "missing.pt2"], "program 'missing.pt2' does not exist"),
    (["bench", "--model", "demo:tiny", "--backend-spec", "low_memory_mode=ON"], "--backend-spec sets ExecuTorch compile specs"),
    (["bench", "--model", "demo:tiny", "--plugins", "no_such"], "unknown plugin 'no_such'"),
    (["bench", "--model", "demo:tiny", "--backend", "executorch"], "needs a CUDA GPU"),
    (["bench", "--model", "demo:tiny", "--max-gpu-peak", "8GiB"], "--max-gpu-peak needs a CUDA GPU to measure"),
    (["bench", "--model", "demo:tiny", "--gpu-memory-limit", "2GiB"], "--gpu-memory-limit caps what a run may allocate"),
    (["demo", "--config", "tiny", "--gpu-memory-limit", "2GiB"], "--gpu-memory-limit caps what the compile may allocate"),
    (["bench", "--model", "demo:tiny", "--common-spec", "autotune_at_compile_time"], "--common-spec 'autotune_at_compile_time' must look like <key>=<value>"),
    (["bench", "--model", "demo:tiny", "--common-spec", "a=b"], "--common-spec sets ExecuTorch compile specs"),
    (["bench", "missing.pt2", "--lm-head", "int4"], "--lm-head changes a built-in model"),
    (["bench", "--model", "demo:tiny", "--inductor", "autotune_at_compile_time"],
     "--inductor 'autotune_at_compile_time' must look like <key>=<value>, e.g. triton.autotune_at_compile_time=False"),
    (["bench", "--model", "demo:tiny", "--inductor", "autotune_at_compile_time=False"], "(did you mean triton.autotune_at_compile_time?)"),
    (["bench", "--model", "demo:tiny", "--inductor", "triton.autotune_at_compile_time=maybe"], "takes True or False, not 'maybe'"),
    (["bench", "--model", "executorch:gemma4_31b"], "executorch:gemma4_31b is lowered through ExecuTorch's CudaBackend and needs a CUDA GPU"),
    (["bench", "--model", "executorch:gemma4_31b", "--backend", "torch"], "leave out --backend or give --backend executorch"),
    (["bench", "--model", "executorch:gemma4", "--layers", "2"], "(did you mean 'executorch:gemma4_31b'?)"),
    (["bench", "--model", "demo:tiny", "--weights", "bf16"], "--weights chooses the int4 or bf16 weights of --model executorch:gemma4_31b"),
    (["bench", "--model", "demo:tiny", "--check-steps", "2"], "--check-steps checks decode steps of --model executorch:gemma4_31b or hf:<name>"),
    (["bench", "--model", "executorch:gemma4_31b", "--check-steps", "-1"], "--check-steps must be 0"),
    (["bench", "--model", "executorch:gemma4_31b", "--periods", "0"], "--periods needs N >= 1"),
    (["bench", "--model", "executorch:gemma4_31b", "--ctx", "8"], "--ctx must be at least 16"),
    (["bench", "--model", "executorch:gemma4_31b", "--lm-head", "int4"], "--lm-head changes the demo decoder"),
    (["bench", "--model", "demo:tiny", "--plugins", "kv_elide", "--option", "chunked_dequant.max_transient=1MiB"],
     "--option 'chunked_dequant.max_transient=1MiB' sets an option of chunked_dequant, which is not in --plugins "
     "(kv_elide); add chunked_dequant to --plugins or leave the option out"),
    (["bench", "--model", "demo:tiny", "--plugins", "kv_elide", "--option", "kv_elide"],
     "--option 'kv_elide' must look like <plugin>.<option>=<value> for a plugin in --plugins (kv_elide)"),
    (["bench", "--model", "demo:tiny", "--plugins", "kv_elide,chunked_dequant.max_transient=1MiB"],
     "--plugins item 'chunked_dequant.max_transient=1MiB' sets an option of chunked_dequant, which is not in --plugins (kv_elide)"),
    (["bench", "--model", "demo:tiny", "--plugins", "kv_elide,kv_elide.min_bytes=lots"], "min_bytes"),
    (["bench", "--model", "demo:tiny", "--methods-apart"],
     "--methods-apart lowers the prefill and decode methods of --model executorch:gemma4_31b each in a process of its own"),
])
def test_bench_refuses_bad_input_in_one_sentence(argv, message, capsys):
    if any("executorch" in arg or arg in ("--max-gpu-peak", "--peak-breakdown") for arg in argv) and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_budget_must_be_a_size(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "--model", "demo:tiny", "--max-host-peak", "8 parsecs"])
    assert stopped.value.code == 2
    assert "argument --max-host-peak: '8 parsecs': expected a size" in capsys.readouterr().err


def test_periods_only_for_alternating_models(capsys):
    assert main(["bench", "--model", "demo:tiny", "--periods", "2"]) == 2
    assert "--periods needs a model with alternating layers" in capsys.readouterr().err


def test_each_plugins_list_is_a_run_with_its_own_options():
    from aoti_hooks.tools.bench import variants

    runs = variants([["kv_elide", "chunked_dequant"], ["kv_elide"]], {"low_memory_mode": "ON"},
                    {"kv_elide": {"min_bytes": "1KiB"}, "chunked_dequant": {"max_transient": "256MiB"}},
                    {"autotune_at_compile_time": "OFF"})
    assert [run["variant"] for run in runs] == ["stock", "stock (low_memory_mode=ON)", "kv_elide,chunked_dequant", "kv_elide"]
    assert runs[2]["options"] == {"kv_elide": {"min_bytes": "1KiB"}, "chunked_dequant": {"max_transient": "256MiB"}}
    assert runs[3]["options"] == {"kv_elide": {"min_bytes": "1KiB"}}
    assert [run["backend_specs"] for run in runs] == [
        {"autotune_at_compile_time": "OFF"}, {"autotune_at_compile_time": "OFF", "low_memory_mode": "ON"},
        {"autotune_at_compile_time": "OFF"}, {"autotune_at_compile_time": "OFF"}]


def test_a_runs_own_options_override_the_common_ones_and_name_the_run():
    from aoti_hooks.tools.bench import variants

    runs = variants([["kv_elide", "const_offload"], ["kv_elide", "const_offload"]], {},
                    {"kv_elide": {"min_bytes": "1KiB"}}, None,
                    [{}, {"const_offload": {"spill": "disk"}, "kv_elide": {"min_bytes": "2KiB"}}])
    assert [run["variant"] for run in runs] == [
        "stock", "kv_elide,const_offload", "kv_elide,const_offload (const_offload.spill=disk,kv_elide.min_bytes=2KiB)"]
    assert runs[1]["options"] == {"kv_elide": {"min_bytes": "1KiB"}}
    assert runs[2]["options"] == {"kv_elide": {"min_bytes": "2KiB"}, "const_offload": {"spill": "disk"}}


def test_the_executorch_output_check_compares_with_eager_and_stock_and_names_failures(tmp_path, monkeypatch):
    """The check's processes run delegates on a GPU; here a stand-in saves and returns what they would
    (tokens, caches, through the workers' own `saved_outputs`), so the comparisons and the report are
    what is tested."""
    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness import launch
    from aoti_hooks.tools.harness.launch import StepFailed
    from aoti_hooks.tools.models import et_gemma4

    def stand_in(command, spec, folder, name, env):
        if name == "outputs-run1":
            raise StepFailed("the outputs-run1 step failed (exit 1); log: run1.log\nTraceback ...")
        off = {"outputs-run2": 0.5}.get(name, 0.0)
        tokens = [7, 8, 9] if name != "outputs-run2" else [7, 8, 10]
        logits = None
        if name == "outputs-eager":  # eager's alone: at the last step 9 leads 10 by 0.25, the third by 1.0
            logits = torch.zeros(3, 16)
            logits[2, 9], logits[2, 10], logits[2, 3] = 2.0, 1.75, 1.0
        return et_gemma4.saved_outputs(tokens, {"k": torch.ones(3) + off, "v": torch.zeros(3)}, spec["logits"], logits)

    monkeypatch.setattr(launch, "run_in_worker", stand_in)
    planned = [{"variant": "stock"}, {"variant": "broken"}, {"variant": "ours"}]
    check = bench.checks.check_executorch_outputs({}, planned, tmp_path, tmp_path, 2)
    assert check["stock"]["tokens_equal_eager"] and check["stock"]["caches_equal_stock"]
    assert check["broken"] == {"error": "the outputs-run1 step failed (exit 1); log: run1.log"}
    ours = check["ours"]
    assert (ours["tokens_equal_eager"], ours["tokens_equal_stock"], ours["caches_equal_stock"]) == (False, False, False)
    assert ours["caches_max_abs_vs_eager"] == 0.5 and ours["caches_compared"] == 2
    assert ours["differing_steps"] == [{"step": 2, "token": 10, "eager_token": 9, "logit_gap": 0.25, "top2_margin": 0.25}]
    assert "differing_steps" not in check["stock"]
    stock_run = {"variant": "stock", "plugins": [], "compile_s": 1.0, "host_peak_rss": 1, "peak_allocated": 1,
                 "peak_reserved": 1, "nvml_peak": 1, "package_bytes": 1, "weight_bytes": 1, "artifacts": {}, "report": {}}
    text = bench.report.format_report({"device": "cuda:0", "backend": "executorch", "model": "executorch:gemma4_31b",
                                "program": None, "runs": [stock_run], "check": check})
    assert "- broken: check failed: the outputs-run1 step failed" in text
    assert ("- ours: tokens not eager's: decode 2 gave 10 for eager's 9, which eager's logits put 0.25 below it "
            "(eager's top two 0.25 apart)") in text
    assert [line.split() for line in text.splitlines() if line.startswith("ours ")] == [
        ["ours", "3", "NO", "NO", "2/2", "0.5", "NO"]]


def test_the_output_check_without_stock_compares_with_eager_only(tmp_path, monkeypatch):
    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness import launch
    from aoti_hooks.tools.harness.launch import StepFailed
    from aoti_hooks.tools.models import et_gemma4

    def stand_in(command, spec, folder, name, env):
        if name == "outputs-run0":
            raise StepFailed("the outputs-run0 step failed (exit 1); log: run0.log")
        return et_gemma4.saved_outputs([1], {}, spec["logits"])

    monkeypatch.setattr(launch, "run_in_worker", stand_in)
    check = bench.checks.check_executorch_outputs({}, [{"variant": "stock"}, {"variant": "ours"}], tmp_path, tmp_path, 1)
    assert check["ours"]["tokens_equal_eager"] and check["ours"]["tokens_equal_stock"] is None
    assert "error" in check["stock"]


def test_runs_compiled_side_by_side_report_each_process_own_nvml_figure():
    """With --jobs > 1 NVML's device total sums every compile on the GPU; the report shows each
    process's own figure instead, labelled, and a partial report without stock marks .ptd as unknown."""
    from aoti_hooks.tools import bench

    def run(variant, device_total, own, ptd):
        return {"variant": variant, "plugins": [] if variant == "stock" else ["kv_elide"], "compile_s": 1.0,
                "host_peak_rss": 1, "peak_allocated": 1, "peak_reserved": 1, "nvml_peak": device_total,
                "nvml_process_peak": own, "package_bytes": 1, "weight_bytes": 1,
                "artifacts": {"aoti_cuda_blob.ptd": [1, ptd]}, "report": {}}

    stock, ours = run("stock", 30 * 2**30, 3 * 2**30, "a"), run("kv_elide", 30 * 2**30, 2 * 2**30, "a")
    shared = {"device": "cuda:0", "backend": "executorch", "model": None, "program": "p.pt2", "jobs": 2}
    text = bench.report.format_report({**shared, "runs": [stock, ours]})
    assert "NVML peak (process)" in text and "30.00 GiB" not in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("stock ", "kv_elide "))}
    assert "3.00 GiB" in rows["stock"] and "2.00 GiB" in rows["kv_elide"]
    assert "Compiled up to 2 runs at once" in text
    one_at_a_time = bench.report.format_report({**shared, "jobs": 1, "runs": [stock, ours]})
    assert "30.00 GiB" in one_at_a_time and "NVML peak (process)" not in one_at_a_time
    partial = bench.report.format_report({**shared, "runs": [ours], "complete": False})  # stock not finished yet
    assert [line.split()[-1] for line in partial.splitlines() if line.startswith("kv_elide ")] == ["?"]


def test_nvml_per_process_figure_counts_only_that_process():
    """No NVML here: a stand-in driver library fills the process table as
    nvmlDeviceGetComputeRunningProcesses_v3 does, so the parsing and the sum are what is tested."""
    import ctypes

    from aoti_hooks.tools.harness.measure import Nvml

    class Driver:
        def __init__(self, table, code=0):
            self.table, self.code = table, code

        def nvmlDeviceGetComputeRunningProcesses_v3(self, handle, count, infos):
            for index, (pid, used) in enumerate(self.table):  # infos: the caller's array of process entries
                infos[index].pid, infos[index].used = pid, used
            count._obj.value = len(self.table)  # count: byref(c_uint), in: room, out: entries filled
            return self.code

    nvml = Nvml.__new__(Nvml)
    nvml.handle = ctypes.c_void_p(1)
    nvml.lib = Driver([(10, 5 * 2**30), (11, 2**30), (10, 2**20)])
    assert nvml.used_by(10) == 5 * 2**30 + 2**20 and nvml.used_by(11) == 2**30 and nvml.used_by(12) == 0
    nvml.lib = Driver([], code=3)  # a driver that refuses the call
    assert nvml.used_by(10) is None
    nvml.handle = None
    assert nvml.used_by(10) is None


def test_the_peak_breakdown_replays_the_allocator_history_and_groups_by_site():
    """The allocator's history needs a GPU; here a history in its format (alloc / free_completed
    events with frames) is replayed, so the peak, the grouping and the report are what is tested."""
    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness.measure import live_at_peak

    def frame(name):
        return [{"filename": "/torch/_inductor/select_algorithm.py", "line": 1, "name": name}]

    events = [("alloc", 1, 100, "weights"), ("alloc", 2, 50, "example"), ("free_completed", 2, 50, "example"),
              ("alloc", 3, 70, "example"), ("alloc", 4, 30, "example"), ("free_completed", 1, 100, "weights"),
              ("alloc", 5, 10, "weights")]
    history = {"device_traces": [[{"action": action, "addr": addr, "size": size, "frames": frame(site)}
                                  for action, addr, size, site in events]]}
    breakdown = live_at_peak(history)
    assert (breakdown["peak_bytes"], breakdown["blocks"]) == (200, 3)  # weights 100 + examples 70 + 30
    assert [(g["bytes"], g["blocks"], g["where"]) for g in breakdown["groups"]] == [
        (100, 1, "select_algorithm.py:1 weights"), (100, 2, "select_algorithm.py:1 example")]
    run = {"variant": "kv_elide", "plugins": ["kv_elide"], "compile_s": 1.0, "host_peak_rss": 1, "peak_allocated": 300,
           "peak_reserved": 1, "nvml_peak": 1, "package_bytes": 1, "weight_bytes": 1, "artifacts": {}, "report": {},
           "peak_breakdown": {**breakdown, "allocator_peak": 300}}
    text = bench.report.format_report({"device": "cuda:0", "backend": "torch", "model": None, "program": "p.pt2", "runs": [run]})
    assert ("kv_elide: live at the allocator's peak (200 B in 3 blocks; the history replays to 200 B of the "
            "allocator's 300 B peak: it dropped early events), by where it was allocated:") in text
    assert [line.split() for line in text.splitlines() if line.endswith(" example")] == [
        ["100", "B", "2", "blocks", "select_algorithm.py:1", "example"]]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_compile_stops_the_runs_not_started_and_keeps_the_finished_ones(tmp_path, monkeypatch, jobs):
    """The compile processes are stood in for (the order of runs and the report are what is tested):
    run 1 fails; runs 2 and 3 never start, and run 0 (with two jobs still running when run 1 fails)
    finishes into the report."""
    import threading

    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness import launch
    from aoti_hooks.tools.harness.launch import StepFailed

    started, run1_failed = [], threading.Event()

    def stand_in(command, spec, folder, name, env):
        started.append(name)
        if name == "run1":
            run1_failed.set()
            raise StepFailed("the run1 step failed (exit 1); log: run1.log")
        if name == "run0" and jobs > 1:
            assert run1_failed.wait(120)  # side by side: run 0 is still compiling when run 1 fails
        return {"variant": spec["variant"], "plugins": spec["plugins"], "device": "cpu", "compile_s": 1.0,
                "host_peak_rss": 1, "package_bytes": 1, "weight_bytes": 1, "artifacts": {}, "report": {}}

    monkeypatch.setattr(launch, "run_in_worker", stand_in)
    with pytest.raises(StepFailed, match="the run1 step failed"):
        bench._run({"backend": "torch"}, [["kv_elide"], ["const_offload"], ["kv_elide", "const_offload"]], "torch",
                   tmp_path, tmp_path, {}, {}, {}, None, "p.pt2", None, True, 0, jobs)
    assert sorted(started) == ["run0", "run1"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["complete"] is False and [r["variant"] for r in report["runs"]] == ["stock"]
    assert "Incomplete: the bench stopped" in (tmp_path / "report.md").read_text()


def test_an_output_workers_result_alone_says_whether_two_variants_agree(tmp_path):
    """A bench stopped before it compares (a GPU call cut short) keeps each worker's result file:
    the tokens and a digest per cache, equal exactly when the caches are equal bit for bit."""
    from aoti_hooks.tools.models import et_gemma4

    cache = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    flipped = cache.clone()
    flipped.view(torch.int16)[0, 0, 0] ^= 1  # one bit of one element
    same = et_gemma4.saved_outputs([3, 4], {"k": cache}, str(tmp_path / "a.pt"))
    again = et_gemma4.saved_outputs([3, 4], {"k": cache.clone()}, str(tmp_path / "b.pt"))
    other = et_gemma4.saved_outputs([3, 4], {"k": flipped}, str(tmp_path / "c.pt"))
    reshaped = et_gemma4.saved_outputs([3, 4], {"k": cache.reshape(6, 4)}, str(tmp_path / "d.pt"))
    assert same["tokens"] == [3, 4] and same["steps"] == 2 and same["caches"] == 1
    assert same["cache_sha256"] == again["cache_sha256"]
    assert same["cache_sha256"] != other["cache_sha256"] != reshaped["cache_sha256"] != same["cache_sha256"]
    assert json.loads(json.dumps(same)) == same  # what the worker writes as its result file
    assert torch.equal(torch.load(tmp_path / "a.pt")["caches"]["k"], cache)


def test_without_matplotlib_the_report_and_stdout_agree_there_is_no_timeline(tmp_path, monkeypatch):
    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness import launch

    def stand_in(command, spec, folder, name, env):
        return {"variant": spec["variant"], "plugins": spec["plugins"], "device": "cpu", "compile_s": 1.0,
                "host_peak_rss": 1, "package_bytes": 1, "weight_bytes": 1, "artifacts": {}, "report": {},
                "timeline": []}

    monkeypatch.setattr(launch, "run_in_worker", stand_in)
    monkeypatch.setattr(bench, "plot_timeline", lambda results, path: None)  # as without matplotlib (bench's name for it)
    results = bench._run({"backend": "torch"}, [["kv_elide"]], "torch", tmp_path, tmp_path, {}, {}, {}, None,
                         "p.pt2", None, True, 0, 1)
    report = (tmp_path / "report.md").read_text()
    assert results["timeline_png"] is None and bench.report.NO_TIMELINE in report and "timeline.png (samples" not in report


def test_the_census_counts_resident_bytes_by_holder_and_file_pages_apart(tmp_path):
    """Real storages: a written one counts its size, a mapping of zeros never written counts nothing,
    one mapped from a file counts its pages as file pages; one held before is told apart."""
    from aoti_hooks.placement.storage import host_zeros, whole
    from aoti_hooks.tools.harness.census import census, storage_keys

    held = torch.ones(8 << 20, dtype=torch.uint8)
    before = storage_keys()
    written = torch.ones(16 << 20, dtype=torch.uint8)
    zeros = whole(host_zeros(64 << 20))
    caches = [whole(host_zeros(16 << 20)) for _ in range(4)]  # the kernel may merge them into one mapping
    torch.save({"mapped": torch.ones(32 << 20, dtype=torch.uint8)}, tmp_path / "mapped.pt")
    mapped = torch.load(tmp_path / "mapped.pt", mmap=True)["mapped"]
    assert int(mapped[:: 4096].sum()) == (32 << 20) // 4096  # every page read
    taken = census(before, anonymous=None)
    groups = taken["groups"]
    assert groups["held before the compile"] >= held.numel()
    new_bytes = written.numel() + mapped.numel()
    assert new_bytes <= groups["new, other tensors"] < new_bytes + (8 << 20), groups  # none of the zeros
    assert len(caches) == 4
    assert mapped.numel() <= groups["file pages"] < mapped.numel() + (4 << 20)
    assert [item["bytes"] for item in taken["largest_new"][:2]] == [32 << 20, 16 << 20]
    assert zeros.numel() == 64 << 20
    by_file = {item["path"]: item["bytes"] for item in taken["file_pages_by_file"]}
    assert (32 << 20) <= by_file[str(tmp_path / "mapped.pt")] < (32 << 20) + (4 << 20)  # named: whose file pages


def test_a_census_that_fails_leaves_the_sampling_running(monkeypatch):
    from aoti_hooks.tools.harness import census, measure

    def broken(*args):
        raise AttributeError("'ExportedProgram' object has no attribute '_state_dict'")

    with measure.Sampler(census=True) as sampler:
        monkeypatch.setattr(census, "census", broken)
        sampler._census_step = 0  # every sample takes one
        time.sleep(0.2)
        assert sampler._thread.is_alive()
    assert "AttributeError" in sampler.host_census["failed"]


def test_shared_memory_is_memory_that_must_fit_and_the_census_names_it():
    """A ``MAP_SHARED | MAP_ANONYMOUS`` mapping (``/dev/zero (deleted)`` in smaps) is shmem: not in
    ``RssAnon``, not a file the kernel can drop. It counts with the anonymous memory."""
    import mmap

    from aoti_hooks.tools.harness.census import _mappings, file_pages_by_file
    from aoti_hooks.tools.harness.measure import host_anonymous

    before = host_anonymous()
    shared = mmap.mmap(-1, 64 << 20)  # Python's default flags: shared and anonymous
    shared.write(b"\1" * (64 << 20))
    assert host_anonymous() - before >= 60 << 20
    named = [item for item in file_pages_by_file(_mappings(), top=50) if item["path"].startswith("/dev/zero")]
    assert named and named[0]["shared_memory"] and named[0]["bytes"] >= 60 << 20
    shared.close()


def test_the_sampler_names_the_code_that_made_shared_memory_and_the_report_says_it():
    """Pinned host memory (CUDA maps it ``MAP_SHARED`` from ``/dev/zero``) is RSS no Python object shows:
    the sampler keeps where the threads were when shared memory first grew 256 MiB past the start."""
    import mmap

    from aoti_hooks.tools.bench.report import shared_memory_line, shared_memory_lines
    from aoti_hooks.tools.harness.measure import SHARED_GROWTH, Sampler

    def pin_like_cuda(nbytes):
        mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        mapping.write(b"\1" * nbytes)
        time.sleep(0.3)  # held while the sampler looks
        return mapping

    with Sampler(interval=0.01) as sampler:
        mapping = pin_like_cuda(SHARED_GROWTH + (32 << 20))
    mapping.close()
    growth = sampler.shared_growth
    assert growth is not None and growth["bytes"] >= SHARED_GROWTH
    assert any("pin_like_cuda" in stack for stack in growth["stacks"])
    run = {"host_shared_peak": sampler.host_shared_peak, "host_shared_baseline": sampler.host_shared_baseline,
           "host_shared_growth": growth, "pinned_peak": None}
    line = shared_memory_line(run)
    assert line.startswith("shared memory (pinned host memory, /dev/shm) peaked at") and "pin_like_cuda" in line
    quiet = {**run, "host_shared_peak": sampler.host_shared_baseline}
    assert shared_memory_line(quiet) is None
    # Beside a run that grew, one that did not says so instead of leaving its line out.
    grown, stayed = shared_memory_lines([{**run, "variant": "stock"}, {**quiet, "variant": "kv_elide"}])
    assert grown.startswith("- stock: shared memory (pinned host memory") and "pin_like_cuda" in grown
    assert stayed.startswith("- kv_elide: shared memory peaked at") and "within 256.0 MiB of its start" in stayed
    assert shared_memory_lines([{**quiet, "variant": "stock"}]) == []


def test_a_run_that_does_not_fit_its_gpu_memory_limit_is_a_measured_result():
    """The worker tells an out-of-memory error (as Inductor wraps it) from other failures; the report
    and the exit status say which run did not fit. No GPU here: the error is raised, not met."""
    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness.worker import out_of_memory

    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("LoweringException: wrapped") from inner
    except RuntimeError as wrapped:
        assert out_of_memory(wrapped) == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert out_of_memory(ValueError("a bug")) is None

    def run(variant, fits):
        return {"variant": variant, "plugins": [] if variant == "stock" else ["kv_elide"], "compile_s": 1.0,
                "host_peak_rss": 1, "peak_allocated": 1, "peak_reserved": 1, "nvml_peak": 1, "package_bytes": 1,
                "weight_bytes": 1, "artifacts": {}, "report": {},
                **({} if fits is None else {"gpu_memory_limit": 2**30, "fits": fits, "cuda_context_bytes": 500 << 20,
                                            "did_not_fit": None if fits else "CUDA out of memory"})}

    runs = [run("stock", None), run("kv_elide", False)]
    assert bench.over_budget(runs, None, None) == [
        "kv_elide: did not fit in 1.00 GiB of GPU memory (CUDA out of memory)"]
    text = bench.report.format_report({"device": "cuda:0", "backend": "torch", "model": None, "program": "p.pt2", "runs": runs})
    assert "- kv_elide: did not fit (CUDA out of memory); CUDA context 500.0 MiB" in text
    assert bench.over_budget([run("stock", None), run("kv_elide", True)], None, None) == []


def test_a_hugging_face_llama_is_built_from_a_config_at_the_dimensions_named():
    """``hf:llama3-8b``'s builder, at a CPU test's size: transformers' own Llama in bf16, exported."""
    pytest.importorskip("transformers")
    from aoti_hooks.tools.models.hf import MODELS, exported

    program, weight_bytes, cache_bytes = exported("llama3-small", ctx=64)
    d = MODELS["llama3-small"]
    hidden, kv = d["hidden_size"], d["num_key_value_heads"] * d["hidden_size"] // d["num_attention_heads"]
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * d["intermediate_size"] + 2 * hidden
    assert weight_bytes == 2 * (2 * d["vocab_size"] * hidden + d["num_hidden_layers"] * per_layer + hidden)
    assert cache_bytes == 2 * d["num_hidden_layers"] * 2 * 64 * kv  # keys and values, ctx 64, bf16
    assert any(name.endswith("layers.1.mlp.gate_proj.weight") for name in program.state_dict)


@pytest.mark.compile
def test_bench_checks_a_hugging_face_models_decode_steps_against_stock_and_eager(tmp_path, capsys):
    """transformers' own Llama from a config, compiled stock and with kv_elide by bench; each package runs
    two decode calls in its own process (the caches carried from call to call) against eager."""
    pytest.importorskip("transformers")
    from aoti_hooks.tools.cli import main

    assert main(["bench", "--model", "hf:llama3-small", "--layers", "1", "--ctx", "64", "--plugins", "kv_elide",
                 "--option", "kv_elide.min_bytes=1KiB", "--check-steps", "2", "--jobs", "2", "--out", str(tmp_path)]) == 0
    check = json.loads((tmp_path / "report.json").read_text())["check"]
    assert check["kv_elide"]["steps"] == 2 and check["kv_elide"]["logits_equal_stock"] is True
    assert check["stock"]["logits_max_abs_vs_eager"] < 0.05  # bf16: compiled and eager round apart, slightly
    assert all(check[variant]["decode_ms_per_call"] > 0 for variant in ("stock", "kv_elide"))  # the second call's
    out = capsys.readouterr().out
    assert "logits max abs vs eager" in out and "ms per call (median)" in out


def test_the_extra_seconds_table_names_the_functions_that_grew_most_from_stock():
    from aoti_hooks.tools.bench.report import extra_seconds_rows

    runs = [{"variant": "stock", "function_seconds": {"a.py:compile": 100.0, "b.py:bench": 40.0, "c.py:gone": 5.0}},
            {"variant": "ours", "compile_s": 200.0,  # what wraps the whole compile says nothing of where it went
             "function_seconds": {"a.py:compile": 150.0, "b.py:bench": 40.5, "d.py:build": 30.0, "w.py:wrap": 195.0}}]
    header, rows = extra_seconds_rows(runs)
    assert header == ["run", "function", "stock s", "run s", "more"]
    assert rows == [["ours", "a.py:compile", "100.0", "150.0", "+50.0"], ["ours", "d.py:build", "0.0", "30.0", "+30.0"]]
    assert extra_seconds_rows(runs[1:])[1] == []  # no stock, nothing to compare
    # By the function whose own code ran: where the inclusive table names the caller, this names what grew.
    runs[0]["function_own_seconds"] = {"b.py:bench": 40.0, "e.py:launch": 10.0}
    runs[1]["function_own_seconds"] = {"b.py:bench": 40.5, "e.py:launch": 9.0, "d.py:build": 30.0, "f.py:wait": 19.0}
    assert extra_seconds_rows(runs, key="function_own_seconds")[1] == [
        ["ours", "d.py:build", "0.0", "30.0", "+30.0"], ["ours", "f.py:wait", "0.0", "19.0", "+19.0"]]
    del runs[0]["function_own_seconds"]  # a report from before own seconds were kept: no table, not a wrong one
    assert extra_seconds_rows(runs, key="function_own_seconds")[1] == []


def test_the_seconds_in_the_plugins_hooks_count_every_executorch_methods_time_line():
    from aoti_hooks.tools.bench.report import phase_time_rows

    runs = [{"variant": "stock", "phase_seconds": {"lowering": 10.0}, "report": {}},
            {"variant": "ours", "phase_seconds": {"lowering": 12.0},
             "report": {"time (prefill)": {"placement.move_program_to_device_s": 1.25},
                        "time (decode)": {"placement.move_program_to_device_s": 0.5},
                        "placement (prefill)": {"tensors": 114}}},
            {"variant": "plain", "phase_seconds": {"lowering": 3.0}, "report": {"time": {"kv_elide.claim_tensors_s": 0.3}}}]
    header, rows = phase_time_rows(runs)
    assert header == ["run", "lowering", "in plugins' hooks"]
    assert [row[-1] for row in rows] == ["0.0", "1.8", "0.3"]


def test_methods_apart_lower_each_method_in_its_own_process_at_once_and_report_the_larger(tmp_path, monkeypatch):
    """``--methods-apart``: prefill and decode lowered each in a worker of its own, both at once, into
    subfolders of the run's folder; the run's figures are the larger of the two. The workers are stand-ins:
    the lowering itself needs CudaBackend and a GPU (the suite `whole` runs it there)."""
    import threading

    from aoti_hooks.tools import bench
    from aoti_hooks.tools.harness import launch

    started, both = [], threading.Barrier(2, timeout=30)  # each waits for the other: they run at once

    def stand_in(command, spec, folder, name, env):
        started.append((name, spec["methods"], spec["method"], spec["package"], env["TORCHINDUCTOR_CACHE_DIR"]))
        both.wait()
        prefill = spec["method"] == "prefill"
        return {"variant": spec["variant"], "plugins": ["kv_elide"], "compile_s": 300.0 if prefill else 200.0,
                "peak_allocated": 5 if prefill else 7, "host_peak_rss": 40 if prefill else 30, "nvml_process_peak": None,
                "timeline": [spec["method"]], "report": {f"kv_elide ({spec['method']})": {"tensors_claimed": 1}},
                "artifacts": {"model.pte": [1, "sha"]}, "package_bytes": 1}

    monkeypatch.setattr(launch, "run_in_worker", stand_in)
    spec = {"variant": "kv_elide", "package": str(tmp_path / "work" / "run0.pt2")}
    merged = bench.lowered_apart(spec, tmp_path, "run0", {"TORCHINDUCTOR_CACHE_DIR": "/c/inductor-0"})
    assert sorted(started) == [
        ("run0-decode", ["decode"], "decode", str(tmp_path / "work" / "run0" / "decode.pt2"), "/c/inductor-0-decode"),
        ("run0-prefill", ["prefill"], "prefill", str(tmp_path / "work" / "run0" / "prefill.pt2"), "/c/inductor-0-prefill")]
    assert (merged["compile_s"], merged["peak_allocated"], merged["host_peak_rss"]) == (300.0, 7, 40)
    assert merged["nvml_process_peak"] is None and merged["host_peak_rss_together"] == 70
    assert merged["timeline"] == ["prefill"]  # the method with the higher host peak
    assert set(merged["report"]) == {"kv_elide (prefill)", "kv_elide (decode)"}
    assert set(merged["artifacts"]) == {"prefill/model.pte", "decode/model.pte"} and merged["package_bytes"] == 2
    assert merged["methods"]["decode"]["peak_allocated"] == 7 and merged["methods"]["prefill"]["compile_s"] == 300.0
    text = bench.report.format_report({"device": "cuda:0", "backend": "executorch", "model": "executorch:gemma4_31b",
                                       "program": None, "stock_run": False, "runs": [{**merged, "weight_bytes": 10}]})
    assert ("- kv_elide: decode 200.0 s, peak allocated 7 B, host peak 30 B; prefill 300.0 s, peak allocated 5 B, "
            "host peak 40 B; host memory of the two processes together at most 70 B") in text
    assert "each method's peak is what a user lowering both meets" in text
    fits = bench.merged_methods({"decode": {"fits": True}, "prefill": {"fits": False, "did_not_fit": "out of memory"}})
    assert (fits["fits"], fits["did_not_fit"]) == (False, "out of memory")


def test_the_files_of_an_export_lowered_method_by_method_are_read_as_one_program(tmp_path):
    """What the output check and `inspect` read of a run lowered with ``--methods-apart``: each method's
    ``.pte`` and ``.ptd`` from its subfolder, and the order each delegate takes its inputs in."""
    import json

    from aoti_hooks.tools.harness.artifacts import program_files
    from aoti_hooks.tools.models import et_gemma4

    for method in ("decode", "prefill"):
        (tmp_path / "apart" / method).mkdir(parents=True)
        for name in ("model.pte", "aoti_cuda_blob.ptd"):
            (tmp_path / "apart" / method / name).write_bytes(b"")
        (tmp_path / "apart" / method / et_gemma4.DELEGATE_INPUTS).write_text(json.dumps({method: ["tokens", "input_pos"]}))
    apart = tmp_path / "apart"
    assert program_files(str(apart)) == [str(apart / "decode" / "model.pte"), str(apart / "prefill" / "model.pte"),
                                         str(apart / "decode" / "aoti_cuda_blob.ptd"),
                                         str(apart / "prefill" / "aoti_cuda_blob.ptd")]
    assert et_gemma4.delegate_inputs(str(apart)) == {"decode": ["tokens", "input_pos"], "prefill": ["tokens", "input_pos"]}
    (apart / "model.pte").write_bytes(b"")  # a program lowered in one process: its own files only
    assert program_files(str(apart)) == [str(apart / "model.pte")]


def test_our_frames_count_their_own_time_not_the_stock_work_they_wrap():
    """A session's wrapper around torch's entry point, or a hook around a benchmark, is on the stack for
    all of stock's work inside it: that time stays with stock's functions; ours count while our code runs."""
    from aoti_hooks.tools.harness.measure import functions_on_stack

    def defined(path: str, source: str, namespace: dict) -> None:
        exec(compile(source, path, "exec"), namespace)

    import sys

    namespace: dict = {"sys": sys}
    defined("/site-packages/torch/_inductor/fake.py", "def stock(inner):\n    return inner()\n", namespace)
    defined("/site-packages/aoti_hooks/seams/fake.py",
            "def wrapper(inner):\n    return stock(inner)\n"
            "def own():\n    return sys._getframe()\n", namespace)
    innermost_stock = functions_on_stack(namespace["wrapper"](lambda: sys._getframe(1)))
    assert "fake.py:stock" in innermost_stock and "fake.py:wrapper" not in innermost_stock
    innermost_ours = functions_on_stack(namespace["wrapper"](namespace["own"]))
    assert {"fake.py:own", "fake.py:stock"} <= innermost_ours.keys() and "fake.py:wrapper" not in innermost_ours
    alone = functions_on_stack(namespace["own"]())
    assert "fake.py:own" in alone
    # Innermost first: the function whose own code runs leads, and its seconds are its own.
    assert next(iter(innermost_stock)) == "fake.py:stock" and next(iter(innermost_ours)) == "fake.py:own"
    assert list(innermost_ours).index("fake.py:own") < list(innermost_ours).index("fake.py:stock")


def test_bench_help_names_every_hugging_face_model(capsys):
    from aoti_hooks.tools import cli
    from aoti_hooks.tools.models.hf import MODELS

    assert set(cli.HF_MODEL_NAMES) == set(MODELS)
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"hf:{name}" in text for name in MODELS)


def test_the_sampler_keeps_the_most_its_disk_held_above_the_start(small_disk):
    """What a compile wrote, and deleted, at its peak: on a disk of its own (a tmpfs the test mounts), a file
    written and removed while sampling counts; a folder not made yet is read on the disk that will hold it."""
    from aoti_hooks.tools.bench.report import disk_line
    from aoti_hooks.tools.harness.measure import Sampler

    disk = small_disk(64 << 20)
    (disk / "before").write_bytes(b"\1" * (4 << 20))  # held before: not the compile's
    with Sampler(interval=0.01, disk_folder=str(disk / "run0" / "decode")) as sampler:
        (disk / "written").write_bytes(b"\1" * (16 << 20))
        time.sleep(0.2)  # held while the sampler looks
        (disk / "written").unlink()
    added = sampler.disk_peak - sampler.disk_baseline
    assert sampler.disk_folder == str(disk) and 16 << 20 <= added < 17 << 20
    assert disk_line({"disk_peak_added": 16 << 20, "weight_bytes": 8 << 20}) == "16.0 MiB (2.00× the weights)"
    with Sampler(interval=0.01) as sampler:  # no folder: no disk figures
        pass
    assert sampler.disk_peak is None
