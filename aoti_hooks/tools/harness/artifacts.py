"""What a compile wrote: sizes and digests, and the contents of ExecuTorch CUDA ``.pte``/``.ptd`` files
(each named blob, each delegate's weight table), read back to compare variants and to run delegates."""

from __future__ import annotations

import hashlib
import os
import struct

import torch

from ...seams.executorch import write_tensor_data_releasing

CUDA_TABLE_MAGIC = b"ETCUDAFQN"


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 over a CPU tensor's dtype, shape and bytes: equal digests are equal tensors, bit for bit."""
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_digest(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return os.path.getsize(path), digest.hexdigest()


def write_program(manager, folder: str) -> list[str]:
    """Write an ExecuTorch program manager's ``model.pte`` and its ``.ptd`` files (CudaBackend names
    them) into ``folder``; the paths written, the ``.pte`` first."""
    os.makedirs(folder, exist_ok=True)
    pte = os.path.join(folder, "model.pte")
    with open(pte, "wb") as handle:
        manager.write_to_file(handle)
    before = set(os.listdir(folder))
    if not write_tensor_data_releasing(manager, folder):  # the same bytes; each constant's file goes once copied
        manager.write_tensor_data_to_file(folder)
    return [pte] + [os.path.join(folder, name) for name in sorted(set(os.listdir(folder)) - before)]


def program_files(folder: str) -> list[str]:
    """The ``.pte`` and ``.ptd`` files an export wrote into ``folder``, the ``.pte`` first; where each
    method was lowered in a process of its own (bench's ``--methods-apart``), those of its subfolders."""
    inside = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    files = [path for path in inside if path.endswith((".pte", ".ptd"))]
    if not files:
        files = [os.path.join(sub, name) for sub in inside if os.path.isdir(sub) for name in sorted(os.listdir(sub))
                 if name.endswith((".pte", ".ptd"))]
    return sorted(files, key=lambda path: (not path.endswith(".pte"), path))


def contents_path(spec: dict) -> str:
    """Where a lowering's named contents go: ``<contents_dir or its own folder>/<variant>[.<method>].contents.json``
    (a method of its own where each method is lowered in a process of its own)."""
    folder = spec.get("contents_dir") or os.path.splitext(spec["package"])[0]
    method = f".{spec['method']}" if spec.get("method") else ""
    return os.path.join(folder, f"{spec['variant']}{method}.contents.json")


def described(written: list[str], contents_path: str) -> dict:
    """``{file name: (size, sha256)}`` of ``written``; their named contents go to ``contents_path`` (JSON)."""
    import json

    os.makedirs(os.path.dirname(contents_path), exist_ok=True)
    with open(contents_path, "w") as handle:
        json.dump(named_contents(written), handle, indent=1)
    return {os.path.basename(path): file_digest(path) for path in written}


def cuda_delegates(paths: list[str]) -> dict:
    """``{method: {"so_key": ..., "weights": [[fqn, key, nbytes, dtype, device_type, offset, sizes, strides], ...]}}``
    for each CudaBackend delegate of the ``.pte`` among ``paths`` (its ``processed`` bytes: the .so's
    named-data key and the weight table)."""
    from ...seams.executorch import deserialize_pte_binary

    found = {}
    for path in paths:
        if not path.endswith(".pte"):
            continue
        with open(path, "rb") as handle:
            program = deserialize_pte_binary(handle.read()).program
        for plan in program.execution_plan:
            for delegate in plan.delegates:
                raw = bytes(program.backend_delegate_data[delegate.processed.index].data)
                if raw.startswith(CUDA_TABLE_MAGIC):
                    found[plan.name] = _weight_table(raw)
    return found


def _weight_table(raw: bytes) -> dict:
    at = len(b"ETCUDAFQN3")

    def text():
        nonlocal at
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4 + size
        return raw[at - size:at].decode()

    so_key = text()
    (count,) = struct.unpack_from("<I", raw, at)
    at += 4
    weights = []
    for _ in range(count):
        fqn, key = text(), text()
        nbytes, dtype, device_type, offset, dims = struct.unpack_from("<QiiqI", raw, at)
        at += struct.calcsize("<QiiqI")
        sizes = struct.unpack_from(f"<{dims}q", raw, at)
        at += 8 * dims
        strides = struct.unpack_from(f"<{dims}q", raw, at)
        at += 8 * dims
        weights.append([fqn, key, nbytes, dtype, device_type, offset, sizes, strides])
    return {"so_key": so_key, "weights": weights}


def named_blobs(paths: list[str]) -> dict[str, bytearray | memoryview]:
    """Every named blob of the ``.pte``'s named data and of the ``.ptd`` files, by key, each a writable
    buffer (``torch.frombuffer`` makes tensors over them without a copy). A ``.ptd``'s are views of a
    private mapping of the file (a deep model's is tens of GiB: read, never copied; the mapping lives
    as long as a view of it)."""
    import mmap

    from ...seams.executorch import deserialize_pte_binary, ptd_segments

    blobs: dict[str, bytearray | memoryview] = {}
    for path in paths:
        if path.endswith(".ptd"):
            segments = ptd_segments(path)
            if segments:
                with open(path, "rb") as handle:  # ACCESS_COPY: writable views (torch.frombuffer), the file untouched
                    mapped = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY))
                blobs.update({key: mapped[offset:offset + size] for key, (offset, size) in segments.items()})
            continue
        with open(path, "rb") as handle:
            named = deserialize_pte_binary(handle.read()).named_data
        if named is not None:
            for key, entry in named.pte_data.items():
                blobs[key] = bytearray(named.buffers[entry.buffer_index])
    return blobs


def named_contents(paths: list[str]) -> dict:
    """Each named blob of the .ptd files (key -> size, sha256) and the delegates' weight tables.

    The weight table (``processed`` bytes of CudaBackend's delegate) lists every constant's FQN,
    storage key, size, dtype, device type, offset, sizes and strides.
    """
    contents: dict = {"ptd": {}, "weights": []}
    blobs = named_blobs([path for path in paths if path.endswith(".ptd")])
    for key in sorted(blobs):
        contents["ptd"][key] = [len(blobs[key]), hashlib.sha256(blobs[key]).hexdigest()]
    for table in cuda_delegates(paths).values():
        contents["weights"] += table["weights"]
    return contents
