"""What the Inductor seam keeps while sessions compile: which session a graph belongs to, and per
session (`Record`) the tensors the hooks gave Inductor for it.

Inductor serializes constants from a thread pool, where the session's context variable is not
set; so a graph that a session touched is bound to it (`session_for`), and calls on that graph
find it. The context flags say which of Inductor's paths the calling context is in now
(allocating a constant's name, unlifting, a Triton autotune run, a choice benchmark).
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from ...core.active import current_session
from ...core.errors import SeamError
from ...core.types import SessionView

allocating_var: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("aoti_hooks_allocating", default=None)
unlifting_var: contextvars.ContextVar[Any] = contextvars.ContextVar("aoti_hooks_unlifting", default=None)
tuning_var: contextvars.ContextVar[Any] = contextvars.ContextVar("aoti_hooks_tuning", default=None)
choosing_var: contextvars.ContextVar[Any] = contextvars.ContextVar("aoti_hooks_choosing", default=None)
bind_lock = threading.Lock()
_graph_sessions: "weakref.WeakKeyDictionary[Any, SessionView]" = weakref.WeakKeyDictionary()


@contextmanager
def flagged(var: contextvars.ContextVar, value: Any) -> Iterator[None]:
    """``var`` is ``value`` in this context while inside (one of the flags above)."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


@dataclass
class Record:
    """One session's answers as Inductor holds them: each graph's constant replacements (the
    ``serialize_constant`` answers, host-backed where their bytes are on the host), and the
    tensors given in Inductor's place (replacements, lifted-buffer clones), by ``id``."""

    replacements: "weakref.WeakKeyDictionary[Any, dict[str, torch.Tensor | None]]" = field(
        default_factory=weakref.WeakKeyDictionary)
    given: dict[int, "weakref.ref"] = field(default_factory=dict)

    def remember_given(self, tensor: torch.Tensor) -> None:
        remember(self.given, tensor)

    def is_given(self, tensor: Any) -> bool:
        return recall(self.given, id(tensor)) is tensor


_records: "weakref.WeakKeyDictionary[Any, Record]" = weakref.WeakKeyDictionary()


def record(session: SessionView) -> Record:
    """``session``'s record (made on first use; it goes with the session)."""
    with bind_lock:
        found = _records.get(session)
        if found is None:
            found = _records[session] = Record()
        return found


def session_for(graph: Any) -> SessionView | None:
    """The session of this context, else the session bound to ``graph`` (thread-pool callers)."""
    session = current_session()
    if session is not None:
        with bind_lock:
            _graph_sessions[graph] = session
        return session
    with bind_lock:
        return _graph_sessions.get(graph)


def bound_graphs() -> list[tuple[Any, SessionView]]:
    """Every graph a live session touched, with its session."""
    with bind_lock:
        return list(_graph_sessions.items())


def check_layout(what: str, name: str, stock: torch.Tensor, given: torch.Tensor) -> None:
    if (
        not isinstance(given, torch.Tensor)
        or given.shape != stock.shape
        or given.stride() != stock.stride()
        or given.dtype != stock.dtype
        or given.storage_offset() != stock.storage_offset()
    ):
        raise SeamError(
            f"{what} for {name!r} returned a tensor whose shape, strides, dtype or offset differ from "
            f"the stock value ({tuple(stock.shape)}, {stock.stride()}, {stock.dtype}); return the same layout"
        )


def check_autotune_example(name: str, stock: torch.Tensor, given: torch.Tensor) -> None:
    """An ``autotune_example`` answer must have the constant's layout, on the constant's device."""
    check_layout("autotune_example", name, stock, given)
    if given.device != stock.device:
        raise SeamError(f"autotune_example for {name!r} returned a tensor on {given.device}, not on the "
                        f"constant's device {stock.device}; return a tensor the kernel can read")


class HostBacked(torch.Tensor):
    """A constant that keeps its device in AOTI's tables while its bytes live on the host.

    AOTI reads a constant's device (``is_cuda``, the constant table's device type) and its
    bytes (``untyped_storage()``) from one tensor; this tensor answers the first with the
    stock constant's device and the second with the host copy, so host-built values cost
    no device memory and the artifact's layout stays the stock one.
    """

    host: torch.Tensor

    @staticmethod
    def __new__(cls, like: torch.Tensor, host: torch.Tensor, device: torch.device | None = None):
        """``like``'s layout on ``device`` (``like``'s own by default), its bytes ``host``'s."""
        made = torch.Tensor._make_wrapper_subclass(
            cls, like.shape, strides=like.stride(), storage_offset=like.storage_offset(),
            dtype=like.dtype, device=like.device if device is None else device,
        )
        made.host = host
        return made

    def untyped_storage(self):  # type: ignore[override]
        return self.host.untyped_storage()

    def data_ptr(self) -> int:  # type: ignore[override]
        return self.host.data_ptr()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise SeamError(
            f"{func} was called on a host-backed AOTI constant; only its metadata and bytes "
            f"may be read (report this to aoti-hooks with your torch version)"
        )


def host_of(tensor: Any) -> Any:
    return tensor.host if isinstance(tensor, HostBacked) else tensor


def remember(registry: dict[int, "weakref.ref"], value: Any) -> int:
    """Keep a weak reference to ``value`` in ``registry`` under its ``id``, dropped when it goes."""
    key = id(value)

    def forget(ref, key=key):  # no lock: the collector may run this while the lock is held
        if registry.get(key) is ref:
            registry.pop(key, None)

    registry[key] = weakref.ref(value, forget)
    return key


def recall(registry: dict[int, "weakref.ref"], key: int) -> Any:
    """What `remember` keeps under ``key``, or None once it is gone."""
    ref = registry.get(key)
    return ref() if ref is not None else None


def keep_device(session: SessionView, stock: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """``given`` as what AOTI reads; host-built values keep the stock constant's device, and a stock
    parameter's value stays a parameter (a ``pickle_weights`` package pickles the class and ``requires_grad``)."""
    if isinstance(stock, torch.nn.Parameter) and type(given) is torch.Tensor:
        given = torch.nn.Parameter(given, requires_grad=stock.requires_grad)
    if given.device != stock.device:
        given = HostBacked(stock, given)
    record(session).remember_given(given)
    return given
