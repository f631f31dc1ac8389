"""A session's constants go to the artifact through files, not through weights-sized host buffers.

Stock AOTI (torch 2.12+) gathers every constant into one ``bytearray`` as large as the weights
(``AotCodeCompiler.compile``), slices a copy of it for the constants object (``consts[pos:]``),
and the package then reads each finished file back whole before writing it into the archive
(``PT2ArchiveWriter.write_file``): up to three weights-sized buffers of anonymous memory on the
host, on top of the user's own copy of the weights. In a session:

- the gathering buffer is a shared mapping of an unlinked temporary file (`FileBuffer`): its pages
  are file pages the kernel writes back and drops under pressure, and its slices are views;
- a file the package copies in is mapped (a private, read-only use of its pages) and handed to the
  archive writer as a storage.

The bytes written are the same. An archive whose writing fails is finalized all the same, so its
writer never throws from its destructor at exit. A buffer the disk cannot hold (``posix_fallocate`` fails) stays in
memory, and the session's report says so (`host` entries).
"""

from __future__ import annotations

import builtins
import functools
import inspect
import mmap
import os
import tempfile
from typing import Any, Callable

from ...core.active import current_session
from ...core.text import format_bytes

MIN_BYTES = 1 << 20  # smaller buffers and files are not worth a file
REPORT = "host"  # the report's name for what the session did with host memory


class FileBuffer(mmap.mmap):
    """A writable buffer backed by an unlinked temporary file; slicing gives views, not copies."""

    def __getitem__(self, key):
        if isinstance(key, slice):
            return memoryview(self)[key]
        return super().__getitem__(key)


def file_buffer(size: int, folder: str | None = None) -> FileBuffer:
    """``size`` zero bytes in a file under ``folder`` (the temporary directory); OSError when the disk
    cannot hold them (space is reserved up front, so a full disk never faults a write later)."""
    with tempfile.TemporaryFile(dir=folder) as handle:  # the mapping keeps the file alive
        os.posix_fallocate(handle.fileno(), 0, size)
        return FileBuffer(handle.fileno(), size)


def _gathering_buffer(*args, **kwargs):
    """``bytearray`` as ``AotCodeCompiler.compile`` sees it: a file-backed buffer for a session's constants."""
    session = current_session()
    if session is None or kwargs or len(args) != 1 or type(args[0]) is not int or args[0] < MIN_BYTES:
        return builtins.bytearray(*args, **kwargs)
    try:
        buffer = file_buffer(args[0])
    except OSError as error:
        session.report.append(REPORT, "constants_gathered_in_memory",
                              f"{format_bytes(args[0])}: no room for a file buffer ({error.strerror or error})")
        return builtins.bytearray(*args)
    session.report.add(REPORT, "constants_gathered_in_file_bytes", args[0])
    return buffer


def _patched_write_file(original: Callable) -> Callable:
    def write_file(self, name, file_path):
        session = current_session()
        size = os.path.getsize(file_path) if os.path.isfile(file_path) else 0
        if session is None or size < MIN_BYTES:
            return original(self, name, file_path)
        import torch

        mapped = torch.UntypedStorage.from_file(file_path, False, size)  # a private mapping: pages read, not copied
        try:
            self.archive_file.write_record(name, mapped, size)
        finally:
            del mapped
        session.report.add(REPORT, "package_files_mapped_bytes", size)

    return write_file


def _patched_exit(original: Callable) -> Callable:
    """An archive whose writing failed (a full disk) is still finalized, its error swallowed: torch's
    ``__exit__`` first writes two more records, and when those fail too it never finalizes, so the
    writer's destructor finalizes at exit, throws, and terminates the process (``unexpected pos``)."""

    def __exit__(self, *args):
        try:
            return original(self, *args)
        except BaseException:
            try:
                self.archive_file.write_end_of_file()
            except Exception:
                pass  # finalized all the same (torch marks it before writing): the destructor has nothing to do
            raise

    return __exit__


@functools.lru_cache(maxsize=None)
def gathers_constants_in_a_bytearray() -> bool:
    """Whether this torch's AOTI gathers the constants into one ``bytearray(total_size)`` (torch 2.12+);
    read from its source once per process (the patches are built at every first session)."""
    from torch._inductor.codecache import AotCodeCompiler

    try:
        return "bytearray(total_size)" in inspect.getsource(AotCodeCompiler.compile)
    except (OSError, TypeError):  # no source shipped
        return False


def module_patches() -> list[tuple[Any, str, Callable[[Any], Any]]]:
    """(owner, attribute, make) of the module-level names this seam shadows: ``bytearray`` in
    ``torch._inductor.codecache``, where this torch gathers the constants with it."""
    from torch._inductor import codecache

    if not gathers_constants_in_a_bytearray():
        return []
    return [(codecache, "bytearray", lambda _builtin: _gathering_buffer)]


MAKERS = {"torch.export.pt2_archive._package.PT2ArchiveWriter.write_file": _patched_write_file,
          "torch.export.pt2_archive._package.PT2ArchiveWriter.__exit__": _patched_exit}
