"""One active export: its plugins, their options, the target, and a report of what they did.

A session is the only state plugins share. It is active inside ``with session:``; the
active session lives in a context variable, so nested sessions and sessions in other
threads never see each other, and leaving a session (by return or by exception)
removes every patch that was installed for it.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Iterable

from .active import current_session, enter, leave
from .hookcaller import HookCaller
from .seams import inductor
from .registry import (AotiHooksWarning, PluginRegistry, plugin_names, plugin_options, plugin_registry,
                       replaced_backend_specs)
from .errors import AotiHooksError
from .options import check_options_belong, resolve_options
from .target import Target, parse_target
from .text import did_you_mean, format_bytes

__all__ = ["Report", "Session", "current_session", "report_lines", "session"]


def report_lines(entries: dict[str, dict[str, Any]]) -> list[str]:
    """One line per plugin: ``kv_elide: tensors_claimed=6, claimed_bytes=6.0 MiB``."""
    def shown(key: str, value: Any) -> Any:
        if isinstance(value, list):  # itemized entries (placed tensors): the line keeps the count
            return len(value)
        return format_bytes(value) if key.endswith("bytes") and isinstance(value, int) else value

    return [
        f"{plugin}: " + ", ".join(f"{key}={shown(key, value)}" for key, value in entry.items())
        for plugin, entry in entries.items()
    ]


class Report:
    """What each plugin did, keyed by plugin name: counters and values, printable, as a dict."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, plugin: str, key: str, amount: int | float = 1) -> None:
        """Add ``amount`` to counter ``key`` of ``plugin``."""
        with self._lock:
            entry = self._entries.setdefault(plugin, {})
            entry[key] = entry.get(key, 0) + amount

    def append(self, plugin: str, key: str, item: Any) -> None:
        """Append ``item`` to list ``key`` of ``plugin`` (one entry per tensor, for ``--json``)."""
        with self._lock:
            self._entries.setdefault(plugin, {}).setdefault(key, []).append(item)

    def set(self, plugin: str, key: str, value: Any) -> None:
        with self._lock:
            self._entries.setdefault(plugin, {})[key] = value

    def get(self, plugin: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._entries.get(plugin, {}))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {plugin: {key: list(value) if isinstance(value, list) else value for key, value in entry.items()}
                    for plugin, entry in self._entries.items()}

    def __str__(self) -> str:
        return "\n".join(report_lines(self.as_dict())) or "(no plugin reported anything)"


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
        # The program being compiled, once on its device (set before compile contexts are entered).
        self.program: Any = None
        # This compile's Inductor options (the caller's; in ExecuTorch, the backend's), read by the core's placement.
        self.compile_options: dict[str, Any] = {}
        # True when the program handed to move_program_to_device is a private copy that may be
        # moved in place (ExecuTorch's preprocess gets one); a user's program never is.
        self.program_is_private = False
        self.hooks = HookCaller(self, selected)
        self._state: dict[str, dict[str, Any]] = {}
        self._seams: list[Any] = []

    def options_for(self, plugin: str) -> dict[str, Any]:
        """The resolved options of ``plugin`` (defaults filled in)."""
        return dict(self.options[plugin])

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
        seam = inductor.activate()
        try:
            enter(self)
        except BaseException:
            inductor.deactivate(seam)
            raise
        self._seams.append(seam)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        seam = self._seams.pop()
        try:
            leave(self)
        finally:
            inductor.deactivate(seam)

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
