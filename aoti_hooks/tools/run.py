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
        reports = [json.loads(line) for line in Path(report_file).read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise SystemExit(f"aoti-hooks run: {command[0]!r} was not found; give the command after --, "
                         f"e.g. -- python export.py") from None
    finally:
        if not keep:
            os.unlink(report_file)
    return status, reports


def format_reports(reports: list[dict], status: int = 0) -> str:
    """What the command's processes compiled, which compiles failed and why, and the command's status."""
    lines = []
    for entry in reports:
        failed = entry.get("failed", [])
        done = f"{entry['compiles']} compile(s)" + (f", {len(failed)} failed" if failed else "")
        lines.append(f"aoti-hooks run: process {entry['pid']} ({' '.join(entry['argv'])[:120]}): {done}")
        lines += [f"  failed: {failed_compile['name']}: {failed_compile['error']}" for failed_compile in failed]
        lines += [f"  {line}" for line in report_lines(entry["report"])]
    if not lines:
        lines.append("aoti-hooks run: no compile with the session's plugins ran in the command")
    if status:
        lines.append(f"aoti-hooks run: the command exited with status {status}")
    return "\n".join(lines)
