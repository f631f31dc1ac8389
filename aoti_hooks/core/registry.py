"""Which plugins exist and which ones a session may run.

Plugins are found through the ``aoti_hooks`` entry-point group (each installed plugin
distribution declares one) or registered in-process with `register_plugin`. Nothing runs
because it is installed: a session runs exactly the plugins it names, in that order, and the
built-in ones (`register_built_in`; the package registers its ``placement``, as pluggy's
eggsample host registers its defaults). ``AOTI_HOOKS_DISABLE=name,...`` blocks plugins even
when a session names them.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from . import hookspecs
from .errors import AotiHooksError, AotiHooksWarning
from .hooks import cli_answers
from .options import Option
from .text import decoded, did_you_mean

ENTRY_POINT_GROUP = "aoti_hooks"
DISABLE_ENV = "AOTI_HOOKS_DISABLE"
BUILT_IN = "placement"  # the name of the core's own plugin (aoti_hooks.placement), registered in every session


@dataclass(frozen=True)
class InstalledPlugin:
    """A plugin that can be named: where it comes from, and how to import it."""

    name: str
    distribution: str | None
    version: str | None
    loader: Callable[[], Any]


def disabled_plugins() -> set[str]:
    """Names listed in ``AOTI_HOOKS_DISABLE`` (comma separated)."""
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def plugin_names(plugins: Any) -> list[str]:
    """A plugin list as names: ``"a,b"``, ``b"a,b"`` or an iterable of names, each name stripped."""
    try:
        plugins = decoded(plugins, "the plugin list")
    except ValueError as error:
        raise AotiHooksError(str(error)) from None
    if isinstance(plugins, str):
        plugins = plugins.split(",")
    if plugins is None or not isinstance(plugins, (list, tuple)) or not all(isinstance(n, str) for n in plugins):
        raise AotiHooksError(f"plugins must be a list of names or a comma-separated string such as "
                             f"'kv_elide,const_offload', not {plugins!r}")
    return [name.strip() for name in plugins]


def pip_too_old() -> str | None:
    """A sentence when this environment's pip drops extras such as ``[kv_elide]`` (pip < 23.3 does)."""
    try:
        version = metadata.version("pip")
    except metadata.PackageNotFoundError:
        return None
    release = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if release >= (23, 3):
        return None
    return (f"pip {version} here installs 'aoti-hooks[<plugin>]' without the plugin (only a warning; "
            f"pip >= 23.3 is needed for extras with underscores): run pip install -U pip first")


def how_to_install(name: str) -> str:
    """What installs plugin ``name`` from where aoti-hooks came from: the checkout's plugin folder when
    this is a checkout that has it, else the wheels (nothing is published on an index yet)."""
    distribution = "aoti-hooks-" + name.replace("_", "-")
    folder = Path(__file__).resolve().parents[2] / "plugins" / name
    if (folder / "pyproject.toml").is_file():
        return f"install it from this checkout with: pip install {folder}"
    return (f"install its wheel with: pip install --find-links <folder with the aoti-hooks wheels> {distribution} "
            f"(make wheels in a checkout builds them; once aoti-hooks is on PyPI: pip install \"aoti-hooks[{name}]\")")


def plugin_options(plugin: Any) -> tuple[Option, ...]:
    """The options a plugin module declares in ``OPTIONS``."""
    options = tuple(getattr(plugin, "OPTIONS", ()))
    if not all(isinstance(option, Option) for option in options):
        raise AotiHooksError(f"plugin {plugin!r} declares OPTIONS that are not aoti_hooks.Option values")
    return options


def replaced_backend_specs(plugin: Any) -> tuple[str, ...]:
    """ExecuTorch compile-spec keys whose work the plugin does instead (``REPLACES_BACKEND_SPECS``)."""
    keys = tuple(getattr(plugin, "REPLACES_BACKEND_SPECS", ()))
    if not all(isinstance(key, str) for key in keys):
        raise AotiHooksError(f"plugin {plugin!r} declares REPLACES_BACKEND_SPECS that are not compile-spec keys")
    return keys


def hook_names(plugin: Any) -> list[str]:
    """Names of the hooks ``plugin`` implements."""
    return sorted(
        name for name in dir(plugin)
        if callable(getattr(plugin, name, None))
        and hasattr(getattr(plugin, name), f"{hookspecs.PROJECT}_impl")
    )


