"""``aoti-hooks run``: a script that calls torch's own ``aoti_compile_and_package`` runs the plugins
without an edit, and its package is stock's; the exit status is the script's."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from helpers import package_constants

import aoti_hooks
from aoti_hooks.tools.models.decoder import CONFIGS, build, export_decoder

SCRIPT = textwrap.dedent("""
    import sys, torch
    from aoti_hooks.tools.models.decoder import CONFIGS, build, export_decoder
    program = export_decoder(build(CONFIGS["tiny"]))
    torch._inductor.aoti_compile_and_package(program, package_path=sys.argv[1])  # a script no one edits
    sys.exit(int(sys.argv[2]))
""")


def aoti_hooks_command(*args, env=None):
    return subprocess.run([sys.executable, "-m", "aoti_hooks", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


def test_a_script_calling_torchs_own_compile_runs_the_plugins_and_keeps_its_exit_status(tmp_path):
    script = tmp_path / "export.py"
    script.write_text(SCRIPT)
    package, report = tmp_path / "model.pt2", tmp_path / "report.jsonl"
    done = aoti_hooks_command("run", "--plugins", "kv_elide", "--option", "kv_elide.min_bytes=1KiB",
                              "--report", str(report), "--", sys.executable, str(script), str(package), "3")
    assert done.returncode == 3, done.stderr  # the script's own status
    (entry,) = [json.loads(line) for line in report.read_text().splitlines()]
    assert entry["compiles"] == 1 and entry["report"]["kv_elide"]["tensors_claimed"] == 2 * CONFIGS["tiny"].layers
    assert "1 compile(s)" in done.stderr and "kv_elide: caches_found=6" in done.stderr
    stock = torch._inductor.aoti_compile_and_package(export_decoder(build(CONFIGS["tiny"])),
                                                     package_path=str(tmp_path / "stock.pt2"))
    assert package_constants(str(package)) == package_constants(stock)


def test_torchs_own_compile_inside_a_session_compiles_in_it_and_outside_is_stock(tmp_path):
    program = export_decoder(build(CONFIGS["tiny"]))
    with aoti_hooks.session(["kv_elide"], kv_elide={"min_bytes": "1KiB"}) as session:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "in.pt2"))
    assert session.report.get("kv_elide")["tensors_claimed"] == 2 * CONFIGS["tiny"].layers
    assert torch._inductor.aoti_compile_and_package.__module__ == "torch._inductor"


def test_run_without_a_command_or_with_a_bad_plugin_is_one_sentence():
    done = aoti_hooks_command("run", "--plugins", "kv_elide")
    assert done.returncode == 2 and "run needs the command after --" in done.stderr
    done = aoti_hooks_command("run", "--plugins", "kv_elid", "--", sys.executable, "-c", "pass")
    assert done.returncode == 2 and "unknown plugin 'kv_elid'" in done.stderr and "Traceback" not in done.stderr
    done = aoti_hooks_command("run", "--", "no-such-program-here")
    assert done.returncode != 0 and "'no-such-program-here' was not found" in done.stderr


def test_a_compile_that_failed_is_reported_as_failed_with_the_commands_status(tmp_path):
    """The compile fails at once (an option torch does not know) and the script dies of it."""
    script = tmp_path / "export.py"
    script.write_text(textwrap.dedent("""
        import torch
        program = torch.export.export(torch.nn.Linear(4, 4), (torch.randn(1, 4),))
        torch._inductor.aoti_compile_and_package(program, inductor_configs={"no_such_option_here": 1})
    """))
    done = aoti_hooks_command("run", "--plugins", "kv_elide", "--", sys.executable, str(script))
    assert done.returncode == 1
    said = done.stderr[done.stderr.index("aoti-hooks run: process"):].splitlines()
    assert said[0].endswith(f"({script}): 0 compile(s), 1 failed")
    assert said[1].startswith("  failed: <package>: ") and "no_such_option_here" in said[1]
    assert said[-1] == "aoti-hooks run: the command exited with status 1"
    assert "no AOTI compile ran" not in done.stderr
