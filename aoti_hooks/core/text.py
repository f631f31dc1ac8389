"""Plain-text output for the terminal: aligned tables and byte sizes."""

from __future__ import annotations

import difflib
from typing import Any, Iterable

_UNITS = ((2**30, "GiB", 2), (2**20, "MiB", 1), (2**10, "KiB", 1))


def format_bytes(value: Any) -> str:
    """``3.0 MiB``, ``4.00 GiB``, ``512 B``; ``-`` for None."""
    if value is None:
        return "-"
    for size, unit, digits in _UNITS:
        if value >= size:
            return f"{value / size:.{digits}f} {unit}"
    return f"{value} B"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned columns under a header and a rule, two spaces apart."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def closest(word: Any, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely misspells (a close match, or the same letters swapped), or None."""
    choices = [str(choice) for choice in choices]
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.7)
    close = close or [choice for choice in choices if sorted(choice) == sorted(str(word))]  # swapped letters
    return close[0] if close else None


def did_you_mean(word: Any, choices: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'kv_elide'?)`` for a close match among ``choices`` (shown with ``prefix``), else ``""``."""
    close = closest(word, choices)
    return f" (did you mean {prefix + close!r}?)" if close else ""


def decoded(value: Any, what: str) -> Any:
    """``value`` with bytes decoded as UTF-8 (compile specs arrive as bytes); ValueError if they are not."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} {bytes(value)!r} is not UTF-8 text; give it as text, e.g. b'4MiB'") from None
    return value


def shown(value: Any) -> str:
    """``value`` for a message: bytes that are not text shown as bytes, never decoded again."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return repr(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            return repr(bytes(value))
    return repr(value)
