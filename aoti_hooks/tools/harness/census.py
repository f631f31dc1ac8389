"""What holds the host memory: a census of the Python-visible buffers of this process, by holder.

The RSS peak says how much; this says whose. It walks the garbage collector's objects once and
sums, per holder, the bytes of CPU tensor storages (each storage once, however many tensors view
it) and of large ``bytes``/``bytearray`` objects:

- ``held before the compile``: storages alive when the compile began (the user's parameters,
  buffers, exported programs' tensors) — `storage_keys` taken then;
- ``new, in an exported program``: storages made during the compile that an ``ExportedProgram``'s
  state dict or constants hold (a per-method copy, a moved or rewritten constant);
- ``new, other tensors``: every other new CPU storage (host snapshots, gathered constants);
- ``bytes objects``: ``bytes``/``bytearray`` of 1 MiB or more (serialized blobs, named data);
- ``not in Python objects``: the anonymous RSS no Python object above accounts for (allocations
  of C++ code, libraries, the allocator's free lists).

Each storage counts what of it is resident: a large storage is its own mapping, whose resident
bytes ``/proc/self/smaps`` gives (a mapping of zeros never written, as placement makes, costs
nothing until written; a storage mapped from a file, such as ``torch.load(mmap=True)``,
safetensors or a spill file, counts its resident file pages, also given apart as ``file pages``).
A storage inside a larger mapping (a heap; mappings of zeros the kernel merged) counts at most what
that mapping holds resident. The largest new storages are listed
with the type names of what refers to them, and the files whose pages are resident (all of them,
not only storages' files: libraries, artifacts) with their resident bytes.
"""

from __future__ import annotations

import bisect
import gc
import sys

BIG_BYTES = 1 << 20
GROUPS = ("held before the compile", "new, in an exported program", "new, other tensors", "bytes objects",
          "not in Python objects", "file pages")
OWN_MAPPING_SLACK = 2 << 20  # a mapping at most this much larger than a storage is that storage's own


def _cpu_storages(objects) -> dict[int, tuple[int, object]]:
    """``{storage data pointer: (bytes, a tensor viewing it)}`` of every CPU tensor among ``objects``."""
    torch = sys.modules.get("torch")
    found: dict[int, tuple[int, object]] = {}
    if torch is None:
        return found
    plain = (torch.Tensor, torch.nn.Parameter, torch.nn.Buffer)
    for obj in objects:
        if type(obj) not in plain:  # a subclass (fake, functional, quantized wrapper) holds plain ones, or none
            continue
        try:
            if obj.device.type != "cpu" or obj.is_meta:
                continue
            storage = obj.untyped_storage()
            pointer, nbytes = storage.data_ptr(), storage.nbytes()
        except (RuntimeError, NotImplementedError, TypeError, AttributeError):  # fake, functional, subclass wrappers
            continue
        if pointer and nbytes and pointer not in found:
            found[pointer] = (nbytes, obj)
    return found


def _mappings() -> list[tuple[int, int, int, int, str]]:
    """``(start, end, resident bytes, anonymous bytes, path)`` of this process's mappings, sorted; empty
    without /proc. ``path`` is the mapped file's, or ``[heap]``-style names, or empty."""
    found, current = [], None
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):
                    start, end = (int(part, 16) for part in head.split("-"))
                    fields = line.split(None, 5)
                    current = [start, end, 0, 0, fields[5].strip() if len(fields) > 5 else ""]
                    found.append(current)
                elif head == "Rss:" and current is not None:
                    current[2] = int(line.split()[1]) * 1024
                elif head == "Anonymous:" and current is not None:
                    current[3] = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return []
    return sorted(map(tuple, found))


def _resident(pointer: int, nbytes: int, mappings, starts) -> tuple[int, int]:
    """``(resident, of which file pages)`` of the storage at ``pointer``: its own mapping's; inside a larger
    mapping (a heap, or mappings of zeros the kernel merged into one) at most what that mapping holds."""
    index = bisect.bisect_right(starts, pointer) - 1
    if index >= 0:
        start, end, resident, anonymous, _ = mappings[index]
        if start <= pointer and pointer + nbytes <= end:
            files = max(0, resident - anonymous) if end - start <= nbytes + OWN_MAPPING_SLACK else 0
            resident = min(resident, nbytes)  # an own mapping's few extra pages are the allocator's, not the storage's
            return resident, min(resident, files)
    return nbytes, 0


