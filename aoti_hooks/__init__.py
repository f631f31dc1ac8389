"""aoti-hooks: opt-in plugins that make large-model AOTInductor exports fit the GPU you have."""

from .aoti_compile import aoti_compile_and_package
from .errors import AotiHooksError, PluginError, SeamError
from .hookspecs import hookimpl, hookspec
from .registry import register_plugin, unregister_plugin
from .options import Option, parse_bool, parse_choice, parse_float, parse_int, parse_regex, parse_size, parse_str
from ._session import Report, Session, current_session, session
from .spec_grammar import compile_spec_pairs, compile_specs, parse_compile_specs
from .target import Target, parse_target

__version__ = "0.1.0"

__all__ = [
    "AotiHooksError", "Option", "PluginError", "Report", "SeamError", "Session", "Target",
    "aoti_compile_and_package", "compile_spec_pairs", "compile_specs", "current_session", "hookimpl",
    "hookspec", "parse_bool", "parse_choice", "parse_compile_specs", "parse_float", "parse_int",
    "parse_regex", "parse_size", "parse_str", "parse_target", "register_plugin", "session",
    "unregister_plugin",
]
