"""What an ExecuTorch program's GPU kernels are launched with, stored beside its delegate library.

A ``.pte`` keeps each AOTI delegate's library; the launches in it (shared memory, threads) are
compiled into machine code, which no reader can check. A session writes next to the library, as
named data, one JSON manifest: each kernel's function, launch shared memory and threads, and the
size and SHA-256 of the binary the library embeds for it. `aoti-hooks inspect` believes the
manifest only for the kernels whose binary it finds in the library by that hash.
"""

from __future__ import annotations

import hashlib
import json
import os

SUFFIX = "_aoti_hooks_kernels"  # the manifest's key: the library's key and this
FORMAT = 1
_STARTS = (b"\x7fELF", (0xBA55ED50).to_bytes(4, "little"))  # where an embedded cubin or fatbin starts


def key_for(library_key: str) -> str:
    return library_key + SUFFIX


def manifest(launches: dict[str, dict], library_key: str, target: str | None) -> bytes:
    """The manifest of one library: ``launches`` maps each kernel Inductor wrote a launch for to its
    ``function``, ``shared_bytes``, ``threads`` and ``binary`` (the file the library embeds)."""
    kernels = []
    for name, launch in sorted(launches.items()):
        entry = {key: launch[key] for key in ("function", "shared_bytes", "threads")}
        path = launch.get("binary")
        if path and os.path.isfile(path):
            with open(path, "rb") as file:
                binary = file.read()
            entry.update(bytes=len(binary), sha256=hashlib.sha256(binary).hexdigest())
        kernels.append({"name": name, **entry})
    return json.dumps({"format": FORMAT, "library": library_key, "target": target, "kernels": kernels},
                      indent=1).encode()


def parse(blob: bytes) -> dict | None:
    """A manifest from its named-data bytes, or None when they are not one this version reads."""
    try:
        found = json.loads(blob.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("format") == FORMAT else None


def binaries_in(manifest: dict, library: bytes) -> dict[str, bytes]:
    """Each manifest kernel's binary as the library embeds it (found by its size and hash), by kernel name;
    a kernel missing here is one the library does not hold as the manifest says."""
    starts = sorted({at for magic in _STARTS for at in _all(library, magic)})
    wanted: dict[int, dict[str, str]] = {}
    for kernel in manifest["kernels"]:
        if "sha256" in kernel:
            wanted.setdefault(kernel["bytes"], {})[kernel["sha256"]] = kernel["name"]
    found: dict[str, bytes] = {}
    for size, names in wanted.items():
        for at in starts:
            piece = library[at:at + size]
            name = names.get(hashlib.sha256(piece).hexdigest()) if len(piece) == size else None
            if name is not None:
                found[name] = piece
    return {kernel["name"]: found[kernel["name"]] for kernel in manifest["kernels"] if kernel["name"] in found}


def _all(data: bytes, magic: bytes) -> list[int]:
    found, at = [], data.find(magic)
    while at != -1:
        found.append(at)
        at = data.find(magic, at + 1)
    return found