SHARED_MEMORY = ("/dev/zero", "/dev/shm/", "/memfd:", "/SYSV")  # shmem: swap-backed, not file pages


def file_pages_by_file(mappings, top: int = 5) -> list[dict]:
    """The ``top`` files whose pages this process holds resident beyond anonymous ones, by bytes
    (all their mappings together): libraries, memory-mapped weights, spill files, artifacts, whose
    pages the kernel can drop (written back first when dirty), and shared memory (``shared_memory``
    True: a ``/dev/zero`` mapping made ``MAP_SHARED | MAP_ANONYMOUS``, ``/dev/shm``, a memfd), which
    only swap can take, as anonymous memory."""
    by_path: dict[str, int] = {}
    for _, _, resident, anonymous, path in mappings:
        if path.startswith("/") and resident > anonymous:
            by_path[path] = by_path.get(path, 0) + resident - anonymous
    largest = sorted(by_path.items(), key=lambda item: -item[1])[:top]
    return [{"path": path, "bytes": nbytes, "shared_memory": path.startswith(SHARED_MEMORY)} for path, nbytes in largest]


def storage_keys() -> set[int]:
    """The CPU storages alive now: what the process held before a compile."""
    return set(_cpu_storages(gc.get_objects()))


def _program_storages(objects) -> set[int]:
    torch = sys.modules.get("torch")
    exported = getattr(getattr(torch, "export", None), "ExportedProgram", None) if torch else None
    keys: set[int] = set()
    if exported is None:
        return keys
    for obj in objects:
        if exported in type(obj).__mro__:  # not isinstance: some lazy objects answer __class__ with a warning
            try:
                tensors = [*obj.state_dict.values(), *obj.constants.values()]
            except AttributeError:  # one being built (a deep copy in progress) has no tables yet
                continue
            keys.update(_cpu_storages(t for t in tensors if isinstance(t, torch.Tensor)))
    return keys


def _big_bytes(objects) -> int:
    """Bytes of the ``bytes``/``bytearray`` objects of ``BIG_BYTES`` or more that ``objects`` refer to
    (the collector does not track them: they hold no references)."""
    seen: dict[int, int] = {}
    for start in range(0, len(objects), 10_000):  # in slices: one list of every referent would itself be large
        for ref in gc.get_referents(*objects[start:start + 10_000]):
            if type(ref) in (bytes, bytearray) and len(ref) >= BIG_BYTES:
                seen[id(ref)] = len(ref)
    return sum(seen.values())


def _holders(tensor, skip: set[int]) -> str:
    names = sorted({type(ref).__name__ for ref in gc.get_referrers(tensor) if id(ref) not in skip})
    return ", ".join(names[:4]) or "nothing Python can see"


def census(before: set[int], anonymous: int | None, top: int = 5) -> dict:
    """Bytes per holder (`GROUPS`) now, and the ``top`` largest new storages with their holders."""
    objects = gc.get_objects()
    storages = _cpu_storages(objects)
    in_programs = _program_storages(objects)
    mappings = _mappings()
    starts = [mapping[0] for mapping in mappings]
    groups = dict.fromkeys(GROUPS, 0)
    new = []
    for pointer, (nbytes, tensor) in storages.items():
        resident, file_pages = _resident(pointer, nbytes, mappings, starts)
        groups["file pages"] += file_pages
        if pointer in before:
            groups["held before the compile"] += resident
        elif pointer in in_programs:
            groups["new, in an exported program"] += resident
        else:
            groups["new, other tensors"] += resident
            new.append((resident, tensor))
    groups["bytes objects"] = _big_bytes(objects)
    visible = sum(groups.values()) - 2 * groups["file pages"]  # file pages: in their holder's figure, not anonymous
    groups["not in Python objects"] = max(0, anonymous - visible) if anonymous is not None else 0
    new.sort(key=lambda item: -item[0])
    skip = {id(objects), id(storages), id(new), *map(id, new), *map(id, storages.values())}
    largest = [{"bytes": nbytes, "shape": list(tensor.shape), "dtype": str(tensor.dtype).replace("torch.", ""),
                "held_by": _holders(tensor, skip)} for nbytes, tensor in new[:top]]
    del objects, storages, new
    return {"groups": groups, "largest_new": largest, "file_pages_by_file": file_pages_by_file(mappings)}
