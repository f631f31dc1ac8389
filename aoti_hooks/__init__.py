"""aoti-hooks: opt-in plugins that make large-model AOTInductor exports fit the GPU you have.

This module is the user API (sessions, the plain-AOTI entry point, ExecuTorch compile specs,
errors) and the place the layers are put together: the built-in ``placement`` plugin joins
every session, and the Inductor seam is held while any session is active. Plugin authors
import `aoti_hooks.plugin`.
"""

from . import placement as _placement
from .core.errors import AotiHooksError, PluginError, SeamError
from .core.hookspecs import hookimpl, hookspec
from .core.options import Option, parse_bool, parse_choice, parse_float, parse_int, parse_regex, parse_size, parse_str
from .core.registry import BUILT_IN, plugin_registry, register_plugin, unregister_plugin
from .core.session import Report, Session, current_session, session, while_active
from .core.specs import compile_spec_pairs, parse_compile_specs
from .core.target import Target, parse_target
from .hosts.aoti import aoti_compile_and_package
from .hosts.executorch import compile_specs, cover_loaded_backends as _cover_loaded_executorch
from .seams import inductor as _inductor, shared_memory as _shared_memory

plugin_registry.register_built_in(BUILT_IN, _placement)
while_active(_inductor.hold)
while_active(_shared_memory.hold)
while_active(_cover_loaded_executorch)

__version__ = "0.1.0"

__all__ = [
    "AotiHooksError", "Option", "PluginError", "Report", "SeamError", "Session", "Target",
    "aoti_compile_and_package", "compile_spec_pairs", "compile_specs", "current_session", "hookimpl",
    "hookspec", "parse_bool", "parse_choice", "parse_compile_specs", "parse_float", "parse_int",
    "parse_regex", "parse_size", "parse_str", "parse_target", "register_plugin", "session",
    "unregister_plugin",
]
