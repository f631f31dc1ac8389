"""One fatbin from a kernel's builds for several GPUs, through NVIDIA's nvFatbin library.

A target of several GPUs bakes each kernel once, as a fatbin holding a cubin per architecture
(and PTX where the target covers later GPUs): the driver picks the image that runs on the GPU
that loads it, as ``cuModuleLoad``/``cuModuleLoadData`` do for any fatbin. nvFatbin is a host
library (no GPU, no driver): the ``nvidia-nvfatbin`` wheel, or a CUDA toolkit 12.4 and later.
Images are stored uncompressed so that `aoti-hooks inspect` reads their architectures and registers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import importlib.util
import os

from ...core.errors import AotiHooksError

INSTALL = 'pip install "aoti-hooks[several-gpus]" (NVIDIA\'s nvidia-nvfatbin; or a CUDA toolkit 12.4 or later on the library path)'


def _candidates() -> list[str]:
    """Where libnvfatbin may be: the NVIDIA wheels (CUDA 13 and 12 layouts), CUDA_HOME, the loader's path."""
    found = []
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        found += sorted(glob.glob(os.path.join(root, "cu*", "lib", "libnvfatbin.so*")), reverse=True)
        found += sorted(glob.glob(os.path.join(root, "nvfatbin", "lib", "libnvfatbin.so*")), reverse=True)
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            found += sorted(glob.glob(os.path.join(home, "lib64", "libnvfatbin.so*")), reverse=True)
    system = ctypes.util.find_library("nvfatbin")
    return found + ([system] if system else [])


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The nvFatbin library, or None where none is installed."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.nvFatbinGetErrorString.restype = ctypes.c_char_p
        return lib
    return None


def require() -> None:
    """One sentence when nvFatbin is missing: asked before a compile for several GPUs starts."""
    if library() is None:
        raise AotiHooksError(f"a target of several GPUs packs each kernel's builds into one fatbin with NVIDIA's "
                             f"nvFatbin library, which is not installed here; {INSTALL}")


def pack(images: list[tuple[int, bool, bytes]], name: str) -> bytes:
    """A fatbin of ``images``: ``(SM, is PTX, code)``, a cubin or PTX text each, under identifier ``name``."""
    require()
    lib = library()
    handle = ctypes.c_void_p()

    def check(result: int, what: str) -> None:
        if result != 0:
            message = lib.nvFatbinGetErrorString(result).decode(errors="replace")
            raise AotiHooksError(f"nvFatbin could not {what} for kernel {name} ({message}); "
                                 f"update it ({INSTALL}) or give one GPU as the target")

    options = (ctypes.c_char_p * 2)(b"-64", b"-compress=false")
    check(lib.nvFatbinCreate(ctypes.byref(handle), options, 2), "start a fatbin")
    try:
        for sm, as_ptx, code in images:
            arch = str(sm).encode()
            if as_ptx:
                text = code.rstrip(b"\0")
                check(lib.nvFatbinAddPTX(handle, text, len(text), arch, name.encode(), b""), f"add PTX for sm_{sm}")
            else:
                check(lib.nvFatbinAddCubin(handle, code, len(code), arch, name.encode()), f"add the sm_{sm} cubin")
        size = ctypes.c_size_t()
        check(lib.nvFatbinSize(handle, ctypes.byref(size)), "size the fatbin")
        buffer = ctypes.create_string_buffer(size.value)
        check(lib.nvFatbinGet(handle, buffer), "write the fatbin")
        return buffer.raw
    finally:
        lib.nvFatbinDestroy(ctypes.byref(handle))
