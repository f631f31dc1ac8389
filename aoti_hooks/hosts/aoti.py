"""Plain-AOTI host: ``aoti_compile_and_package(ep, plugins=[...])``.

With no plugins and no active session this is exactly ``torch._inductor.aoti_compile_and_package``;
torch's own function called inside a session comes here too (`seams.inductor.entry`).
Otherwise, in the session (`lifecycle.compiling`): check the disks have room (`disk`), move the
program with ``move_program_to_device``, merge ``aoti_options``, enter every ``compile_context``,
and compile into a package that appears at its path whole or not at all.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

import torch

from ..core.errors import AotiHooksError
from ..core.registry import plugin_names
from ..core.session import Session, check_keywords, current_session
from ..seams import inductor
from . import disk
from .lifecycle import compiling, enter_compile_contexts, move_program, resolve_device

HOST = "aoti"


def compile_in_session(session: Session, program, package_path=None, inductor_configs=None) -> str:
    """Compile ``program`` with ``session`` active; errors of ours come out unwrapped."""
    with compiling(session, HOST, str(package_path or "<package>")), ExitStack() as stack:
        device = resolve_device(session.target, program)
        disk.check_package_folder(package_path)
        writes = disk.planned_writes(program, package_path)
        disk.check_room(writes)
        session.compile_options = dict(inductor_configs or {})
        program = move_program(session, program, device)
        session.program = program
        configs = inductor.target_compile_options(session.target, session.hooks.aoti_options(dict(session.compile_options)))
        enter_compile_contexts(session, stack)
        with disk.written_whole(package_path, writes) as writing:
            written = torch._inductor.aoti_compile_and_package(  # `compiling` marks it the host's call: not routed back here
                program, package_path=writing, inductor_configs=configs)
        return package_path if isinstance(package_path, (str, os.PathLike)) else written


inductor.route(compile_in_session)  # torch's own call inside a session compiles here


def aoti_compile_and_package(
    exported_program,
    package_path=None,
    *,
    plugins=(),
    target: Any = None,
    inductor_configs: dict[str, Any] | None = None,
    **plugin_options: dict[str, Any],
) -> str:
    """Compile and package ``exported_program`` with AOTInductor, running ``plugins``.

    ``plugins`` lists plugin names in order; ``target`` is a profile (``rtx5090``, ``h100``,
    ...), ``local``, or ``smem=<bytes>,mem=<size>``; each plugin's options are a keyword
    argument named after it: ``kv_elide={"min_bytes": "4MiB"}``. Inside
    ``with aoti_hooks.session(...)`` the active session is used. Returns the package path.
    """
    if not isinstance(exported_program, torch.export.ExportedProgram):
        raise AotiHooksError(
            f"aoti_compile_and_package takes an ExportedProgram, not a {type(exported_program).__name__}; "
            f"export the model first: torch.export.export(model, example_args)"
        )
    check_keywords("aoti_compile_and_package", plugin_options, ("package_path", "plugins", "target", "inductor_configs"),
                   plugin_names(plugins))
    active = current_session()
    if active is not None:
        if plugins or target is not None or plugin_options:
            raise AotiHooksError(
                "aoti_compile_and_package got plugins, target or options inside an active aoti_hooks.session; "
                "give them to aoti_hooks.session(...) instead"
            )
        return compile_in_session(active, exported_program, package_path, inductor_configs)
    if not plugins:
        if target is not None or plugin_options:
            raise AotiHooksError("a target or plugin options were given without plugins; name the plugins with plugins=[...]")
        return torch._inductor.aoti_compile_and_package(
            exported_program, package_path=package_path, inductor_configs=inductor_configs
        )
    session = Session(plugins, target=target, options=plugin_options)
    return compile_in_session(session, exported_program, package_path, inductor_configs)
