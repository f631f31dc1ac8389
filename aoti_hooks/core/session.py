"""One active export: its plugins, their options, the target, and a report of what they did.

A session is the only state plugins share. It is active inside ``with session:``; the
active session lives in a context variable, so nested sessions and sessions in other
threads never see each other, and leaving a session (by return or by exception)
removes every patch that was installed for it.
"""

from __future__ import annotations

import copy
import threading
import warnings
from typing import Any, Callable, Iterable

from .active import current_session, enter, leave
from .errors import AotiHooksError, AotiHooksWarning
from .hooks import Hooks
from .options import check_options_belong, resolve_options
from .registry import PluginRegistry, plugin_names, plugin_options, plugin_registry, replaced_backend_specs
from .target import parse_target
from .text import did_you_mean
from .types import Report, Target, report_lines

__all__ = ["Report", "Session", "current_session", "report_lines", "session", "while_active"]

# What must be in place while any session is active (the Inductor seam's patches): each entry is
# called on entering a session and returns what releases it on leaving. The package registers the
# seams here (`aoti_hooks/__init__.py`), so the core never imports the layers above it.
_while_active: list[Callable[[], Callable[[], None]]] = []
_while_active_lock = threading.Lock()


def while_active(acquire: Callable[[], Callable[[], None]]) -> None:
    """Call ``acquire()`` on entering every session and its answer on leaving it (registered once)."""
    with _while_active_lock:
        if acquire not in _while_active:
            _while_active.append(acquire)


def _acquire_all() -> list[Callable[[], None]]:
    """Every registered resource acquired, or none of them (a failure releases those already held)."""
    with _while_active_lock:
        acquirers = list(_while_active)
    releases: list[Callable[[], None]] = []
    try:
        for acquire in acquirers:
            releases.append(acquire())
    except BaseException:
        _release_all(releases)
        raise
    return releases


def _release_all(releases: list[Callable[[], None]]) -> None:
    for release in reversed(releases):
        release()


class Session:
    """Plugins, options and target for one compile; a context manager that activates them.

    ``plugins`` is a list of names (or a comma-separated string); ``options`` maps plugin
    name to ``{option: value}``; ``target`` is anything `parse_target` accepts.
    """

    def __init__(
        self,
        plugins: Iterable[str] | str = (),
        target: Any = None,
        options: dict[str, dict[str, Any]] | None = None,
        registry: PluginRegistry | None = None,
    ):
        registry = registry or plugin_registry
        named = plugin_names(plugins)
        selected = registry.select(named) if named else []
        options = dict(options or {})
        check_options_belong(named, options)
        self.plugins: list[str] = [name for name, _ in selected]
        self.options: dict[str, dict[str, Any]] = {
            name: resolve_options(name, plugin_options(plugin), options.get(name, {}))
            for name, plugin in selected
        }
        self.target: Target = parse_target(target)
        # ExecuTorch compile-spec key -> the plugin that does that key's work instead.
        self.replaced_backend_specs: dict[str, str] = {
            key: name for name, plugin in reversed(selected) for key in replaced_backend_specs(plugin)
        }
        self.report = Report()
        self._start_compile_state()
        self._selected, self._built_in = selected, registry.built_in()
        self.hooks = Hooks(self, selected, self._built_in)

    def _start_compile_state(self) -> None:
        # The program being compiled, once on its device (set before compile contexts are entered).
        self.program: Any = None
        # This compile's Inductor options (the caller's; in ExecuTorch, the backend's), read by the core's placement.
        self.compile_options: dict[str, Any] = {}
        # True when the program handed to move_program_to_device is a private copy that may be
        # moved in place (ExecuTorch's preprocess gets one); a user's program never is.
        self.program_is_private = False
        self._state: dict[str, dict[str, Any]] = {}
        self._held: list[list[Callable[[], None]]] = []

    def for_one_compile(self) -> "Session":
        """A session with this one's plugins, options, target and report, and compile state of its own.

        An active session covers an ExecuTorch method whose specs name no plugin through one of
        these: each method's preprocess gets a private program and fresh plugin state (as a
        method with its own specs does), and what the plugins did lands in this session's report.
        """
        child = copy.copy(self)  # plugins, options, target, report: shared
        child._start_compile_state()
        child.hooks = Hooks(child, self._selected, self._built_in)  # bound to the child's state
        return child

    def options_for(self, plugin: str) -> dict[str, Any]:
        """The resolved options of ``plugin`` (defaults filled in; none for a plugin without options)."""
        return dict(self.options.get(plugin, {}))

    def state(self, plugin: str) -> dict[str, Any]:
        """A dict where ``plugin`` keeps what it must remember during this session."""
        return self._state.setdefault(plugin, {})

    def __enter__(self) -> "Session":
        outer = current_session()
        if outer is not None and outer is not self:
            dropped = [name for name in outer.plugins if name not in self.plugins]
            if dropped:
                warnings.warn(f"a session with plugins {self.plugins} was entered inside one with {outer.plugins}: "
                              f"until it ends only its own plugins run ({', '.join(dropped)} do not)",
                              AotiHooksWarning, stacklevel=2)
        releases = _acquire_all()
        try:
            enter(self)
        except BaseException:
            _release_all(releases)
            raise
        self._held.append(releases)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        releases = self._held.pop()
        try:
            leave(self)
        finally:
            _release_all(releases)

    def __repr__(self) -> str:
        return f"Session(plugins={self.plugins!r}, target={self.target.name!r})"


def session(plugins: Iterable[str] | str = (), target: Any = None, **plugin_options: dict[str, Any]) -> Session:
    """A `Session` for ``plugins``; use it as ``with aoti_hooks.session([...]) as s:``.

    ``plugin_options`` are given per plugin: ``session(["kv_elide"], kv_elide={"min_bytes": "4MiB"})``.
    Sessions nest: the innermost one runs, alone, until it ends.
    """
    check_keywords("session", plugin_options, ("plugins", "target"), plugin_names(plugins))
    return Session(plugins, target=target, options=plugin_options)


def check_keywords(function: str, given: dict[str, Any], parameters: tuple[str, ...], plugins: list[str]) -> None:
    """Keyword arguments are plugin options, named after a plugin; one that is not a listed plugin
    but close to one of ``function``'s own parameters is a typo of that parameter, said so."""
    for key in given:
        if key in plugins:
            continue
        close = did_you_mean(key, parameters)
        if close:
            raise AotiHooksError(f"{function}() got {key}=, which is neither one of its parameters nor a plugin "
                                 f"in the list{close}")
