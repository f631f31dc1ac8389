"""Plain-text output for the terminal: aligned tables and byte sizes."""

from __future__ import annotations

from typing import Any

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
