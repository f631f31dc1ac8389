"""Plain-AOTI entry point: ``aoti_compile_and_package(ep, plugins=[...])``.

With no plugins and no active session this is exactly
``torch._inductor.aoti_compile_and_package``. Otherwise, in the session: move the program
with ``move_program_to_device``, merge ``aoti_options``, enter every ``compile_context``,
and compile with the Inductor seam active.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import torch

from .errors import AotiHooksError, PluginError
from ._session import Session, check_keywords, current_session
from .registry import plugin_names
from .target import Target


def program_device(program: "torch.export.ExportedProgram") -> torch.device:
    """The device of the program's first parameter, buffer or constant (CPU when it has none)."""
    for tensor in [*program.state_dict.values(), *program.constants.values()]:
        if isinstance(tensor, torch.Tensor):
            return tensor.device
    return torch.device("cpu")


def resolve_device(target: Target, program: "torch.export.ExportedProgram") -> torch.device:
    """The indexed device to compile on: the target's, else where the program already is."""
    if target.device is None:
        device = program_device(program)
    else:
        try:
            device = torch.device(target.device)
        except RuntimeError:
            raise AotiHooksError(f"target {target.name!r} names device {target.device!r}, which torch does not know") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AotiHooksError(
            f"target {target.name!r} compiles on CUDA but no CUDA device is visible; "
            f"use target='local' or 'smem=<bytes>,mem=<size>,device=cpu'"
        )
    return indexed_device(device)


def indexed_device(device: "torch.device | str") -> torch.device:
    """``cuda`` as ``cuda:<current>``: torch 2.11's ``move_to_device_pass(ep, "cuda")`` mismatches ``cuda:0``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def enter_compile_contexts(session: Session, stack: ExitStack) -> None:
    """Enter every plugin's ``compile_context`` on ``stack``; a failing one is named."""
    for plugin, context in session.hooks.compile_context():
        try:
            stack.enter_context(context)
        except AotiHooksError:
            raise
        except Exception as error:
            raise PluginError(plugin, "compile_context", error) from error


def move_program(session: Session, program, device: torch.device):
    """``move_program_to_device`` hooks, else ``move_to_device_pass`` (skipped when already there)."""
    moved = session.hooks.move_program_to_device(program, device)
    if moved is not None:
        return moved
    if program_device(program) == device:
        return program
    from .seams.export import moved_copy

    return moved_copy(program, device)  # never the user's program: the pass rewrites what it is given


def ours_inside(error: BaseException) -> AotiHooksError | None:
    """The aoti-hooks error that Inductor wrapped (``InductorError``, ``BackendCompilerFailed``)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, AotiHooksError):
            return error
        seen.add(id(error))
        error = getattr(error, "inner_exception", None) or error.__cause__ or error.__context__
    return None


def compile_in_session(session: Session, program, package_path=None, inductor_configs=None) -> str:
    """Compile ``program`` with ``session`` active; errors of ours come out unwrapped."""
    try:
        return _compile(session, program, package_path, inductor_configs)
    except Exception as error:
        ours = ours_inside(error)
        if ours is None or ours is error:
            raise
        raise ours from ours.__cause__


def _compile(session: Session, program, package_path, inductor_configs) -> str:
    with session, ExitStack() as stack:
        device = resolve_device(session.target, program)
        session.compile_options = dict(inductor_configs or {})
        program = move_program(session, program, device)
        session.program = program
        configs = session.hooks.aoti_options(dict(session.compile_options))
        enter_compile_contexts(session, stack)
        return torch._inductor.aoti_compile_and_package(
            program, package_path=package_path, inductor_configs=configs
        )


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
