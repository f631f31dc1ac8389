"""Only ``aoti_hooks/seams/`` touches private torch, Triton or ExecuTorch symbols.

Every module of the core outside the seams, of the plugins and of ``bench/`` is parsed; a name
starting with ``_`` reached from ``torch``, ``triton`` or ``executorch`` (an attribute chain,
a module path in an import, or a name imported from one), or a private ``ExportedProgram``
attribute, fails the test unless the allow-list below says why it is fine.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "triton", "executorch")
PROGRAM_PRIVATES = {"_graph_module", "_state_dict", "_constants", "_example_inputs", "_graph_signature",
                    "_verifiers", "_module_call_graph", "_range_constraints"}
ALLOWED = {
    # Public, documented entry points that live in a private-looking module.
    "torch._inductor.aoti_compile_and_package": "torch's documented AOTI entry point",
    "torch._inductor.aoti_load_package": "torch's documented AOTI loader",
    # A diagnostic script that probes ExecuTorch's eager kernels; never imported by the library.
    "bench/chunked_dequant_eager.py: executorch.backends.cuda.quantize_op_dispatch.int4_dispatch._DEQUANT_N_THRESHOLD":
        "measures ExecuTorch's fixed row chunking",
}


def modules():
    for folder in ("aoti_hooks", "plugins", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "seams" not in path.relative_to(ROOT).parts[:2]:
                yield path


def _chain(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def private_uses(path: pathlib.Path) -> set[str]:
    """``dotted.name`` of every private torch/Triton/ExecuTorch symbol ``path`` reaches."""
    tree = ast.parse(path.read_text())
    roots: dict[str, str] = {}  # local name -> the package it stands for
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in PACKAGES:
                    roots[alias.asname or top] = alias.name if alias.asname else top
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if any(part.startswith("_") for part in name.split(".")):
                    found.add(name)
                roots[alias.asname or alias.name] = name
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain = _chain(node)
        if chain is None:
            continue
        if chain[0] in roots:
            dotted = ".".join([roots[chain[0]], *chain[1:]])
            if any(part.startswith("_") and not part.startswith("__") for part in dotted.split(".")):
                found.add(dotted)
        elif node.attr in PROGRAM_PRIVATES:
            found.add(f"ExportedProgram.{node.attr}")
    # Only the longest chain of each use: ``torch._inductor.x`` reports once, not also ``torch._inductor``.
    return {name for name in found if not any(other != name and other.startswith(name + ".") for other in found)}


@pytest.mark.parametrize("path", list(modules()), ids=lambda path: str(path.relative_to(ROOT)))
def test_only_the_seams_touch_private_symbols(path):
    relative = path.relative_to(ROOT).as_posix()
    unexplained = sorted(name for name in private_uses(path)
                         if name not in ALLOWED and f"{relative}: {name}" not in ALLOWED)
    assert not unexplained, f"{relative} reaches private symbols {unexplained}; move that code into aoti_hooks/seams/"


def test_the_rule_sees_each_kind_of_private_use(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "import torch\nimport torch._dynamo as dyn\nfrom executorch.exir._serialize import x\n"
        "from torch._inductor import config\n"
        "def f(program):\n    torch._C._foo()\n    dyn.reset()\n    config.freezing\n"
        "    return program._constants, torch.ops.aten.mm\n")
    assert private_uses(source) == {"torch._dynamo.reset", "executorch.exir._serialize.x", "torch._C._foo",
                                    "torch._inductor.config.freezing", "ExportedProgram._constants"}


SEAMS = sorted({path.stem for path in (ROOT / "aoti_hooks" / "seams").glob("*.py")} - {"__init__", "patching"}
               | {path.parent.name for path in (ROOT / "aoti_hooks" / "seams").glob("*/__init__.py")})


@pytest.mark.parametrize("name", SEAMS)
def test_every_seam_has_a_check_that_doctor_runs(name):
    import importlib

    module = importlib.import_module(f"aoti_hooks.seams.{name}")
    results = module.check()
    assert all(isinstance(symbol, str) and problem is None for symbol, problem in results), results
    doctor = (ROOT / "aoti_hooks" / "tools" / "doctor.py").read_text()
    assert f"{name}.check()" in doctor, f"aoti-hooks doctor does not run seams.{name}.check()"
