"""The compile-spec grammar, both ways.

- ``aoti_hooks.plugins`` = ``b"kv_elide,chunked_dequant"``: the plugins, in order;
- ``aoti_hooks.<plugin>.<option>`` = ``b"<value>"``: one option of one plugin;
- ``aoti_hooks.target`` = ``b"rtx5090"`` | ``b"local"`` | ``b"smem=101376,mem=32GiB"``.

Specs arrive as ExecuTorch ``CompileSpec(key, value)`` objects (or ``(key, value)`` pairs);
plain-AOTI users pass the same things as keyword arguments. Building ExecuTorch's own
``CompileSpec`` objects is the ExecuTorch host's (`aoti_hooks.hosts.executorch.compile_specs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import AotiHooksError
from .options import check_options_belong
from .registry import plugin_names
from .session import Session
from .text import decoded
from .types import Target

PREFIX = "aoti_hooks."
PLUGINS_KEY = PREFIX + "plugins"
TARGET_KEY = PREFIX + "target"


@dataclass
class SessionArgs:
    """What a spec list asks for: the arguments of a `Session`."""

    plugins: list[str]
    target: str | None = None
    options: dict[str, dict[str, str]] = field(default_factory=dict)


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, re.Pattern):
        return value.pattern.encode()
    if isinstance(value, Target):
        return value.name.encode()
    return str(value).encode()


def compile_spec_pairs(plugins: Iterable[str] | str, target: Any = None, **plugin_options: dict) -> list[tuple[str, bytes]]:
    """``(key, value)`` pairs for ``plugins``, ``target`` and per-plugin option dicts."""
    names = plugin_names(plugins)
    if not names:
        raise AotiHooksError("compile_specs needs at least one plugin name, e.g. compile_specs(['kv_elide'])")
    pairs = [(PLUGINS_KEY, ",".join(names).encode())]
    if target is not None:
        pairs.append((TARGET_KEY, _encode(target)))
    check_options_belong(names, plugin_options)
    for plugin, options in plugin_options.items():
        for option, value in options.items():
            pairs.append((f"{PREFIX}{plugin}.{option}", _encode(value)))
    return pairs


def _key_value(spec: Any) -> tuple[str, bytes]:
    if isinstance(spec, tuple) and len(spec) == 2:
        key, value = spec
    else:
        key, value = getattr(spec, "key", None), getattr(spec, "value", None)
    if not isinstance(key, str):
        raise AotiHooksError(f"not a compile spec: {spec!r}; expected CompileSpec(key, value) or (key, value)")
    return key, value if isinstance(value, (bytes, bytearray)) else _encode(value)


def parse_compile_specs(specs: Iterable[Any]) -> SessionArgs | None:
    """The session a spec list asks for, or None when it holds no ``aoti_hooks.*`` key."""
    plugins: list[str] | None = None
    target: str | None = None
    options: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    found = False
    if specs is None or isinstance(specs, (str, bytes)) or not hasattr(specs, "__iter__"):
        raise AotiHooksError(f"compile specs must be a list of CompileSpec(key, value) or (key, value) pairs, not {specs!r}")
    for spec in specs:
        key, value = _key_value(spec)
        if not key.startswith(PREFIX):
            continue
        found = True
        if key in seen:
            raise AotiHooksError(f"compile spec {key!r} is given twice; give it once")
        seen.add(key)
        try:
            text = decoded(bytes(value), f"compile spec {key!r}:")
        except ValueError as error:
            raise AotiHooksError(str(error)) from None
        if key == PLUGINS_KEY:
            plugins = plugin_names(text)
        elif key == TARGET_KEY:
            target = text
        else:
            plugin, sep, option = key[len(PREFIX):].partition(".")
            if not sep or not plugin or not option or "." in option:
                raise AotiHooksError(
                    f"unknown compile spec {key!r}; aoti_hooks keys are {PLUGINS_KEY!r}, {TARGET_KEY!r} "
                    f"and 'aoti_hooks.<plugin>.<option>'"
                )
            options.setdefault(plugin, {})[option] = text
    if not found:
        return None
    if plugins is None:
        raise AotiHooksError(
            f"compile specs set aoti_hooks options but no {PLUGINS_KEY!r}; add it, e.g. "
            f"aoti_hooks.compile_specs(['kv_elide'])"
        )
    return SessionArgs(plugins, target, options)


def session_from_compile_specs(specs: Iterable[Any]):
    """A `Session` for the spec list, or None when it holds no ``aoti_hooks.*`` key."""
    args = parse_compile_specs(list(specs))
    if args is None:
        return None
    return Session(args.plugins, target=args.target, options=args.options)
