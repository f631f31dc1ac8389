"""One compile in a session, the same for every host (plain AOTI, ExecuTorch's AOTI backends).

`compiling` is the lifecycle both hosts run a compile in: the session active for the whole
compile, an error of ours that torch or ExecuTorch wrapped (``InductorError``,
``BackendCompilerFailed``) raised as itself, and the session's report kept in this process's
history once the compile succeeds. The steps inside it (`move_program`, `enter_compile_contexts`)
are the hosts' shared parts; each host calls them where its compiler asks.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager
from typing import Iterator

import torch

from ..core.errors import AotiHooksError, PluginError, error_chain
from ..core.session import Session
from ..core.types import Report, Target
from ..seams import inductor
from ..seams.export import moved_copy

_lock = threading.Lock()
_history: list[tuple[str, str, Report]] = []  # (host, what was compiled, its report), in order
_failures: list[tuple[str, str, str]] = []  # (host, what was compiled, the first line of its error), in order


def program_device(program: "torch.export.ExportedProgram") -> torch.device:
    """The device of the program's first parameter, buffer or constant (CPU when it has none)."""
    for tensor in [*program.state_dict.values(), *program.constants.values()]:
        if isinstance(tensor, torch.Tensor):
            return tensor.device
    return torch.device("cpu")


def indexed_device(device: "torch.device | str") -> torch.device:
    """``cuda`` as ``cuda:<current>``: torch 2.11's ``move_to_device_pass(ep, "cuda")`` mismatches ``cuda:0``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


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


def move_program(session: Session, program, device: torch.device):
    """``move_program_to_device`` hooks, else ``move_to_device_pass`` (skipped when already there)."""
    moved = session.hooks.move_program_to_device(program, device)
    if moved is not None:
        return moved
    if program_device(program) == device:
        return program
    return moved_copy(program, device)  # never the user's program: the pass rewrites what it is given


def enter_compile_contexts(session: Session, stack: ExitStack) -> None:
    """Enter every plugin's ``compile_context`` on ``stack``; a failing one is named."""
    for plugin, context in session.hooks.compile_context():
        try:
            stack.enter_context(context)
        except AotiHooksError:
            raise
        except Exception as error:
            raise PluginError(plugin, "compile_context", error) from error


def ours_inside(error: BaseException) -> AotiHooksError | None:
    """The aoti-hooks error that Inductor wrapped (``InductorError``, ``BackendCompilerFailed``)."""
    return next((link for link in error_chain(error) if isinstance(link, AotiHooksError)), None)


@contextmanager
def compiling(session: Session, host: str, name: str) -> Iterator[Session]:
    """``session`` active around one compile by ``host`` of ``name`` (a package path, a method).

    An error of ours wrapped by torch or ExecuTorch comes out as itself; after a compile that
    succeeded, ``(host, name, report)`` joins the process's history (`history`), and after one that
    failed, ``(host, name, first line of the error)`` joins its failures (`failures`).
    """
    try:
        with session, inductor.host_call():  # torch's entry points called inside run as stock's, in this session
            yield session
    except Exception as error:
        ours = ours_inside(error)
        shown = ours if ours is not None else error
        with _lock:
            _failures.append((host, name, first_line(shown)))
        if ours is None or ours is error:
            raise
        raise ours from ours.__cause__
    with _lock:
        _history.append((host, name, session.report))


def history(host: str | None = None) -> list[tuple[str, Report]]:
    """``(name, report)`` of every compile with plugins in this process (of ``host`` only, when given), in order."""
    with _lock:
        return [(name, report) for who, name, report in _history if host is None or who == host]


def failures() -> list[tuple[str, str]]:
    """``(name, first line of its error)`` of every compile with plugins that failed in this process, in order."""
    with _lock:
        return [(name, line) for _, name, line in _failures]


def first_line(error: BaseException) -> str:
    """``Type: the first line of the message`` (a long one cut at 300 characters)."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else ""
    return f"{type(error).__name__}: {line[:300]}" if line else type(error).__name__
