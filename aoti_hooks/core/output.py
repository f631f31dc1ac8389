"""Keeping other libraries' output out of ours: what they write to stderr goes to a file; their noisy loggers quiet.

Compilers and extension loaders write straight to file descriptor 2 (torchao's "Failed to
load ..." lines, Triton's MLIR dump and ``LLVM ERROR`` for a config that fails to compile), so
``contextlib.redirect_stderr`` cannot catch them; this swaps the descriptor itself.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def stderr_to(path: str = os.devnull, *, hide_warnings: bool = True) -> Iterator[None]:
    """While inside, everything written to stderr (Python's and the C level's) is appended to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as sink, warnings.catch_warnings():
        if hide_warnings:
            warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# Loggers of other libraries that warn on import about what an export never uses: torchao's "Failed to
# load ..." for kernels built for other GPUs, torch's pytree note on torchao's KernelPreference enum.
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_third_party_logs() -> None:
    """Only errors from `NOISY_LOGGERS` (for our own commands and the test suite, not for library users)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
