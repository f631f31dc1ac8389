"""The exceptions a user sees: each carries one sentence that says what to do."""

from __future__ import annotations

from typing import Iterator


class AotiHooksError(Exception):
    """A mistake in how aoti-hooks was asked to run (plugin names, options, target, versions)."""


class PluginError(AotiHooksError):
    """A plugin raised inside a hook; the plugin's own exception is chained as ``__cause__``."""

    def __init__(self, plugin: str, hook: str, error: BaseException):
        self.plugin = plugin
        self.hook = hook
        super().__init__(
            f"plugin {plugin!r} failed in hook {hook!r}: {type(error).__name__}: {error} "
            f"(run without {plugin!r}, or set AOTI_HOOKS_DISABLE={plugin}, and report it to the plugin's authors)"
        )


class SeamError(AotiHooksError):
    """A private torch or ExecuTorch symbol a seam patches is missing or has changed."""


class AotiHooksWarning(UserWarning):
    """Something aoti-hooks did differently from what was asked, said once (the CLI prints it as one line)."""


def error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and what it wraps, outermost first: Inductor's ``inner_exception``, else the cause, else the context."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "inner_exception", None) or error.__cause__ or error.__context__
