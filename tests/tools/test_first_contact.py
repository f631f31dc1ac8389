"""What a new user meets first: every bad input is one sentence (exit 2 on the command line),
options and targets parse exactly, the demo says what ran and cleans up after itself."""

import json
import os
import warnings

import pytest
import torch

import aoti_hooks
from aoti_hooks import AotiHooksError, parse_size, parse_target
from aoti_hooks.core.options import parse_count
from aoti_hooks.tools import cli

# --- the Python API ---------------------------------------------------------------------------------


def linear_program():
    return torch.export.export(torch.nn.Linear(2, 2), (torch.randn(1, 2),))


@pytest.mark.parametrize("call, message", [
    (lambda: aoti_hooks.aoti_compile_and_package(torch.nn.Linear(2, 2), plugins=["kv_elide"]),
     "aoti_compile_and_package takes an ExportedProgram, not a Linear; export the model first"),
    (lambda: aoti_hooks.aoti_compile_and_package(linear_program(), plugins=["kv_elide"], inductor_config={}),
     "got inductor_config=, which is neither one of its parameters nor a plugin in the list (did you mean 'inductor_configs'?)"),
    (lambda: aoti_hooks.session(["kv_elide"], targt="h100"), "(did you mean 'target'?)"),
    (lambda: aoti_hooks.session(["kv_elid"]), "unknown plugin 'kv_elid' (did you mean 'kv_elide'?)"),
    (lambda: aoti_hooks.session(plugins=123), "plugins must be a list of names or a comma-separated string"),
    (lambda: aoti_hooks.session(plugins=None), "plugins must be a list of names"),
    (lambda: aoti_hooks.session(plugins=b"\xff"), "the plugin list b'\\xff' is not UTF-8 text"),
    (lambda: aoti_hooks.session(["kv_elide"], kv_elide={"pattern": None}),
     "bad value None for option 'pattern' of plugin 'kv_elide': expected one value such as '', not None"),
    (lambda: aoti_hooks.session(["kv_elide"], kv_elide={"min_bytes": ["1MiB"]}), "not a list"),
    (lambda: aoti_hooks.session(["kv_elide"], kv_elide={1: "x", "min_byte": 2}), "plugin 'kv_elide' has no option 1"),
    (lambda: aoti_hooks.session(["kv_elide"], kv_elide={"min_bytes": b"\xff"}),
     "bad value b'\\xff' for option 'min_bytes' of plugin 'kv_elide': the value b'\\xff' is not UTF-8 text"),
    (lambda: aoti_hooks.session(["kv_elide"], kv_elide={"min_bytes": "1.9"}), "1.9 is not a whole number of bytes"),
    (lambda: aoti_hooks.session(["chunked_dequant"], chunked_dequant={"max_transient": "1e400"}), "expected a size"),
    (lambda: aoti_hooks.parse_compile_specs(None), "compile specs must be a list of CompileSpec(key, value)"),
    (lambda: aoti_hooks.parse_compile_specs([("aoti_hooks.plugins", b"\xff")]),
     "compile spec 'aoti_hooks.plugins': b'\\xff' is not UTF-8 text"),
    (lambda: aoti_hooks.parse_compile_specs([("aoti_hooks.plugins", b"kv_elide"), ("aoti_hooks.target", b"\xff")]),
     "is not UTF-8 text"),
    (lambda: parse_target(b"\xff"), "the target b'\\xff' is not UTF-8 text"),
    (lambda: parse_target("rtx509"), "unknown target 'rtx509' (did you mean 'rtx5090'?)"),
    (lambda: parse_target("smem=0,mem=0"), "smem=0 leaves nothing to fit in"),
    (lambda: parse_target("smem=101376,mem=0"), "mem=0 leaves nothing to fit in"),
    (lambda: parse_target("smem=101376,mem=8GiB,device=meta"), "device=meta cannot hold the program's data"),
    (lambda: aoti_hooks.compile_specs(["kv_elid"]), "unknown plugin 'kv_elid' (did you mean 'kv_elide'?)"),
    (lambda: aoti_hooks.compile_specs(["kv_elide"], target="rtx509"), "unknown target 'rtx509' (did you mean 'rtx5090'?)"),
    (lambda: aoti_hooks.compile_specs(["kv_elide"], kv_elide={"min_bytes": "lots"}), "option 'min_bytes' of plugin 'kv_elide'"),
    (lambda: aoti_hooks.compile_specs(["kv_elide"], targt="h100"), "compile_specs() got targt="),
])
def test_bad_input_is_one_sentence(call, message):
    with pytest.raises(AotiHooksError) as caught:
        call()
    assert message in str(caught.value)


