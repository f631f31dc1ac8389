import pytest

import aoti_hooks
from aoti_hooks.core.text import format_bytes
from aoti_hooks.tools import cli


def test_list_shows_installed_plugins_with_distribution_and_version(capsys, monkeypatch):
    monkeypatch.setenv("AOTI_HOOKS_DISABLE", "sdpa_configs")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("kv_elide", "chunked_dequant", "sdpa_configs"):
        assert name in out and "aoti-hooks-" + name.replace("_", "-") in out
    sdpa_row = next(line for line in out.splitlines() if line.startswith("sdpa_configs"))
    assert "disabled" in sdpa_row
    assert max(map(len, out.splitlines())) <= cli.WIDTH and "kernels, check, cache" in sdpa_row
    assert cli.main(["list", "sdpa_configs"]) == 0
    detail = capsys.readouterr().out
    # each option's kind: declared (kind=...) or the parser's name without parse_
    assert "kernels=all (kernel list):" in detail and "check=auto (auto or cached):" in detail
    assert "hooks: autotune_configs, compile_context" in detail and "kv_elide" not in detail
    assert cli.main(["list", "--verbose"]) == 0
    verbose = capsys.readouterr().out
    assert "max_transient=auto (budget):" in verbose and "min_bytes=1MiB (size):" in verbose
    assert cli.main(["list", "kv_elid"]) == 2
    assert "no installed plugin 'kv_elid' (did you mean 'kv_elide'?)" in capsys.readouterr().err


def test_doctor_passes_on_a_supported_torch(capsys):
    import torch

    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch " in out and "all checks passed" in out
    assert "seams checked against torch 2.11.0, 2.13.0, 2.14.1, 2.15.0" in out
    assert ("not against this" in out) == (torch.__version__.split("+")[0] not in ("2.11.0", "2.13.0", "2.14.1", "2.15.0"))
    assert "OK      torch._inductor.graph.GraphLowering.get_original_value_of_constant" in out


def test_doctor_lists_the_targets_this_machine_builds_for(capsys, monkeypatch):
    """Each profile's SM is built here by the local Triton (no GPU needed); an SM its ptxas does not
    know is a "no" with ptxas's reason, not a problem count: a machine exports for what it can build."""
    pytest.importorskip("triton.backends.nvidia")
    from aoti_hooks.core import target
    from aoti_hooks.seams.inductor.target_probe import problem_building

    monkeypatch.setitem(target.SM, "rtx5090", 250)  # an architecture no ptxas knows, in place of the 5090's
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "Targets this machine builds kernels for (Triton" in out and "  yes h100 (sm_90)" in out
    assert "  no  rtx5090 (sm_250): " in out and "sm_250" in problem_building(250)
    assert ".target sm_250" not in out  # Triton's reproducer (the whole PTX) stays out of the listing
    assert "  yes several GPUs in one target (rtx4090,rtx5090,h100; a100+): nvFatbin at " in out


def test_doctor_fails_and_names_a_missing_symbol(capsys, monkeypatch):
    import torch._inductor.compile_fx as compile_fx

    monkeypatch.delattr(compile_fx, "_unlift_graph")
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "MISSING torch._inductor.compile_fx._unlift_graph" in out and "1 problem(s) found" in out


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["frobnicate"])
    assert caught.value.code == 2


