"""docs/hooks.md, made from the contract's own docstrings (`aoti_hooks.core.hookspecs`), as pytest's
reference is made from its hookspecs: the contract is written once, and a test keeps the page equal
to what this renders. ``python -m aoti_hooks.tools.hooks_doc [PATH]`` (``make docs``) writes it."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from ..core import hookspecs

PAGE = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
SECTIONS = ("Called", "Arguments", "Returns", "Combined")


def markdown(text: str) -> str:
    """reST's double-backtick literals as Markdown's single ones."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def signature(hook: str) -> str:
    """``name(arg: type, ...) -> type``: the heading of the hook's entry."""
    function = getattr(hookspecs, hook)
    found = inspect.signature(function)
    strip = lambda annotation: str(annotation).strip("\"'")  # noqa: E731
    arguments = ", ".join(f"{p.name}: {strip(p.annotation)}" for p in found.parameters.values())
    return f"{hook}({arguments}) -> {strip(found.return_annotation)}"


def hooks() -> list[str]:
    """Every hook of the contract, in the module's (lifecycle) order."""
    return [name for name, value in vars(hookspecs).items() if hasattr(value, f"{hookspecs.PROJECT}_spec")]


def entry(hook: str) -> str:
    """One hook: its signature as the heading, its summary, then each section of its docstring."""
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    summary, _, body = doc.partition("\n\n")
    blocks: list[str] = []
    for line in body.splitlines():
        head = line.split(":", 1)[0]
        if head in SECTIONS:
            blocks.append(f"**{head}**:{line[len(head) + 1:]}")
        elif blocks:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
    return "\n\n".join([f"## `{signature(hook)}`", markdown(summary), *map(markdown, blocks)])


def render() -> str:
    title, _, intro = (inspect.getdoc(hookspecs) or "").partition("\n\n")
    intro = intro.replace("docs/hooks.md is made from this module", "This page is made from `aoti_hooks/core/hookspecs.py`")
    return "\n\n".join(["# Hooks", markdown(intro), *map(entry, hooks())]) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else PAGE
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
