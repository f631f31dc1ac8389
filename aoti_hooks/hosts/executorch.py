"""ExecuTorch host: plugins named in a method's compile specs run inside its AOTI backend's ``preprocess``.

A method whose compile specs hold ``aoti_hooks.*`` keys (`aoti_hooks.core.specs`) lowers in a
`Session` of its own, through the same lifecycle as plain AOTI (`lifecycle.compiling`). One
without them, lowered inside an active ``aoti_hooks.session``, runs that session's plugins (a
`Session.for_one_compile` of it: its plugins, options, target and report; a method's own specs
always win over the active session); outside any session it runs the original code untouched. Inside the session the backend's own
``preprocess`` body runs against a stand-in for the backend class (ExecuTorch forbids
subclassing a backend) that differs in three places: ``move_program_to_device`` asks the
``move_program_to_device`` hooks first, the compile options get the ``aoti_options`` hooks
merged, and the compile context also enters every ``compile_context``. The backend sees its
compile specs without the ``aoti_hooks.*`` keys, and without the keys a plugin declares it
replaces (``REPLACES_BACKEND_SPECS``; kv_elide replaces CudaBackend's ``low_memory_mode``). The
lowered delegate keeps the backend's id, so the ``.pte`` runs on the stock runtime.
"""

from __future__ import annotations

import copy
import sys
import warnings
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterable

import torch

from ..core import kernel_manifest
from ..core.active import current_session
from ..core.errors import AotiHooksError
from ..core.registry import plugin_names
from ..core.session import Session, check_keywords
from ..core.specs import PREFIX, compile_spec_pairs, session_from_compile_specs
from ..core.types import Report
from ..seams import executorch as seam, inductor
from ..seams.shared_memory import REPORT  # the report's name for what the target changed
from . import disk
from .lifecycle import compiling, enter_compile_contexts, history, indexed_device

HOST = "executorch"
AOTI_BACKEND_MODULE = "executorch.backends.aoti.aoti_backend"


def compile_specs(plugins: Iterable[str] | str, target: Any = None, **plugin_options: dict) -> list:
    """ExecuTorch ``CompileSpec`` entries that turn on ``plugins`` for one method.

    ``compile_specs(["kv_elide"], target="rtx5090", kv_elide={"min_bytes": "4MiB"})``.
    Building them turns the ExecuTorch integration on (`install`), so specs made here are never
    silently ignored by a backend. The plugins, their options and the target are checked here, as
    ``session()`` checks them: a mistake is one sentence now, not an error at lowering minutes later.
    """
    try:
        from executorch.exir.backend.compile_spec_schema import CompileSpec
    except ImportError:
        raise AotiHooksError(
            'compile_specs builds ExecuTorch CompileSpec entries and needs ExecuTorch: pip install "aoti-hooks[executorch]"'
        ) from None
    check_keywords("compile_specs", plugin_options, ("plugins", "target"), plugin_names(plugins))
    Session(plugins, target=target, options=plugin_options)  # the lowering's own check, now
    pairs = compile_spec_pairs(plugins, target, **plugin_options)
    install()
    return [CompileSpec(key, value) for key, value in pairs]


def install() -> None:
    """Turn the integration on: every ``AotiBackend`` reads this grammar from its methods' specs."""
    seam.install(preprocess, copy_for_preprocess)


uninstall = seam.uninstall
installed = seam.installed


def cover_loaded_backends() -> Callable[[], None]:
    """On entering a session (``while_active``): turn the integration on when ExecuTorch's AOTI
    backend is already imported, so that ``with aoti_hooks.session(...): exporter.export(...)`` covers
    an exporter that builds its own specs without ``import aoti_hooks.executorch`` first. A backend
    imported only inside the session needs that import (ExecuTorch is not imported for a session
    that may never use it). The integration stays on afterwards, as after the import."""
    if AOTI_BACKEND_MODULE in sys.modules and not installed():
        install()
    return _nothing_to_release


def _nothing_to_release() -> None:
    pass


def reports() -> dict[str, Report]:
    """The `Report` of the latest lowering of each method with plugins in this process, by method name."""
    return dict(history(HOST))


def report_history() -> list[tuple[str, Report]]:
    """``(method, Report)`` of every lowering with plugins in this process, in order: a second
    lowering of ``forward`` (another program, another backend) does not hide the first."""
    return history(HOST)


def _method_name(compile_specs) -> str:
    for spec in compile_specs:
        if getattr(spec, "key", None) == "method_name":
            return bytes(spec.value).decode()
    return "<unnamed method>"