@pytest.mark.compile
def test_demo_compares_stock_and_kv_elide_side_by_side(capsys, tmp_path):
    import json

    code = cli.main(["demo", "--config", "tiny", "--option", "kv_elide.min_bytes=1KiB", "--steps", "4",
                     "--out", str(tmp_path), "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    stock, plugins = results["runs"]
    assert stock["plugins"] == [] and plugins["plugins"] == ["kv_elide"]
    assert plugins["report"]["kv_elide"]["tensors_claimed"] == 6
    placed = plugins["report"]["placement"]["tensors"]  # --json names each placed tensor
    assert len(placed) == 6 and all(entry["plugin"] == "kv_elide" and entry["fill"] == "zeros"
                                    and entry["bytes"] == 2048 and "kv_cache" in entry["fqn"] for entry in placed)
    for variant in ("stock", "plugins"):
        check = results["check"][variant]
        assert check["steps"] == 4 and check["max_rel_error_vs_eager"] < 1e-4
        assert check["bitwise_equal_to_stock"] and check["constants_equal_to_stock"]
    assert stock["compile_s"] > 0 and stock["host_peak_rss"] > 0 and stock["package_bytes"] > 0
    from aoti_hooks.tools.demo import format_demo

    text = format_demo(results)
    assert "kv_elide: caches_found=6, tensors_claimed=6" in text
    assert not [line for line in text.splitlines() if line.startswith(("placement:", "host:", "time:"))]  # --json has them
    row = next(line for line in text.splitlines() if line.startswith("kv_elide "))
    saved = row.split("  ")[3:]  # the saved cell says what was saved, or none: never a negative saving
    assert not any(cell.strip().startswith("-") and cell.strip() != "-" for cell in saved), row
    package = next(line for line in text.splitlines() if line.startswith("package: "))  # 1.9 MiB for 138 KiB of weights
    assert f"the weights ({format_bytes(stock['weight_bytes'])})" in package and "of compiled code" in package
    from aoti_hooks.tools.demo import package_line

    gib, mib = 2**30, 2**20  # the default demo's shape: the caches' zeros are most of the package
    line = package_line({"package_bytes": 405 * mib, "weight_bytes": 19 * mib, "cache_bytes": 384 * mib})
    assert line == ("package: 405.0 MiB, of it the weights (19.0 MiB), the KV caches' starting values (384.0 MiB; "
                    "stock's package holds them too) and about 2.0 MiB of compiled code (kernels, wrapper)")
    assert "KV caches" not in package_line({"package_bytes": gib, "weight_bytes": 19 * mib, "cache_bytes": 2 * gib})
    host = [line for line in text.splitlines() if line.startswith("host, ")]
    assert [line.split(":")[0] for line in host] == ["host, stock", "host, kv_elide"]
    assert all("the compile added" in line and "anonymous memory (what cannot be paged out to a file) peaked at" in line
               and "of it added" in line for line in host), host
    # The tiny model's weights are a sliver of a process that holds torch: bytes, no ratio to them.
    assert all("× weights" not in line and line.endswith("they are under a tenth of the peak") for line in host), host
    from aoti_hooks.tools.harness.measure import host_line

    big = {"weight_bytes": 4 * gib, "host_peak_rss": 6 * gib, "host_baseline_rss": 5 * gib,
           "host_peak_anonymous": 5 * gib, "host_anonymous_baseline": 4 * gib}
    assert host_line(big) == ("host peak 6.00 GiB (1.50× weights); the compile added 1.00 GiB (0.25× weights) to the "
                              "5.00 GiB held before it; anonymous memory (what cannot be paged out to a file) peaked at "
                              "5.00 GiB (1.25× weights), 1.00 GiB (0.25× weights) of it added")


def test_demo_rejects_a_malformed_option_before_compiling(capsys):
    assert cli.main(["demo", "--config", "tiny", "--option", "min_bytes=1KiB"]) == 2
    assert "must look like <plugin>.<option>=<value>" in capsys.readouterr().err
    assert cli.main(["demo", "--config", "tiny", "--option", "kv_elide.size=1"]) == 2
    assert "plugin 'kv_elide' has no option 'size'" in capsys.readouterr().err


class CommandPlugin:
    """A plugin that adds a subcommand and a doctor check, as sdpa_configs adds sdpa-check."""

    @aoti_hooks.hookimpl
    def register_commands(self, commands):
        hello = commands.add_parser("hello", help="say hello")
        hello.add_argument("--name", default="world")
        hello.set_defaults(run=lambda args: print(f"hello {args.name} ({args.command_line})") or 0)

    @aoti_hooks.hookimpl
    def doctor_checks(self):
        return [("hello.world", None), ("hello.moon", "the moon is missing; install it")]


def test_a_plugin_adds_a_subcommand_and_doctor_checks(register, capsys):
    register("hello_plugin", CommandPlugin())
    assert cli.main(["hello", "--name", "there"]) == 0
    assert "hello there (aoti-hooks hello --name there)" in capsys.readouterr().out
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "plugin hello_plugin:" in out and "MISSING hello.moon" in out and "the moon is missing" in out
    assert "plugin chunked_dequant:" in out  # an installed plugin's own checks (ExecuTorch's dequant kernels)


def test_sdpa_check_is_the_sdpa_configs_plugins_own_subcommand(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sdpa-check", "--help"])
    assert "--recheck" in capsys.readouterr().out


@pytest.mark.compile
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is visible")
def test_sdpa_check_without_a_gpu_says_so_first_and_only(capfd):
    assert cli.main(["sdpa-check"]) == 2
    captured = capfd.readouterr()
    assert captured.err.strip() == ("aoti-hooks: sdpa_configs checks each config of 'sdpa' on the local GPU before it "
                                    "may win, and no CUDA device is visible; run aoti-hooks sdpa-check on the GPU you "
                                    "export on")
    assert "check=cached" not in captured.err


def test_doctor_keeps_third_party_import_noise_out(capfd):
    cli.main(["doctor"])
    captured = capfd.readouterr()
    assert "Failed to load" not in captured.out + captured.err and "_pytree" not in captured.err


def test_a_plugin_that_raises_in_a_command_line_hook_costs_only_its_own_part(register, capsys):
    """register_commands and doctor_checks go through pluggy; a plugin raising there is named in
    one line, and every other command, plugin command and check still works."""
    from aoti_hooks import hookimpl

    class Broken:
        @hookimpl
        def register_commands(self, commands):
            raise RuntimeError("cannot add my command")

        @hookimpl
        def doctor_checks(self):
            raise RuntimeError("cannot check")

    register("broken", Broken())
    assert cli.main(["list"]) == 0
    captured = capsys.readouterr()
    assert "plugin 'broken' failed in hook 'register_commands': RuntimeError: cannot add my command" in captured.err
    assert len([line for line in captured.err.splitlines() if "'broken'" in line]) == 1
    assert "sdpa_configs" in captured.out  # another plugin's row, and its command is still there:
    with pytest.raises(SystemExit) as caught:
        cli.main(["sdpa-check", "--help"])
    assert caught.value.code == 0
    capsys.readouterr()
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "plugin 'broken' failed in hook 'doctor_checks': RuntimeError: cannot check" in out
    assert "1 problem(s) found" in out and "OK      torch._inductor.graph.GraphLowering.get_original_value_of_constant" in out


@pytest.mark.compile
def test_our_commands_keep_third_party_import_noise_out():
    """torchao's "Failed to load" and torch's pytree note, printed when an HF model's transformers
    import pulls torchao in, stay out of a command's output."""
    import subprocess
    import sys

    script = "from aoti_hooks.tools import cli; cli.main(['list']); import transformers"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Failed to load" not in done.stderr and "KernelPreference" not in done.stderr, done.stderr
