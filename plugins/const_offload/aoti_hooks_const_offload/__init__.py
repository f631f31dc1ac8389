"""aoti-hooks plugin ``const_offload``: large constants stay in host memory during an AOTI export.

Every constant sits on the device for the whole stock compile, so an export's device peak
is at least the weights. This plugin claims each large tensor the program does not write
(parameters, buffers, lifted constants) for the core's placement with the fill ``host``: it
sits on the target device with its storage freed, its true values stay on the host (the
user's own tensor when it already lives there), it is written out from the host, and it gets
one real storage, filled from the host, only for the length of one autotune run that reads
it. Buffers the program writes (KV caches) are left to kv_elide. The artifact is the stock one.

With ``spill=disk`` the host values are not kept in host memory: each is written once to a
memory-mapped file under ``spill_dir`` (unlinked at once) and read back from it where a run or
the serialization needs it. That helps where the export's own host copy can then go (ExecuTorch
hands each lowering a private deep copy of the program, which the core moves in place) and where
the weights start on the GPU; a user's host program still holds its own tensors.
"""

from __future__ import annotations

import os
from typing import Sequence

from aoti_hooks.plugin import HOST, AotiHooksError, Candidate, OnDisk, Option, hookimpl, parse_choice, parse_size, parse_str

NAME = "const_offload"

OPTIONS = (
    Option("min_bytes", parse_size, "1MiB", "smallest constant to keep on the host, in bytes or with a unit"),
    Option("spill", parse_choice("memory", "disk"), "memory",
           "where the host values live: memory, or disk (memory-mapped files under spill_dir, read back per run)",
           kind="memory or disk"),
    Option("spill_dir", parse_str, "", "the folder spill=disk writes its (already unlinked) files in", kind="folder"),
)


def fill_for(options: dict):
    """``host``, or `OnDisk` for ``spill=disk``; one sentence when the folder cannot take the files."""
    folder = options["spill_dir"]
    if options["spill"] == "memory":
        if folder:
            raise AotiHooksError(f"const_offload.spill_dir={folder!r} is only used with const_offload.spill=disk; "
                                 f"add const_offload.spill=disk or leave spill_dir out")
        return HOST
    if not folder:
        raise AotiHooksError("const_offload.spill=disk needs a folder for its files: const_offload.spill_dir=<folder>")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise AotiHooksError(f"const_offload.spill_dir={folder!r} is not a folder this process can write in; "
                             f"create it or name another")
    return OnDisk(os.path.abspath(folder))


def select_constants(candidates: Sequence[Candidate], min_bytes: int) -> list[Candidate]:
    """Every tensor of at least ``min_bytes`` the program never writes."""
    return [candidate for candidate in candidates if not candidate.written and candidate.nbytes >= min_bytes]


@hookimpl
def claim_tensors(candidates, session):
    options = session.options_for(NAME)
    fill = fill_for(options)
    chosen = select_constants(candidates, options["min_bytes"])
    session.report.set(NAME, "constants_found", len(chosen))
    if isinstance(fill, OnDisk):
        session.report.set(NAME, "spill_dir", fill.directory)
    return {candidate.fqn: fill for candidate in chosen}
