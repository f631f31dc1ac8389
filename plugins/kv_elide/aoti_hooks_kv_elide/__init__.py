"""aoti-hooks plugin ``kv_elide``: KV caches take no device memory during an AOTI export.

The caches a program writes are all zeros at export. This plugin claims them for the core's
placement with the fill ``zeros``: they sit on the target device with their storage freed
(shape, strides, dtype, device kept), are kept apart at constant dedup, are written out as
zeros built on the host, and get real zeroed storage only for the length of one autotune run.
The exported artifact is the stock one. Persistent and non-persistent caches alike (Hugging
Face's static cache and ExecuTorch's Gemma 4 keep theirs in ``program.constants``).
"""

from __future__ import annotations

from aoti_hooks.plugin import ZEROS, Option, format_bytes, hookimpl, host_snapshot, parse_bool, parse_regex, parse_size

from .selection import caches_and_left_out

NAME = "kv_elide"

OPTIONS = (
    Option("min_bytes", parse_size, "1MiB", "smallest buffer to elide, in bytes or with a unit (1MiB)"),
    Option("pattern", parse_regex, "", "regular expression the buffer's FQN must contain (empty: any cache)"),
    Option("host_snapshots", parse_bool, "true",
           "take Inductor's initial-value copy of every other device buffer on the host, not on the device"),
)

# ExecuTorch CudaBackend's low_memory_mode=ON elides the KV caches its own way; with kv_elide
# in a method's plugin list that spec is left out, so the caches are elided once.
REPLACES_BACKEND_SPECS = ("low_memory_mode",)


@hookimpl
def claim_tensors(candidates, session):
    options = session.options_for(NAME)
    pattern = options["pattern"] if options["pattern"].pattern else None
    caches, left_out = caches_and_left_out(candidates, options["min_bytes"], pattern)
    session.report.set(NAME, "caches_found", len(caches))
    for reason, skipped in left_out.items():
        why = (f"below min_bytes={format_bytes(options['min_bytes'])}" if reason == "min_bytes"
               else f"not matching pattern={options['pattern'].pattern!r}")
        total = format_bytes(sum(candidate.nbytes for candidate in skipped))
        session.report.set(NAME, f"left_out_by_{reason}", f"{why}: {len(skipped)} buffer{'s' * (len(skipped) != 1)}, {total}")
    return {cache.fqn: ZEROS for cache in caches}


@hookimpl
def clone_lifted_buffer(tensor, session):
    """Every device buffer that is not placed: Inductor's initial-value copy taken on the host.

    Inductor clones every buffer when it unlifts the graph only to write out its initial
    value later (``get_original_value_of_constant``); kernels never read the clone, so a
    host copy serves as well and keeps the device free (ExecuTorch's low_memory_mode does
    the same, which kv_elide replaces). Placed caches never reach here: the core answers first.
    """
    options = session.options_for(NAME)
    if options["host_snapshots"] and tensor.device.type not in ("cpu", "meta") and tensor.numel():
        session.report.add(NAME, "host_snapshots")
        return host_snapshot(tensor)
    return None