class PluginRegistry:
    """Finds plugins and resolves the names a session asks for."""

    def __init__(self) -> None:
        self._local: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}
        self._built_in: dict[str, Any] = {}
        self._lock = threading.Lock()

    def register_built_in(self, name: str, plugin: Any) -> None:
        """Run ``plugin`` in every session under ``name`` (never named in a plugin list)."""
        with self._lock:
            self._built_in[name] = plugin

    def built_in(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._built_in.items())

    def register(self, name: str, plugin: Any) -> None:
        """Make an in-process ``plugin`` (a module or object with hookimpls) nameable as ``name``."""
        if name == BUILT_IN:
            raise AotiHooksError(f"{BUILT_IN!r} is the name of aoti-hooks' built-in placement; "
                                 f"register your plugin under another name")
        with self._lock:
            self._local[name] = plugin
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._local.pop(name, None)
            self._loaded.pop(name, None)

    def installed(self) -> dict[str, InstalledPlugin]:
        """Every nameable plugin: entry points first, in-process registrations over them."""
        found: dict[str, InstalledPlugin] = {}
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(entry_point, "dist", None)
            found[entry_point.name] = InstalledPlugin(
                entry_point.name,
                dist.metadata["Name"] if dist else None,
                dist.version if dist else None,
                entry_point.load,
            )
        for name, plugin in self._local.items():
            found[name] = InstalledPlugin(name, None, None, lambda plugin=plugin: plugin)
        return found

    def load(self, name: str) -> Any:
        """Import plugin ``name``; an unknown name or a failing import is one clear sentence."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
        installed = self.installed()
        if name not in installed:
            names = ", ".join(sorted(installed)) or "none"
            close = did_you_mean(name, installed)
            if close:
                raise AotiHooksError(f"unknown plugin {name!r}{close}; installed: {names}")
            old_pip = pip_too_old()
            raise AotiHooksError(f"unknown plugin {name!r} (installed: {names}); " + (old_pip or how_to_install(name)))
        try:
            plugin = installed[name].loader()
        except Exception as error:
            raise AotiHooksError(
                f"plugin {name!r} is installed but failed to import ({type(error).__name__}: {error}); "
                f"reinstall it or set {DISABLE_ENV}={name}"
            ) from error
        plugin_options(plugin)
        with self._lock:
            self._loaded[name] = plugin
        return plugin

    def note_disabled(self, names: list[str]) -> set[str]:
        """The names ``AOTI_HOOKS_DISABLE`` blocks; warns for each of ``names`` it blocks and for
        each name in it that no installed plugin has."""
        blocked = disabled_plugins()
        installed = self.installed()
        unknown = sorted(blocked - set(installed))
        if unknown:
            warnings.warn(f"{DISABLE_ENV} names {', '.join(map(repr, unknown))}, which is not an installed plugin "
                          f"(installed: {', '.join(sorted(installed)) or 'none'})", AotiHooksWarning, stacklevel=4)
        for name in names:
            if name in blocked:
                warnings.warn(f"plugin {name!r} is disabled by {DISABLE_ENV} and will not run", AotiHooksWarning,
                              stacklevel=4)
        return blocked

    def select(self, names: Any) -> list[tuple[str, Any]]:
        """Resolve a session's plugin list into ``(name, plugin)`` pairs, in the order named.

        A plugin blocked by ``AOTI_HOOKS_DISABLE`` is left out with a warning.
        """
        names = plugin_names(names)
        if any(not name for name in names):
            raise AotiHooksError("empty plugin name in the plugin list; list names like 'kv_elide,chunked_dequant'")
        seen: set[str] = set()
        for name in names:
            if name == BUILT_IN:
                raise AotiHooksError(f"{BUILT_IN!r} is built in and runs in every session; "
                                     f"leave it out of the plugin list")
            if name in seen:
                raise AotiHooksError(f"plugin {name!r} is named twice; name each plugin once")
            seen.add(name)
        blocked = self.note_disabled(names)
        selected = []
        for name in names:
            if name in blocked:
                continue
            selected.append((name, self.load(name)))
        return selected


plugin_registry = PluginRegistry()


def installed_answers(hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """``[(plugin, answer)]`` of a command-line hook (`hookspecs.CLI_HOOKS`) over every installed plugin.

    Runs outside sessions; disabled plugins are skipped; a plugin that fails to import, does not
    fit the contract or raises in the hook is named in one warning and skipped, so one broken
    plugin never breaks ``aoti-hooks`` itself.
    """
    if hook not in hookspecs.CLI_HOOKS:
        raise AotiHooksError(f"{hook!r} is not a command-line hook; those are {', '.join(hookspecs.CLI_HOOKS)}")
    blocked = disabled_plugins()
    plugins = []
    for name in sorted(plugin_registry.installed()):
        if name in blocked:
            continue
        try:
            plugins.append((name, plugin_registry.load(name)))
        except AotiHooksError as error:
            warnings.warn(str(error), AotiHooksWarning, stacklevel=2)
    return cli_answers(plugins, hook, **kwargs)


def register_plugin(name: str, plugin: Any) -> None:
    """Make an in-process plugin nameable in sessions (as an installed one would be)."""
    plugin_registry.register(name, plugin)


def unregister_plugin(name: str) -> None:
    plugin_registry.unregister(name)