def test_sizes_and_counts_are_exact():
    assert parse_size("1.5GB") == 1_500_000_000 and parse_size("1.5KiB") == 1536
    assert parse_size(str(2**60 + 1)) == 2**60 + 1  # no float rounding
    assert parse_size("9" * 400) == int("9" * 400)  # no OverflowError
    for fraction in ("0.5", "1.9", "0.3KiB"):
        with pytest.raises(ValueError, match="is not a whole number of bytes"):
            parse_size(fraction)
    assert parse_count("128k") == 131072 and parse_count("16384") == 16384 and parse_count("1M") == 2**20
    with pytest.raises(ValueError):
        parse_count("0")


def test_sessions_left_out_of_order_never_leave_a_finished_one_active(register):
    first, second = aoti_hooks.session([]), aoti_hooks.session([])
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert aoti_hooks.current_session() is second
    second.__exit__(None, None, None)
    assert aoti_hooks.current_session() is None


def test_a_nested_session_that_drops_plugins_says_so():
    with aoti_hooks.session(["kv_elide"]):
        with pytest.warns(aoti_hooks.core.errors.AotiHooksWarning, match=r"until it ends only its own plugins run \(kv_elide do not\)"):
            with aoti_hooks.session([]):
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with aoti_hooks.session(["kv_elide", "const_offload"]):  # keeps kv_elide: nothing to say
                pass


