"""Small real programs and helpers to compile, run and inspect AOTI packages on the CPU."""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import tempfile
import zipfile

import torch

# Tests build many small wrappers: torch's headers precompiled once per run (~400 MB in its Inductor cache)
# and the wrapper built at -O0 take a CPU compile from ~14 s to ~6 s; the code compiled is the same.
INDUCTOR_CONFIGS = {"aot_inductor.compile_wrapper_opt_level": "O0"}


class CacheModel(torch.nn.Module):
    """Two same-shape zero caches written at a position, a weight, and a non-cache buffer."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(8, 8, generator=generator))
        self.register_buffer("scale", torch.full((8,), 0.5))
        self.register_buffer("c0", torch.zeros(4, 8))
        self.register_buffer("c1", torch.zeros(4, 8))

    def forward(self, x, pos):
        self.c0.index_copy_(0, pos, x @ self.w)
        self.c1.index_copy_(0, pos, (x @ self.w) * 2)
        return (self.c0 * self.scale).sum(0) + self.c1.sum(0) * torch.arange(1, 5.0).sum()


def export_cache_model():
    model = CacheModel()
    example = (torch.randn(1, 8), torch.tensor([1]))
    return model, torch.export.export(model, example)


def decode_inputs(steps: int = 4):
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(1, 8, generator=generator), torch.tensor([step % 4])) for step in range(steps)]


def run_steps(fn, steps):
    return [fn(x, pos).clone() for x, pos in steps]


def package_constants(package_path: str, device: str = "cpu") -> dict[str, bytes]:
    """Constant name -> raw bytes, read back from the package's compiled model (for ``device``)."""
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(package_path) as archive:
            archive.extractall(folder)
        (so_path,) = glob.glob(os.path.join(folder, "**", "*wrapper.so"), recursive=True)
        if device == "cpu":
            runner = torch._C._aoti.AOTIModelContainerRunnerCpu(so_path, 1)
        else:
            runner = torch._C._aoti.AOTIModelContainerRunnerCuda(so_path, 1, device)
        constants = runner.extract_constants_map(False)
        return {name: tensor_bytes(tensor.cpu()) for name, tensor in constants.items()}


def package_files(path: str, *needles: str) -> dict[str, str]:
    """Member (without the archive's root folder) -> sha256, of a package's members whose names hold a needle."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename.split("/", 1)[1]: hashlib.sha256(archive.read(info.filename)).hexdigest()
                for info in archive.infolist() if any(needle in info.filename for needle in needles)}


def package_code(package_path: str) -> dict[str, object]:
    """What a package's code is, apart from names and comments: per kind of member (``wrapper.cpp``,
    ``kernel.cpp``, ``wrapper.so``, ...), the C++ sources without blank and ``//`` comment lines (which
    record build paths and commands, and whether this process had precompiled headers) and the
    other members' sizes."""
    found: dict[str, object] = {}
    with zipfile.ZipFile(package_path) as archive:
        for info in archive.infolist():
            kind = info.filename.rsplit("/", 1)[-1].split(".", 1)[-1] if "/aotinductor/" in info.filename else None
            if kind is None:
                continue
            if kind.endswith(".cpp"):
                lines = archive.read(info).decode("utf-8", "replace").splitlines()
                found[kind] = [line for line in lines if line.strip() and not line.lstrip().startswith("//")]
            else:
                found[kind] = info.file_size
    return found


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """Raw bytes of a CPU tensor (no NumPy needed); a tensor subclass's are its inner tensors' in order."""
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) and hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return b"".join(tensor_bytes(getattr(tensor, name)) for name in names)
    tensor = tensor.contiguous()
    return ctypes.string_at(tensor.data_ptr(), tensor.numel() * tensor.element_size())


def program_snapshot(program) -> dict:
    """Everything a compile must leave as it was: graph, signature, example inputs, every tensor
    (identity, device, layout and bytes) of the state dict and the constants."""

    def tensors(table):
        return {name: (id(t), str(t.device), tuple(t.shape), t.stride(), t.untyped_storage().nbytes(),
                       tensor_bytes(t) if t.device.type == "cpu" else None)
                for name, t in table.items() if isinstance(t, torch.Tensor)}

    return {
        "code": program.graph_module.code,
        "graph": str(program.graph),
        "signature": str(program.graph_signature),
        "devices": [str(node.meta["val"].device) for node in program.graph.nodes
                    if isinstance(node.meta.get("val"), torch.Tensor)],
        "state_dict": tensors(program.state_dict),
        "constants": tensors(program.constants),
        "example_inputs": repr(program.example_inputs),
    }


class Small(torch.nn.Module):
    """A linear layer, a 0-d and a 2-element buffer (inlined as literals), a lifted constant, and a cache."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(32, 32)
        self.register_buffer("scale", torch.tensor(2.0))
        self.register_buffer("pair", torch.tensor([1.0, 3.0]))
        self.register_buffer("cache", torch.zeros(4, 32), persistent=False)
        self.table = torch.arange(32.0)  # a plain attribute: a lifted tensor constant

    def forward(self, x, pos):
        self.cache.index_copy_(0, pos, self.linear(x) * self.scale + self.table)
        return self.cache.sum(0) * self.pair.sum()


def export_small():
    torch.manual_seed(0)
    return torch.export.export(Small(), (torch.randn(1, 32), torch.tensor([1])))
