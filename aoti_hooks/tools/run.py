"""``aoti-hooks run --plugins ... -- COMMAND``: a session around a program the user does not edit.

The command runs unchanged, in its own process. Every Python process it starts reads
`ENV` (the session: plugins, options, target, where reports go) through the ``sitecustomize``
in ``tools/bootstrap``, which `command_env` puts first on ``PYTHONPATH``: the process enters the
session before the script runs and leaves it at exit, appending one JSON line (its pid, argv,
how many compiles ran, the session's report) to the report file when it compiled anything. So every AOTI compile inside — torch's own
``aoti_compile_and_package``, ExecuTorch methods whose specs name no plugin — runs the plugins.
The same works without this command: set ``AOTI_HOOKS_RUN`` and ``PYTHONPATH`` as `command_env` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from ..core.types import report_lines

ENV = "AOTI_HOOKS_RUN"
BOOTSTRAP = str(Path(__file__).resolve().parent / "bootstrap")


def command_env(plugins: list[str], options: dict, target: str | None, report_file: str,
                base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that puts every Python process of a command in the session."""
    env = dict(os.environ if base is None else base)
    env[ENV] = json.dumps({"plugins": plugins, "options": options, "target": target, "report": report_file})
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP, *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_command(command: list[str], plugins: list[str], options: dict, target: str | None,
                report_file: str | None) -> tuple[int, list[dict]]:
    """Run ``command`` in the session; its exit status and each Python process's report."""
    keep = report_file is not None
    if report_file is None:
        handle, report_file = tempfile.mkstemp(prefix="aoti-hooks-run-", suffix=".jsonl")
        os.close(handle)
    Path(report_file).write_text("")
    try:
        status = subprocess.run(command, env=command_env(plugins, options, target, os.path.abspath(report_file))).returncode
    except FileNotFoundError:
        raise SystemExit(f"aoti-hooks run: {command[0]!r} was not found; give the command after --, "
                         f"e.g. -- python export.py") from None
    reports = [json.loads(line) for line in Path(report_file).read_text().splitlines() if line.strip()]
    if not keep:
        os.unlink(report_file)
    return status, reports


def format_reports(reports: list[dict]) -> str:
    lines = []
    for entry in reports:
        said = report_lines(entry["report"])
        lines.append(f"aoti-hooks run: process {entry['pid']} ({' '.join(entry['argv'])[:120]}): "
                     f"{entry['compiles']} compile(s)")
        lines += [f"  {line}" for line in said]
    return "\n".join(lines) or "aoti-hooks run: no AOTI compile ran in the command"
