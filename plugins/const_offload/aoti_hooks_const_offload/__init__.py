"""aoti-hooks plugin ``const_offload``: large constants stay in host memory during an AOTI export.

Every constant sits on the device for the whole stock compile, so an export's device peak
is at least the weights. This plugin claims each large tensor the program does not write
(parameters, buffers, lifted constants) for the core's placement with the fill ``host``: it
sits on the target device with its storage freed, its true values stay on the host (the
user's own tensor when it already lives there), it is written out from the host, and it gets
one real storage, filled from the host, only for the length of one autotune run that reads
it. Buffers the program writes (KV caches) are left to kv_elide. The artifact is the stock one.
"""

from __future__ import annotations

from typing import Sequence

from aoti_hooks import Option, hookimpl, parse_size
from aoti_hooks.placement import HOST, Candidate

NAME = "const_offload"

OPTIONS = (Option("min_bytes", parse_size, "16MiB", "smallest constant to keep on the host, in bytes or with a unit"),)


def select_constants(candidates: Sequence[Candidate], min_bytes: int) -> list[Candidate]:
    """Every tensor of at least ``min_bytes`` the program never writes."""
    return [candidate for candidate in candidates if not candidate.written and candidate.nbytes >= min_bytes]


@hookimpl
def claim_tensors(candidates, options, session):
    chosen = select_constants(candidates, options["min_bytes"])
    session.report.set(NAME, "constants_found", len(chosen))
    return {candidate.fqn: HOST for candidate in chosen}