def test_an_unknown_name_in_aoti_hooks_disable_is_reported(monkeypatch):
    monkeypatch.setenv("AOTI_HOOKS_DISABLE", "kv_elid")
    with pytest.warns(aoti_hooks.core.errors.AotiHooksWarning, match="AOTI_HOOKS_DISABLE names 'kv_elid', which is not an installed plugin"):
        aoti_hooks.session(["kv_elide"])


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["demo", "--config", "huge"], "unknown demo config 'huge'; choose one of cpu"),
    (["demo", "--config", "tyni"], "unknown demo config 'tyni' (did you mean 'tiny'?)"),
    (["demo", "--plugins", ""], "--plugins is empty; name at least one plugin"),
    (["demo", "--plugins", "kv_elid"], "unknown plugin 'kv_elid' (did you mean 'kv_elide'?)"),
    (["demo", "--option", "kv_elide.min_byte=1"], "(did you mean 'min_bytes'?)"),
    (["demo", "--target", "rtx509"], "unknown target 'rtx509' (did you mean 'rtx5090'?)"),
    (["run", "--report", "/no/such/folder/r.jsonl", "--", "true"], "the folder /no/such/folder does not exist"),
    (["run", "--report", os.path.dirname(__file__), "--", "true"], "is a folder; name a file for the reports"),
    (["bench", "--model", "demo:tiny", "--out", __file__], f"bench --out {__file__} is a file; name a folder"),
    (["demo", "--out", __file__], f"demo --out {__file__} is a file; name a folder"),
    (["bench", "--model", "demo:tiny", "--exporter", "optimum"], "--exporter optimum lowers a Hugging Face model; give "
                                                                   "--model hf:<name>"),
    (["bench", "--model", "hf:qwen3-tiny", "--exporter", "transformers", "--backend", "torch"],
     "--exporter transformers lowers to ExecuTorch's CudaBackend; leave out --backend"),
    (["bench", "--model", "hf:qwen3-tiny", "--exporter", "transformers"],
     "--exporter transformers lowers through ExecuTorch's CudaBackend and needs a CUDA GPU (stock fails there too)"),
])
def test_cli_input_errors_exit_2_with_one_sentence(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_counts_take_units_and_version_is_there(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["demo", "--ctx", "lots"])
    assert caught.value.code == 2 and "expected a count such as 131072 or 128k" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        cli.main(["--version"])
    assert caught.value.code == 0 and capsys.readouterr().out.startswith("aoti-hooks ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_a_gpu_target_without_a_gpu_is_refused_up_front(capsys):
    assert cli.main(["demo", "--config", "tiny", "--target", "rtx5090"]) == 2
    assert "target 'rtx5090' compiles for CUDA and this machine has no CUDA GPU" in capsys.readouterr().err


@pytest.mark.compile
def test_bench_checks_the_file_up_front(tmp_path, capsys):
    notes = tmp_path / "notes.pt2"
    notes.write_text("not a program")
    assert cli.main(["bench", str(notes)]) == 2
    assert "is not a torch.export.save file (not a zip archive)" in capsys.readouterr().err
    script = tmp_path / "step4_hf.py"  # a script given as the program: the advice never overwrites it
    script.write_text("import torch\n")
    assert cli.main(["bench", str(script)]) == 2
    assert "torch.export.save(exported_program, 'step4_hf.pt2') and give that file" in capsys.readouterr().err
    package = aoti_hooks.aoti_compile_and_package(linear_program(), str(tmp_path / "compiled.pt2"))
    assert cli.main(["bench", package]) == 2
    assert "is a compiled AOTI package (aoti_compile_and_package wrote it)" in capsys.readouterr().err
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.pt2", "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert cli.main(["bench", str(tmp_path / "other.pt2")]) == 2
    assert "is a zip archive but not a torch.export.save file" in capsys.readouterr().err


def test_a_failed_step_is_not_done(capsys):
    from aoti_hooks.tools.harness.launch import Progress

    with pytest.raises(RuntimeError):
        with Progress("compiling stock"):
            raise RuntimeError("boom")
    err = capsys.readouterr().err
    assert "FAILED after" in err and "done" not in err


@pytest.mark.compile
def test_demo_with_every_plugin_disabled_runs_stock_once_and_cleans_up(capsys, monkeypatch):
    """AOTI_HOOKS_DISABLE=kv_elide: one note, one stock compile (no second identical one), the row
    labelled by what ran, and the temporary folder emptied but for the picture it names (no --out, no --keep)."""
    monkeypatch.setenv("AOTI_HOOKS_DISABLE", "kv_elide")
    assert cli.main(["demo", "--config", "tiny", "--steps", "2", "--json"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [run["plugins"] for run in results["runs"]] == [[]]
    assert captured.err.count("aoti-hooks: note: plugin 'kv_elide' is disabled by AOTI_HOOKS_DISABLE") == 1
    assert "UserWarning" not in captured.err and "warnings.warn" not in captured.err
    assert not results["kept"] and os.listdir(results["folder"]) == ["timeline.png"]
    from aoti_hooks.tools.demo import format_demo

    text = format_demo(results)
    assert text.splitlines()[2].startswith("stock") and "Only stock ran" in text and "artifacts removed" in text
    assert f"picture: {results['folder']}/timeline.png (memory over time" in text
    with open(results["timeline_png"], "rb") as picture:
        assert picture.read(8) == b"\x89PNG\r\n\x1a\n"


def test_doctor_names_the_libstdcxx_fix_when_a_cuda_package_load_crashes(monkeypatch, tmp_path):
    """The decision only: compiling and loading a CUDA package needs a GPU, so the three fresh
    processes are stood in for by their exit codes (on the H100 image the load dies with SIGSEGV
    and works with the system libstdc++ preloaded)."""
    import signal

    from aoti_hooks.tools import package_loading as loader

    monkeypatch.setattr(loader, "LIBSTDCXX", str(tmp_path / "libstdc++.so.6"))
    (tmp_path / "libstdc++.so.6").write_text("")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    runs = []

    def exits(codes):
        def run(code, package, env, timeout):
            runs.append(env.get("LD_PRELOAD"))
            return codes[len(runs) - 1]
        return run

    monkeypatch.setattr(loader, "_run", exits([0, -signal.SIGSEGV, 0]))
    [(label, problem)] = loader.check_package_loading()
    assert f"export LD_PRELOAD={tmp_path / 'libstdc++.so.6'}" in problem and runs[-1] == str(tmp_path / "libstdc++.so.6")
    runs.clear()
    monkeypatch.setattr(loader, "_run", exits([0, 0]))
    assert loader.check_package_loading() == [(label, None)]
    runs.clear()
    monkeypatch.setattr(loader, "_run", exits([0, -signal.SIGSEGV, -signal.SIGSEGV]))
    assert "cannot be checked on this machine" in loader.check_package_loading()[0][1]
    runs.clear()
    monkeypatch.setattr(loader, "_run", exits([0, loader.HUNG, 0]))  # seen on the H100 image: the load hangs
    assert "loading hung and works with the system libstdc++ preloaded" in loader.check_package_loading()[0][1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="what a machine without a CUDA GPU says")
@pytest.mark.parametrize("argv, message", [
    (["demo", "--config", "gpu"], "demo --config gpu holds 1.59 GiB of weights and 4.00 GiB of caches, sized for a CUDA "
                                  "GPU, and this machine has none"),
    (["demo", "--config", "tiny", "--gpu-memory-limit", "50%"], "--gpu-memory-limit caps what the compile may allocate"),
])
def test_a_gpu_sized_demo_on_a_cpu_machine_is_refused_before_it_starts_and_leaves_nothing(argv, message, capsys):
    import glob
    import tempfile

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "aoti-hooks-demo-*")))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "aoti-hooks-demo-*"))) == before


