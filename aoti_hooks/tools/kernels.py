"""``aoti-hooks inspect ARTIFACT [--target X] [--json]``: the GPU kernels an artifact bakes, and whether they launch on X.

It reads a ``.pt2`` package, with no GPU and no torch:
- each wrapper's ``launchKernel(kernel, grid_0, grid_1, grid_2, <warps>, <shared bytes>, ...)``
  gives a kernel's threads and the dynamic shared memory it is launched with;
- each ``.cubin`` member's ELF header gives the architecture its code was built for, and its
  ``.nv.info`` attributes each function's registers per thread (a member
  baked as PTX, ``code=ptx``, gives its ``.target``: the driver builds it on load);
- a library's embedded CUDA images give theirs, for kernels built into the ``.so``.

A kernel launches on a target when its shared memory fits the target's (`core.target.PROFILES`)
and a cubin's architecture runs there: the same major version and a minor version no higher than
the target's (``sm_80`` code runs on ``sm_86``; ``sm_90`` code does not run on ``sm_120``). A fatbin
(a kernel baked for several GPUs) runs where one of its images runs; a target of several GPUs is
checked on each of them.
A package compiled for the CPU bakes no GPU kernel: its list is empty.

An ExecuTorch ``.pte`` holds each AOTI delegate's library in its named data: the CUDA images built
into it give each kernel's architecture and registers. Its launch shared memory is compiled into the
library; a program exported in a session carries a kernel manifest beside each library
(`core.kernel_manifest`), checked against the binaries the library holds, from which it is read.
Without one the output says that the shared memory is not readable.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import zipfile
from dataclasses import asdict, dataclass

EM_CUDA = 190
_LAUNCH = re.compile(r"launchKernel\(\s*([\w.]+)\s*,\s*grid_0\s*,\s*grid_1\s*,\s*grid_2\s*,\s*(\d+)\s*,\s*(\d+)\s*,")
_ELF_MAGIC = b"\x7fELF"
_FATBIN_MAGIC = struct.pack("<I", 0xBA55ED50)  # a fatbin container's first four bytes


@dataclass
class Kernel:
    name: str
    shared_bytes: int | None  # None: compiled into a library (a .pte's delegates), not readable
    threads: int | None
    launches_on_target: bool | None = None
    why_not: str | None = None
    registers: int | None = None  # per thread, where a cubin of the package says
    arch: int | None = None  # the SM of the image holding it, where read from a library


def cuda_arch(elf: bytes) -> int | None:
    """The SM a CUDA ELF image (a cubin) was built for, e.g. 90 or 120; None if it is not one.

    Older ptxas writes it in the low byte of ``e_flags`` and again above it (``0x5a055a`` is sm_90);
    newer ptxas writes it in bits 8-15 alone, with flags in the low byte: ``0x6007802`` is sm_120,
    and CUDA 13's ptxas writes sm_90 with a low byte of 4 and sm_120 with 10.
    """
    if len(elf) < 52 or elf[:4] != _ELF_MAGIC or elf[4] != 2:  # 64-bit ELF only
        return None
    endian = "<" if elf[5] == 1 else ">"
    (machine,) = struct.unpack_from(endian + "H", elf, 18)
    if machine != EM_CUDA:
        return None
    (flags,) = struct.unpack_from(endian + "I", elf, 48)
    low, wide = flags & 0xFF, (flags >> 8) & 0xFFFF
    return wide if 30 <= wide <= 255 else low


_EIATTR_REGCOUNT, _EIFMT_SVAL = 0x2F, 0x04


def cubin_registers(elf: bytes) -> dict[str, int]:
    """``{function: registers per thread}`` from a cubin's ``.nv.info`` attributes (``EIATTR_REGCOUNT``:
    a symbol index and a count, what ``cuobjdump --dump-resource-usage`` prints as ``REG``); empty
    when ``elf`` is not a 64-bit little-endian cubin or holds none."""
    if cuda_arch(bytes(elf[:64])) is None or elf[5] != 1:
        return {}
    try:
        (shoff,) = struct.unpack_from("<Q", elf, 0x28)
        entry, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * entry) for i in range(count)]

        def text(table: int, at: int) -> str:
            start = sections[table][4] + at
            return bytes(elf[start:start + 4096]).split(b"\0", 1)[0].decode("utf-8", "replace")

        counts: dict[int, int] = {}
        symbols: list[str] = []
        for section in sections:
            name, kind, offset, size, link = text(names_index, section[0]), section[1], section[4], section[5], section[6]
            if kind == 2:  # SHT_SYMTAB: 24-byte entries, names in the section it links
                symbols = [text(link, struct.unpack_from("<I", elf, offset + i)[0]) for i in range(0, size, 24)]
            elif name.startswith(".nv.info"):
                at = offset
                while at + 4 <= offset + size:
                    form, attribute, value = struct.unpack_from("<BBH", elf, at)
                    at += 4
                    if form == _EIFMT_SVAL:
                        if attribute == _EIATTR_REGCOUNT and value == 8:
                            symbol, registers = struct.unpack_from("<II", elf, at)
                            counts[symbol] = registers
                        at += value
        return {symbols[index]: registers for index, registers in counts.items() if index < len(symbols)}
    except (struct.error, ValueError, IndexError):  # a truncated or unusual image: nothing readable
        return {}


_PTX_TARGET = re.compile(rb"^\s*\.target\s+sm_(\d+)(a?)", re.MULTILINE)


def ptx_target(text: bytes) -> tuple[int, bool] | None:
    """``(SM, architecture-specific)`` a PTX text targets (a kernel baked as PTX, ``code=ptx``):
    ``.target sm_80`` is ``(80, False)``, ``sm_90a`` ``(90, True)``; None if it is not PTX."""
    if b".version" not in text[:4096] or text[:4096].lstrip()[:2] not in (b"//", b".v"):
        return None
    found = _PTX_TARGET.search(text[:65536])
    return (int(found.group(1)), bool(found.group(2))) if found else None


def ptx_runs_on(built: int, specific: bool, target: int) -> bool:
    """The driver builds PTX for SM ``built`` on that SM or a later one; ``sm_90a``-style PTX on that SM only."""
    return target == built if specific else target >= built


def embedded_images(library: bytes) -> list[tuple[int, dict[str, int]]]:
    """``(SM, {function: registers})`` of each CUDA ELF image embedded in a library (kernels built
    into a ``.so``, alone or inside a fatbin)."""
    found, start, view = [], library.find(_ELF_MAGIC, 1), memoryview(library)
    while start != -1:
        arch = cuda_arch(library[start:start + 64])
        if arch is not None:
            found.append((arch, cubin_registers(view[start:])))
        start = library.find(_ELF_MAGIC, start + 1)
    return found


def _ptx_label(sm: int, specific: bool) -> str:
    return f"PTX sm_{sm}{'a' if specific else ''}"


def _label(sm: int, as_ptx: bool, payload: bytes | None) -> str:
    """``sm_90`` for a cubin, ``PTX sm_80`` (or ``PTX sm_90a``) for PTX."""
    if not as_ptx:
        return f"sm_{sm}"
    read = ptx_target(payload) if payload else None
    return _ptx_label(*read) if read else _ptx_label(sm, False)


def code_sets(blob: bytes) -> list[list[str]]:
    """The code a blob holds, one list per unit the driver picks from: a fatbin's images together,
    each cubin or PTX outside a fatbin alone (e.g. ``[["sm_89", "sm_90", "PTX sm_80"], ["sm_120"]]``)."""
    arch = cuda_arch(blob[:64])
    if arch is not None:
        return [[f"sm_{arch}"]]
    as_ptx = None if blob.startswith(_FATBIN_MAGIC) else ptx_target(blob[:65536])
    if as_ptx is not None:
        return [[_ptx_label(*as_ptx)]]
    sets, covered = [], []
    for start, end in _containers(blob):
        images = _entries(blob, start, end)
        if images:
            sets.append([_label(sm, as_ptx, payload) for sm, as_ptx, payload in images])
            covered.append((start, end))
    start = blob.find(_ELF_MAGIC, 1)
    while start != -1:
        arch = cuda_arch(blob[start:start + 64])
        if arch is not None and not any(low <= start < high for low, high in covered):
            sets.append([f"sm_{arch}"])
        start = blob.find(_ELF_MAGIC, start + 1)
    return sets



def _containers(blob: bytes):
    """``(start, end)`` of each fatbin container in ``blob``: a 16-byte header (magic, version 1,
    header size 16, the entries' size) and its entries."""
    start = blob.find(_FATBIN_MAGIC)
    while start != -1 and start + 16 <= len(blob):
        version, header, size = struct.unpack_from("<HHQ", blob, start + 4)
        end = start + 16 + size
        if version != 1 or header != 16 or end > len(blob):
            start = blob.find(_FATBIN_MAGIC, start + 4)
            continue
        yield start, end
        start = blob.find(_FATBIN_MAGIC, end)


def _entries(blob: bytes, start: int, end: int) -> list[tuple[int, bool, bytes | None]]:
    """The entries of the container at ``start``: each a header (kind 1 PTX or 2 ELF at 0, its own
    size at 4, the payload's at 8, the SM at 28) and the payload, as ``cuobjdump --list-elf --list-ptx``
    reads them."""
    found, at = [], start + 16
    while at + 32 <= end:
        kind, _, entry, length = struct.unpack_from("<HHIQ", blob, at)
        (sm,) = struct.unpack_from("<I", blob, at + 28)
        if entry < 32 or at + entry + length > end:
            break
        payload = bytes(blob[at + entry:at + entry + length])
        readable = payload.startswith(_ELF_MAGIC) if kind == 2 else b".version" in payload[:4096]
        if kind in (1, 2):
            found.append((sm, kind == 1, payload if readable else None))
        at += entry + length
    return found


def fatbin_images(blob: bytes) -> list[tuple[int, bool, bytes | None]]:
    """``(SM, is PTX, payload)`` of each entry of the fatbin containers in ``blob`` (a kernel baked for
    several GPUs, or a library's CUDA code); the payload is None where the entry is compressed."""
    return [image for start, end in _containers(blob) for image in _entries(blob, start, end)]


def binary_registers(binary: bytes) -> dict[str, int]:
    """``{function: registers}`` of a kernel binary: a cubin's, or those of a fatbin's cubins."""
    found = {}
    for _sm, as_ptx, payload in fatbin_images(binary):
        if payload is not None and not as_ptx:
            found.update(cubin_registers(payload))
    return {**found, **cubin_registers(binary)}


def runs_on(built: int, target: int) -> bool:
    """Whether code built for SM ``built`` runs on an SM ``target`` GPU (same major, minor not above)."""
    return built // 10 == target // 10 and built % 10 <= target % 10


def not_runnable_here(target_text: str | None) -> str | None:
    """Why an artifact a session built for ``target_text`` cannot run on this machine's GPU, or None.

    Triton's PTX for sm_90 and later is architecture-specific (``sm_90a``, ``sm_120a``)."""
    if not target_text:
        return None
    from ..core.target import parse_target
    from ..seams.inductor.arch import images, local_sm

    target, local = parse_target(target_text), local_sm()
    codes = images(target)
    if not codes or local is None:
        return None
    if any(ptx_runs_on(sm, sm >= 90, local) if ptx else runs_on(sm, local) for sm, ptx in codes):
        return None
    built = ", ".join(f"{'PTX ' if ptx else ''}sm_{sm}" for sm, ptx in codes)
    if target.gpus:
        return f"its kernels are built for {built} and this GPU is sm_{local}; add this GPU to the target to run them here"
    return (f"its kernels are built for {built} and this GPU is sm_{local}; "
            f"--target {target_text.split(',')[0]},sm=local builds them for this GPU")


def read_package(path: str) -> dict:
    """The kernels of a ``.pt2`` package and the code it holds (`code_sets` of each binary and library)."""
    kernels: dict[str, Kernel] = {}
    code: list[dict] = []
    registers: dict[str, int] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name, short = info.filename, info.filename.rsplit("/", 1)[-1]
            if name.endswith(".cpp"):
                text = archive.read(info).decode("utf-8", "replace")
                for variable, warps, shared in _LAUNCH.findall(text):
                    kernel = variable.rsplit(".", 1)[-1]
                    kernels[kernel] = Kernel(kernel, int(shared), int(warps) * 32)
            elif name.endswith((".cubin", ".so")):
                binary = archive.read(info)
                code += [{"in": short, "images": images} for images in code_sets(binary)]
                if name.endswith(".cubin"):
                    registers.update(binary_registers(binary))
        names = archive.namelist()
    for kernel in kernels.values():
        kernel.registers = registers.get(kernel.name)
    kind = ("AOTI package" if any("/aotinductor/" in name for name in names)
            else "exported program" if any(name.rsplit("/", 1)[-1].endswith(".json") and "/models/" in f"/{name}"
                                           for name in names) else "zip file")
    return {"kind": kind, "kernels": list(kernels.values()), "code": code}


def read_program(*paths: str) -> dict:
    """The GPU kernels of the AOTI delegates' libraries of an ExecuTorch ``.pte`` (or of several, one a
    method, as bench's ``--methods-apart`` writes them).

    Each CUDA image's architecture and its functions' registers are read from the libraries. Launch
    shared memory and threads are compiled in; where a session wrote the library's kernel manifest
    (`core.kernel_manifest`), they are read from it for each kernel whose binary the library holds as
    the manifest says (found by size and SHA-256), and each one that is not is a problem."""
    from ..core import kernel_manifest
    from .harness.artifacts import named_blobs

    blobs = named_blobs(list(paths))
    kernels: list[Kernel] = []
    code: list[dict] = []
    problems: list[str] = []
    libraries = checked = 0
    for key, blob in blobs.items():
        if bytes(blob[:len(_ELF_MAGIC)]) != _ELF_MAGIC:  # a weight, a view of its file
            continue
        blob = bytes(blob)  # a delegate library, read whole
        libraries += 1
        code += [{"in": f"delegate library {libraries}", "images": images} for images in code_sets(blob)]
        found = kernel_manifest.parse(bytes(blobs.get(kernel_manifest.key_for(key), b"")))
        if found is None:
            for arch, registers in embedded_images(blob):
                kernels += [Kernel(name, None, None, registers=count, arch=arch) for name, count in sorted(registers.items())]
            continue
        checked += 1
        held = kernel_manifest.binaries_in(found, blob)
        for entry in found["kernels"]:
            binary = held.get(entry["name"])
            if binary is None:
                problems.append(f"{entry['name']}: the manifest's binary for it is not in delegate library {libraries}, "
                                f"so its launch cannot be checked")
                continue
            kernels.append(Kernel(entry["name"], entry["shared_bytes"], entry["threads"],
                                  registers=binary_registers(binary).get(entry["function"])))
    return {"kernels": kernels, "kernels_readable": checked == libraries and libraries > 0, "libraries": libraries,
            "code": code, "manifest_problems": problems}


LATER = 1000  # stands for "any GPU after this one" (only PTX reaches it)


def _runs(label: str, sm: int) -> bool:
    """Whether the image ``label`` (``sm_90``, ``PTX sm_80``, ``PTX sm_90a``) runs on an SM ``sm`` GPU."""
    if label.startswith("PTX "):
        spelled = label[4:]
        return ptx_runs_on(int(spelled[3:].rstrip("a")), spelled.endswith("a"), sm)
    return runs_on(int(label[3:]), sm)


def verdict(found: dict, smem: int | None, sm: int | None, where: str | None = None) -> list[str]:
    """Mark each kernel against a GPU of ``smem`` bytes of shared memory and SM ``sm``; one sentence
    per thing that does not launch there. A fatbin runs where one of its images runs."""
    where = where or f"sm_{sm}"
    problems = []
    for kernel in found["kernels"]:
        if smem is not None and kernel.shared_bytes is not None:
            kernel.launches_on_target = kernel.shared_bytes <= smem
            if not kernel.launches_on_target:
                kernel.why_not = f"needs {kernel.shared_bytes} B of shared memory, the target allows {smem} B"
                problems.append(f"{kernel.name} {kernel.why_not}")
    for unit in found["code"] if sm is not None else ():
        images = unit["images"]
        if any(_runs(label, sm) for label in images):
            continue
        if len(images) > 1:
            problems.append(f"{unit['in']} holds no code for {where} (it holds {', '.join(images)})")
        elif images[0].startswith("PTX "):
            problems.append(f"PTX for {images[0][4:]} is not built by the driver on {where}")
        else:
            problems.append(f"code built for {images[0]} does not run on {where}")
    return list(dict.fromkeys(problems))


def problems_on(found: dict, target) -> list[str]:
    """`verdict` for a target: each of its GPUs in turn where it names several (and, for ``a100+``,
    the GPUs after it, which only PTX reaches); kernels marked against the smallest shared memory."""
    from ..core.target import PROFILES, SM

    problems = list(found.get("manifest_problems", ()))
    if not target.gpus:
        return problems + verdict(found, target.smem, target.sm)
    for gpu in target.gpus:
        profile = gpu.rstrip("+")
        problems += [f"on {profile}: {problem}" for problem in verdict(found, PROFILES[profile][0], SM[profile])]
        if gpu.endswith("+"):
            problems += [f"on GPUs after {profile}: {problem}"
                         for problem in verdict(found, None, LATER, f"GPUs after sm_{SM[profile]}")]
    verdict(found, target.smem, None)
    return problems


def built_for(found: dict) -> list[str]:
    """Every image the artifact holds, each once (``sm_89``, ``sm_120``, ``PTX sm_80``)."""
    return sorted({label for unit in found["code"] for label in unit["images"]},
                  key=lambda label: (label.startswith("PTX"), int(label.split("sm_")[1].rstrip("a")), label))


def artifact_summary(package: str, target_text: str | None) -> dict | None:
    """What `run` would say of the artifact a compile wrote (a ``.pt2`` at ``package``, or the ``.pte``
    in the folder of its name), for bench's report; None when there is none."""
    from ..core.target import parse_target
    from .harness.artifacts import program_files

    folder = os.path.splitext(package)[0]
    programs = [path for path in program_files(folder) if path.endswith(".pte")] if os.path.isdir(folder) else []
    if os.path.isfile(package) and zipfile.is_zipfile(package):
        found = read_package(package)
    elif programs:
        found = read_program(*programs)
    else:
        return None
    problems = problems_on(found, parse_target(target_text)) if target_text else []
    shared = [kernel.shared_bytes for kernel in found["kernels"] if kernel.shared_bytes is not None]
    return {"kernels": len(found["kernels"]), "kernels_readable": found.get("kernels_readable", True),
            "max_shared_bytes": max(shared, default=None), "built_for": built_for(found), "problems": problems,
            "target": target_text}


def _holds_no_gpu_code(path: str, found: dict) -> str | None:
    """What the file is, in one sentence, when it holds no GPU code to check; None when it does."""
    if found.get("kind") == "exported program":
        return (f"{path}: a torch.export.save file (an exported program), not a compiled artifact: it holds no GPU "
                f"code; compile it (aoti_compile_and_package, or an ExecuTorch lowering) and inspect what that writes")
    if found.get("kind") == "zip file":
        return f"{path}: a zip file that is neither an AOTI package nor an exported program: it holds no GPU code"
    if found["kernels"] or found["code"] or found.get("manifest_problems"):
        return None
    if found.get("libraries") is not None:
        one = found["libraries"] == 1
        return (f"{path}: an ExecuTorch program with {found['libraries']} delegate librar{'y' if one else 'ies'} "
                f"and no GPU code in {'it' if one else 'them'}")
    return f"{path}: an AOTI package with no GPU code (compiled for the CPU)"


def run(args) -> int:
    from ..core.target import PROFILES, parse_target

    if args.artifact.endswith(".pte") and os.path.isfile(args.artifact):
        try:
            found = read_program(args.artifact)
        except ImportError:
            print("aoti-hooks inspect: reading a .pte needs ExecuTorch: pip install \"aoti-hooks[executorch]\"",
                  file=sys.stderr)
            return 2
    elif zipfile.is_zipfile(args.artifact):
        found = read_package(args.artifact)
    else:
        print(f"aoti-hooks inspect: {args.artifact!r} is neither an AOTI package (.pt2) nor an ExecuTorch "
              f"program (.pte); give the file aoti_compile_and_package or to_executorch wrote", file=sys.stderr)
        return 2
    target = None
    if args.target:
        target = parse_target(args.target)
        if args.target.split(",")[0] not in PROFILES and target.smem is None:
            print("aoti-hooks inspect: --target needs a GPU profile or smem=<bytes>; 'local' names no GPU here",
                  file=sys.stderr)
            return 2
    no_code = _holds_no_gpu_code(args.artifact, found)
    if no_code is not None:
        if args.json:
            print(json.dumps({**found, "kernels": [], "target": args.target, "problems": [no_code]}, indent=1))
        else:
            print(no_code + (f"; nothing in it launches on {args.target}" if args.target else ""))
        return 1 if args.target else 0
    problems = problems_on(found, target) if target is not None else []
    if args.json:
        print(json.dumps({**found, "kernels": [asdict(k) for k in found["kernels"]], "target": args.target,
                          "problems": problems}, indent=1))
    else:
        if found.get("kernels_readable", True):
            print(f"{args.artifact}: {len(found['kernels'])} GPU kernel(s)"
                  + (" (launches read from the kernel manifest, checked against the library's binaries)"
                     if found.get("libraries") else ""))
        else:
            print(f"{args.artifact}: {found['libraries']} delegate librar{'y' if found['libraries'] == 1 else 'ies'}, "
                  f"{len(found['kernels'])} GPU kernel(s); their launch shared memory is compiled in and not readable "
                  f"(a program exported in an aoti-hooks session carries a manifest of it)")
        for kernel in found["kernels"]:
            mark = "" if kernel.launches_on_target is None else ("  ok" if kernel.launches_on_target else "  NO")
            parts = [f"{kernel.shared_bytes} B shared" if kernel.shared_bytes is not None else None,
                     f"{kernel.threads} threads" if kernel.threads is not None else None,
                     f"{kernel.registers} registers" if kernel.registers is not None else None,
                     f"sm_{kernel.arch}" if kernel.arch is not None else None]
            print(f"  {kernel.name}: {', '.join(part for part in parts if part)}{mark}")
        print("  built for: " + (", ".join(built_for(found)) or "no CUDA binary found"))
        if args.target:
            fine = ("every kernel launches" if found.get("kernels_readable", True)
                    else "its code is for this architecture (shared memory cannot be checked from a .pte)")
            print(f"on {args.target}: " + (fine if not problems else "does not launch"))
            for problem in problems:
                print(f"  - {problem}")
    return 1 if problems else 0