def backend_specs(session: Session, cls: type, method: str, compile_specs) -> list:
    """The specs the backend sees: without ours, and without those a plugin does the work of (said once)."""
    kept = []
    for spec in compile_specs:
        if spec.key.startswith(PREFIX):
            continue
        owner = session.replaced_backend_specs.get(spec.key)
        if owner is not None:
            value = bytes(spec.value).decode()
            warnings.warn(
                f"method {method!r}: plugin {owner!r} replaces {cls.__name__}'s {spec.key}={value}; "
                f"{spec.key} is left out of this method's compile (see the aoti-hooks README)",
                stacklevel=3,
            )
            session.report.set(owner, f"replaced_{spec.key}", value)
            continue
        kept.append(spec)
    return kept


def copy_for_preprocess(cls, stock, edge_program, compile_specs):
    """The program copy ExecuTorch makes per method before ``preprocess`` (the seam calls this).

    Stock deep-copies every tensor unless CudaBackend's ``low_memory_mode`` is on: a weights-sized host
    copy per method. A method whose specs name plugins gets ``low_memory_mode``'s copy instead — the
    graph and its tables copied, the state dict's and constants' tensors shared — because its
    preprocess only ever replaces those entries (moves, placement), never writes the tensors.
    """
    if current_session() is None and not any(getattr(spec, "key", "").startswith(PREFIX) for spec in compile_specs):
        return stock(cls, edge_program, compile_specs)
    shared = {id(tensor): tensor for values in (edge_program.state_dict, edge_program.constants)
              for tensor in values.values() if isinstance(tensor, torch.Tensor)}
    return copy.deepcopy(edge_program, shared)


def preprocess(cls, stock, edge_program, compile_specs):
    """``AotiBackend.preprocess`` (the seam calls this): the stock body, in a session when the specs name plugins."""
    session = session_from_compile_specs(compile_specs)
    if session is None:
        active = current_session()  # a method naming no plugin, lowered inside an active session: it covers it
        if active is None:
            return stock(cls, edge_program, compile_specs)
        session = active.for_one_compile()
    method = _method_name(compile_specs)
    specs = backend_specs(session, cls, method, compile_specs)
    session.state(REPORT).pop("launches", None)  # this compile's launches make this library's manifest
    with compiling(session, HOST, method), seam.collector_patches():
        writes = disk.check_method_room(edge_program)
        with disk.disk_errors(writes):
            result = stock(SessionBackend(cls, session), edge_program, specs)
    _add_kernel_manifest(session, result)
    return result


def _add_kernel_manifest(session: Session, result) -> None:
    """The kernel manifest of the delegate library ``preprocess`` made (`core.kernel_manifest`), where
    the compile launched GPU kernels: what `aoti-hooks inspect` checks a ``.pte`` against."""
    launches = session.state(REPORT).pop("launches", None)
    processed = getattr(result, "processed_bytes", b"") or b""
    library_key = processed.decode(errors="replace").split("\n", 1)[0]
    if not launches or not library_key.endswith("_so_blob") or getattr(result, "data_store_output", None) is None:
        return
    target = session.target.name if session.target is not None else None
    seam.add_named_blob(result, kernel_manifest.key_for(library_key),
                        kernel_manifest.manifest(launches, library_key, target))
    session.report.add(REPORT, "kernels_in_manifest", len(launches))


class SessionBackend:
    """Stands for backend class ``cls`` inside ``preprocess``: three methods go through hooks."""

    def __init__(self, cls: type, session: Session):
        self._cls = cls
        self._session = session
        self.__name__ = cls.__name__

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cls, name)

    def move_program_to_device(self, edge_program, device, compile_specs):
        target_device = self._session.target.device
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise AotiHooksError(
                f"{self.__name__} compiles on a CUDA GPU and this machine has none (a stock lowering fails here too); "
                f"lower on a machine with a CUDA GPU, or through an AotiBackend that compiles for the CPU")
        wanted = indexed_device(device)
        if target_device is not None and indexed_device(target_device).type != wanted.type:
            raise AotiHooksError(
                f"target {self._session.target.name!r} compiles on {target_device} but {self.__name__} "
                f"compiles on {device}; give a target for {device} (e.g. 'local')"
            )
        # ExecuTorch gives preprocess its own copy of the program (``copy_exported_program_for_preprocess``)
        # and moves it in place; so may the plugins, which releases its host tensors as stock does.
        self._session.program_is_private = True
        moved = self._session.hooks.move_program_to_device(edge_program, wanted)
        if moved is None:
            moved = self._cls.move_program_to_device(edge_program, device, compile_specs)
        self._session.program = moved  # the backend's own passes then edit its graph in place
        return moved

    def get_aoti_compile_options(self, compile_specs):
        options = self._session.hooks.aoti_options(self._cls.get_aoti_compile_options(compile_specs))
        options = inductor.target_compile_options(self._session.target, options)
        self._session.compile_options = dict(options)  # preprocess asks before it moves: placement reads them
        return options

    @contextmanager
    def get_extra_aoti_compile_context_manager(self, compile_specs=None):
        with ExitStack() as stack:
            stack.enter_context(self._cls.get_extra_aoti_compile_context_manager(compile_specs))
            enter_compile_contexts(self._session, stack)
            yield