def test_a_long_step_says_which_phase_its_compile_is_in(tmp_path, capsys):
    """The worker writes the phase its sampler reads off the compiling thread (`measure.write_phase`); in a
    log (not a terminal) each change is a line with the seconds so far."""
    import time

    from aoti_hooks.tools.harness.launch import Progress
    from aoti_hooks.tools.harness.measure import write_phase

    watched = tmp_path / "compile-stock.phase"
    with Progress("compiling stock", watch=watched):
        time.sleep(0.7)  # no phase yet: nothing but the step's first line
        write_phase(str(watched), "lowering")
        time.sleep(1.2)
        write_phase(str(watched), "autotune")
        time.sleep(1.2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "compiling stock ..." and lines[-1].startswith("compiling stock ... done in")
    assert [line.split(" after ")[0] for line in lines[1:-1]] == ["compiling stock: lowering", "compiling stock: autotune"]


def test_a_plugins_command_without_its_plugin_says_which_plugin_brings_it(capsys, monkeypatch):
    from aoti_hooks.tools import cli

    monkeypatch.setenv("AOTI_HOOKS_DISABLE", "sdpa_configs")
    assert cli.main(["sdpa-check", "--target", "h100"]) == 2
    assert capsys.readouterr().err.strip() == ("aoti-hooks: sdpa-check is the sdpa_configs plugin's command, and "
                                               "AOTI_HOOKS_DISABLE disables that plugin; unset it to use sdpa-check")
    assert cli._missing_plugin_command(["sdpa-check"], {"list": None}) == (
        "sdpa-check is the sdpa_configs plugin's command, and AOTI_HOOKS_DISABLE disables that plugin; unset it to "
        "use sdpa-check")
    monkeypatch.delenv("AOTI_HOOKS_DISABLE")
    assert cli._missing_plugin_command(["sdpa-check"], {"list": None}) == (
        "sdpa-check is the sdpa_configs plugin's command, and that plugin is not installed: "
        "pip install aoti-hooks-sdpa-configs")
    assert cli._missing_plugin_command(["sdpa-check"], {"sdpa-check": None}) is None
    assert cli._missing_plugin_command(["no-such"], {}) is None  # argparse's own error names the choices


def test_list_without_plugins_says_how_to_install_one_and_why_an_extra_went_missing(capsys, monkeypatch):
    from aoti_hooks.tools import cli, doctor

    assert cli.no_plugins_message("23.0.1").endswith(
        'this pip (23.0.1) drops extras such as [kv_elide] with only a warning: pip install -U pip, then install again')
    assert cli.no_plugins_message("24.2").endswith("(a pip older than 23.3 drops such an extra with only a warning)")
    assert cli.no_plugins_message(None).startswith("no aoti-hooks plugins are installed; install one")
    monkeypatch.setattr(cli.plugin_registry, "installed", lambda: {})
    monkeypatch.setattr(doctor, "version", lambda dist: "22.3")
    assert cli.main(["list"]) == 0
    assert "this pip (22.3) drops extras" in capsys.readouterr().out


def test_doctor_says_why_a_seam_has_nothing_to_check(capsys, monkeypatch):
    """Without Triton (a CPU-only install) its seam has nothing to check: said, not an empty heading."""
    from aoti_hooks.seams import shared_memory, triton
    from aoti_hooks.tools import doctor

    monkeypatch.setattr(triton, "check", lambda: [])
    monkeypatch.setattr(shared_memory, "check", lambda: [])
    doctor.run(None)
    out = capsys.readouterr().out
    assert "Triton seam:\n  nothing to check: its library is not installed here" in out
