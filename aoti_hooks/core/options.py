"""Plugin options: each plugin declares what it accepts, so mistakes are caught before compiling.

A plugin module lists its options in a module attribute ``OPTIONS``::

    OPTIONS = (Option("min_bytes", parse_size, "1MiB", "smallest buffer to elide"),)

Values arrive as bytes or text from ExecuTorch compile specs and as Python values from
keyword arguments; every parser accepts both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

from .errors import AotiHooksError
from .text import decoded, did_you_mean, shown

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


_COUNT_UNITS = {"": 1, "K": 2**10, "M": 2**20}
_COUNT = re.compile(r"^\s*(\d+)\s*([kKmM]?)\s*$")


def _text(value: Any) -> Any:
    return decoded(value, "the value")


def parse_size(value: Any) -> int:
    """A byte count, exact: ``1048576``, ``"512MiB"``, ``"32GiB"``, ``"1.5GB"``; never a fraction of a byte."""
    value = _text(value)
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1048576 or '512MiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.match(str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError("expected a size such as 1048576 or '512MiB'")
    size = Fraction(match.group(1)) * _UNITS[match.group(2).upper()]
    if size.denominator != 1:
        raise ValueError(f"{match.group(0).strip()} is not a whole number of bytes; give whole bytes, e.g. 1536KiB")
    return int(size)


def parse_count(value: Any) -> int:
    """A positive count such as a context length: ``131072``, ``"128k"`` (x 1024), ``"1M"`` (x 1024²)."""
    value = _text(value)
    if isinstance(value, bool):
        raise ValueError("expected a count such as 131072 or 128k")
    if isinstance(value, int):
        count = value
    else:
        match = _COUNT.match(str(value))
        if not match:
            raise ValueError(f"expected a count such as 131072 or 128k, not {value!r}")
        count = int(match.group(1)) * _COUNT_UNITS[match.group(2).upper()]
    if count < 1:
        raise ValueError("a count must be at least 1")
    return count


def parse_bool(value: Any) -> bool:
    """``true/false``, ``on/off``, ``1/0``, ``yes/no`` or a Python bool."""
    value = _text(value)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise ValueError("expected true or false")


def parse_int(value: Any) -> int:
    value = _text(value)
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    return int(value)


def parse_float(value: Any) -> float:
    return float(_text(value))


def parse_str(value: Any) -> str:
    return str(_text(value))


def parse_regex(value: Any) -> re.Pattern:
    try:
        return re.compile(str(_text(value)))
    except re.error as error:
        raise ValueError(f"not a valid regular expression ({error})") from None


def parse_choice(*choices: str) -> Callable[[Any], str]:
    """A parser that accepts one of ``choices``."""

    def choice(value: Any) -> str:
        text = str(_text(value))
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return choice


@dataclass(frozen=True)
class Option:
    """One option of one plugin: its name, how to parse it, its default, one line of help, and
    the kind of value it takes as `aoti-hooks list` shows it (default: the parser's name without
    ``parse_``, so ``parse_size`` shows as ``size``)."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    kind: str = ""
    accepts_list: bool = False  # the parser takes a list or tuple too (not only text)

    @property
    def type_name(self) -> str:
        return self.kind or getattr(self.parse, "__name__", "value").removeprefix("parse_")

    def value(self, plugin: str, raw: Any) -> Any:
        """Parse ``raw``; a bad value raises one sentence naming plugin, option and the fix."""
        try:
            if raw is None or isinstance(raw, (dict, set, frozenset)) or (
                    isinstance(raw, (list, tuple)) and not self.accepts_list):
                raise ValueError(f"expected one value such as {self.default!r}, not "
                                 + ("None" if raw is None else f"a {type(raw).__name__}"))
            return self.parse(raw)
        except (ValueError, TypeError) as error:
            raise AotiHooksError(
                f"bad value {shown(raw)} for option {self.name!r} of plugin {plugin!r}: {error} "
                f"({self.help})"
            ) from None


def resolve_options(plugin: str, declared: tuple[Option, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``; unknown names and bad values raise `AotiHooksError`."""
    by_name = {option.name: option for option in declared}
    unknown = sorted((name for name in given if name not in by_name), key=str)
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise AotiHooksError(
            f"plugin {plugin!r} has no option {unknown[0]!r}{did_you_mean(unknown[0], by_name)}; "
            f"its options are: {known} (see `aoti-hooks list {plugin}`)"
        )
    resolved = {name: option.value(plugin, option.default) for name, option in by_name.items()}
    for name, raw in given.items():
        resolved[name] = by_name[name].value(plugin, raw)
    return resolved


def check_options_belong(names: list[str], plugin_options: dict[str, Any]) -> None:
    """Each options entry must name a listed plugin and be a dict; else one sentence."""
    for plugin, given in plugin_options.items():
        if plugin not in names:
            raise AotiHooksError(
                f"options were given for plugin {plugin!r}{did_you_mean(plugin, names)}, which is not in the "
                f"plugin list {names}; add it to the list or drop its options"
            )
        if not isinstance(given, dict):
            raise AotiHooksError(
                f"options of plugin {plugin!r} must be a dict such as {{'min_bytes': '1MiB'}}, not {given!r}"
            )
