"""What a compile writes to disk: room checked before it starts, and a package that appears whole or not at all.

A compile writes the program's parameters at least twice: into Inductor's cache (the constants
object and the library built from it, or the weights file) and into the package (or, for
ExecuTorch, the delegate's files in the temporary folder; a later method sharing an earlier one's
weights writes them once, `executorch_writes`). That floor is known before the compile
starts; where a disk has less room than its share, or one file would pass the process's
file-size limit (``ulimit -f``), the compile does not start and one sentence says what would go
where. Caches and KV buffers are left out of the floor: a plugin may keep them out of the artifact.

The package is written into a hidden folder beside its destination, under its own name (the name
is the archive's root folder, so the bytes are stock's), and renamed onto the destination once
whole: a disk that fills mid-write, an error or Ctrl-C leaves nothing at the destination and no
partial file behind. A disk that filled during the compile is said in one sentence, not as the
writer's own error (``iostream error``, ``unexpected pos``, ``nvFatbin error: empty input``).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils.weak import WeakIdKeyDictionary

from ..core.errors import AotiHooksError, error_chain
from ..core.text import format_bytes
from ..core.types import tensor_bytes
from ..seams import inductor

# What writers say when the disk or the file-size limit stopped them, where no errno survives.
FULL_WORDS = ("No space left on device", "Disk quota exceeded", "iostream error", "unexpected pos",
              "nvFatbin error: empty input")
TOO_LARGE_WORDS = ("File too large", "File size limit exceeded")
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
Writes = list[tuple[str, int, str]]  # (folder, bytes at least, what is written there)


def parameters(program: "torch.export.ExportedProgram") -> list[torch.Tensor]:
    """The program's parameters, each tensor once (tied weights are one)."""
    found: dict[int, torch.Tensor] = {}
    for name in program.graph_signature.parameters:
        tensor = program.state_dict.get(name)
        if isinstance(tensor, torch.Tensor):
            found.setdefault(id(tensor), tensor)
    return list(found.values())


def parameter_bytes(program: "torch.export.ExportedProgram") -> int:
    """Bytes of the program's parameters, each tensor once (a tensor subclass counts its inner tensors)."""
    return sum(map(tensor_bytes, parameters(program)))


def planned_writes(program, package_path=None, package_words: str = "the package") -> Writes:
    """The floor of what compiling ``program`` writes: its parameters into Inductor's cache and into the
    package (at ``package_path``; torch's own temporary file when that is not a path)."""
    weights = parameter_bytes(program)
    folder = _package_folder(package_path) or tempfile.gettempdir()
    return [(inductor.cache_folder(), weights, "Inductor's cache"), (folder, weights, package_words)]


_IN_A_DATA_FILE = WeakIdKeyDictionary()  # parameters an earlier ExecuTorch method's floor counted for the data file
_in_a_data_file_lock = threading.Lock()


def executorch_writes(program) -> Writes:
    """The floor of what lowering one ExecuTorch method writes: its parameters into Inductor's folder
    (CudaBackend's weight collector keeps a file per parameter there until the program is written; other
    AOTI backends a weights blob), and once more into the program's data, for the parameters no earlier
    method's checked floor counted while they live.

    Methods share their weights (prefill and decode): the collector writes a second method's files,
    then drops those it already holds, so a second method needs room for its own copy only. Counting
    the data again for it would refuse the whole Gemma 4 31B (23 GiB of weights) on a 64 GiB disk that
    a stock lowering fits: 46 GiB asked where 32 GiB are free after the first method and 23 GiB needed."""
    tensors = parameters(program)
    with _in_a_data_file_lock:
        new = [tensor for tensor in tensors if tensor not in _IN_A_DATA_FILE]
    return [(inductor.cache_folder(), sum(map(tensor_bytes, tensors)), "Inductor's cache"),
            (tempfile.gettempdir(), sum(map(tensor_bytes, new)), "the delegate's files")]


def check_method_room(program) -> Writes:
    """`executorch_writes` for one method, checked (`check_room`); once it passes, its parameters count as
    in the program's data for the methods after it."""
    writes = executorch_writes(program)
    check_room(writes)
    with _in_a_data_file_lock:
        for tensor in parameters(program):
            _IN_A_DATA_FILE[tensor] = True
    return writes


