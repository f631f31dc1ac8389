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

from aoti_hooks.plugin import BUFFER, NON_PERSISTENT_BUFFER, Candidate


def left_out_by(candidate: Candidate, min_bytes: int, pattern: re.Pattern | None) -> str | None:
    """Why a buffer the program writes, all zeros at export, is not elided: the option that left it out
    (``min_bytes`` or ``pattern``); ``None`` when it is elided. Only caches are asked (`caches_and_left_out`)."""
    if candidate.nbytes < min_bytes:
        return "min_bytes"
    if pattern is not None and not pattern.search(candidate.fqn):
        return "pattern"
    return None


def caches_and_left_out(candidates: Sequence[Candidate], min_bytes: int,
                        pattern: re.Pattern | None) -> tuple[list[Candidate], dict[str, list[Candidate]]]:
    """The caches to elide, and the all-zero written buffers an option left out, by that option: a user
    whose caches are small sees why none were found."""
    caches: list[Candidate] = []
    left_out: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.kind not in (BUFFER, NON_PERSISTENT_BUFFER) or not candidate.written or not candidate.all_zeros:
            continue
        reason = left_out_by(candidate, min_bytes, pattern)
        if reason is None:
            caches.append(candidate)
        else:
            left_out.setdefault(reason, []).append(candidate)
    return caches, left_out


def select_caches(candidates: Sequence[Candidate], min_bytes: int, pattern: re.Pattern | None) -> list[Candidate]:
    """The candidates that are safe and worth eliding."""
    return caches_and_left_out(candidates, min_bytes, pattern)[0]
