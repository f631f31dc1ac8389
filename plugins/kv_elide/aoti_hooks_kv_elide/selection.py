"""Which of a program's tensors are KV caches that can be elided.

Correctness needs one fact: the cache is all zeros at export, so zeros re-created later
reproduce it exactly (the core checks it again before it frees anything). On top of that a
cache is a buffer, persistent or not, that the program writes, at least ``min_bytes``
large, and, when ``pattern`` is set, whose FQN matches it. Names are not trusted by default:
Hugging Face's static cache exports ``key_cache_0``, ExecuTorch's models ``kv_cache.k_cache``;
both are found by what the graph does to them. Non-persistent caches (both of those) live in
``program.constants``; they are candidates like any other buffer.
"""

from __future__ import annotations

import re
from typing import Sequence

from aoti_hooks.plugin import BUFFER, Candidate, NON_PERSISTENT_BUFFER


def select_caches(candidates: Sequence[Candidate], min_bytes: int, pattern: re.Pattern | None) -> list[Candidate]:
    """The candidates that are safe and worth eliding."""
    return [
        candidate for candidate in candidates
        if candidate.kind in (BUFFER, NON_PERSISTENT_BUFFER)
        and candidate.written
        and candidate.nbytes >= min_bytes
        and (pattern is None or pattern.search(candidate.fqn))
        and candidate.all_zeros
    ]


def left_out(candidates: Sequence[Candidate], min_bytes: int, pattern: re.Pattern | None) -> dict[str, list[Candidate]]:
    """Buffers that look like caches (written, all zeros) but were not elided, by the option that left
    them out: ``min_bytes`` or ``pattern``. A user whose caches are small sees why none were found."""
    found: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.kind not in (BUFFER, NON_PERSISTENT_BUFFER) or not candidate.written:
            continue
        if candidate.nbytes < min_bytes:
            reason = "min_bytes"
        elif pattern is not None and not pattern.search(candidate.fqn):
            reason = "pattern"
        else:
            continue
        if candidate.all_zeros:
            found.setdefault(reason, []).append(candidate)
    return found