def _package_folder(package_path) -> str | None:
    """The folder ``package_path`` names a file in; None when it is not a path (a file object, or torch's choice)."""
    if isinstance(package_path, (str, os.PathLike)):
        return os.path.dirname(os.path.abspath(package_path))
    return None


def check_package_folder(package_path) -> None:
    """The package's folder exists (torch finds that it does not only after the whole compile)."""
    folder = _package_folder(package_path)
    if folder is not None and not os.path.isdir(folder):
        raise AotiHooksError(f"the package's folder {folder} does not exist; create it, or give a package_path "
                             f"in a folder that exists")


def existing_folder(folder: str) -> str:
    """``folder``, or its nearest ancestor that exists (a folder a compile has not made yet is on that disk)."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_room(writes: Writes) -> None:
    """One sentence, before anything is compiled, where a disk or the file-size limit cannot take ``writes``."""
    disks: dict[int, list] = {}
    for folder, nbytes, what in writes:
        existing = existing_folder(folder)
        disk = disks.setdefault(os.stat(existing).st_dev, [existing, 0, []])
        disk[1] += nbytes
        disk[2].append(f"{what} {format_bytes(nbytes)} in {folder}")
    for existing, needed, parts in disks.values():
        free = shutil.disk_usage(existing).free
        if free < needed:
            raise AotiHooksError(
                f"this export writes at least {format_bytes(needed)} ({', '.join(parts)}) to a disk with "
                f"{format_bytes(free)} free; free space there, or give package_path and TORCHINDUCTOR_CACHE_DIR "
                f"folders on a disk with room")
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    largest = max((nbytes for _, nbytes, _ in writes), default=0)
    if limit != resource.RLIM_INFINITY and largest > limit:
        raise AotiHooksError(
            f"this export writes files of at least {format_bytes(largest)} and this process may write files of at most "
            f"{format_bytes(limit)} (ulimit -f); raise the limit (ulimit -f unlimited) and run it again")


def filled(error: BaseException, writes: Writes) -> str | None:
    """What filled, when ``error`` is a disk or the file-size limit stopping a writer; else None."""
    links = list(error_chain(error))
    text = " ".join(str(link) for link in links)
    if any(isinstance(link, subprocess.CalledProcessError) and link.returncode == -signal.SIGXFSZ for link in links) \
            or any(isinstance(link, OSError) and link.errno == errno.EFBIG for link in links) \
            or any(word in text for word in TOO_LARGE_WORDS):
        limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if limit == resource.RLIM_INFINITY:
            return "a file grew past the largest file its disk takes"
        return f"a file passed this process's file-size limit (ulimit -f, {format_bytes(limit)})"
    said = any(isinstance(link, OSError) and link.errno in FULL_ERRNOS for link in links) or any(
        word in text for word in FULL_WORDS)
    room = sorted((shutil.disk_usage(existing_folder(folder)).free, folder, nbytes, what) for folder, nbytes, what in writes)
    short = [entry for entry in room if entry[0] < entry[2]]
    if not (short or (said and room)):
        return None
    free, folder, _, what = (short or room)[0]  # a disk without room for its share, else the one with least room
    return f"the disk holding {what} ({folder}) is full ({format_bytes(free)} free)"


@contextmanager
def written_whole(package_path, writes: Writes) -> Iterator:
    """The path to give torch for ``package_path``: a hidden folder's file of the same name, renamed onto
    ``package_path`` once whole. On any error, Ctrl-C included, the folder goes and the destination is untouched."""
    if _package_folder(package_path) is None:
        with disk_errors(writes):
            yield package_path  # torch's own temporary file, or a file object the caller owns
        return
    destination = os.path.abspath(os.fspath(package_path))
    folder = tempfile.mkdtemp(prefix=".aoti-hooks-writing-", dir=_package_folder(package_path))
    writing = os.path.join(folder, os.path.basename(destination))
    try:
        with disk_errors(writes, f", leaving nothing at {destination}"):
            yield writing
            os.replace(writing, destination)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def disk_errors(writes: Writes, left: str = "") -> Iterator[None]:
    """A disk or the file-size limit that stops a writer inside the block, said in one sentence (`filled`)."""
    try:
        yield
    except AotiHooksError:
        raise
    except Exception as error:
        what = filled(error, writes)
        if what is None:
            raise
        raise AotiHooksError(f"the export stopped because {what}{left}; free space and run it again "
                             f"(the writer's own error is this one's cause)") from error
