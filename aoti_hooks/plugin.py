"""The plugin API: everything a plugin may import from aoti-hooks, in one module.

A plugin distribution imports ``aoti_hooks.plugin`` (and torch, Triton, ExecuTorch's public
API) and nothing else of ours; tests/house/test_import_graph.py holds every plugin to that. What is
here:

- the contract: `hookimpl`, and the values hooks speak in (`Candidate` and its kinds, the fills
  ``ZEROS``, ``HOST`` and `OnDisk`, `Target`);
- options: `Option` and its parsers;
- errors: `AotiHooksError` (one sentence that says what to do), `SeamError`;
- toolkits: `NamedTable` (a plugin's table of known things, extendable by name), the host copy of
  a tensor (`host_snapshot`), stand-ins (`is_stand_in`), text (`decoded`, `format_bytes`, `table`),
  `stderr_to`;
- the seams' public accessors, for what lives behind private torch, Triton or ExecuTorch symbols:
  ops and kernel overrides, process-wide patch sets, Triton autotuners and configs, a program's
  called ops, ExecuTorch attributes by name.
"""

from __future__ import annotations

from .core.errors import AotiHooksError, SeamError
from .core.hookspecs import hookimpl
from .core.named_table import NamedTable
from .core.options import Option, parse_bool, parse_choice, parse_count, parse_float, parse_int, parse_regex, parse_size, parse_str
from .core.output import stderr_to
from .core.target import parse_target
from .core.text import decoded, format_bytes, table
from .core.types import BUFFER, CONSTANT, HOST, NON_PERSISTENT_BUFFER, PARAMETER, ZEROS, Candidate, OnDisk, SessionView, Target
from .placement.blocks import is_stand_in
from .placement.storage import host_snapshot
from .seams.executorch import imported_attribute, module_attribute
from .seams.export import called_op_names
from .seams.ops import KernelOverride, argument_names, as_overload, qualified_name, resolve_op
from .seams.patching import shared as shared_patches
from .seams.triton import config_key, configs_of, forced_config, is_autotuner, kernel_name, make_config, source_hash

__all__ = [
    "AotiHooksError", "BUFFER", "CONSTANT", "Candidate", "HOST", "KernelOverride", "NON_PERSISTENT_BUFFER",
    "NamedTable", "OnDisk", "Option", "PARAMETER", "SeamError", "SessionView", "Target", "ZEROS", "argument_names",
    "as_overload", "called_op_names", "config_key", "configs_of", "decoded", "forced_config", "format_bytes",
    "hookimpl", "host_snapshot", "imported_attribute", "is_autotuner", "is_stand_in", "kernel_name", "make_config",
    "module_attribute", "parse_bool", "parse_choice", "parse_count", "parse_float", "parse_int", "parse_regex",
    "parse_size", "parse_str", "parse_target", "qualified_name", "resolve_op", "shared_patches", "source_hash",
    "stderr_to", "table",
]
