"""No import cycle inside ``aoti_hooks``, counting imports inside functions too.

A deferred import (``from .x import y`` inside a function) can hide a cycle that breaks when
someone moves it to the top; imports under ``if TYPE_CHECKING:`` are for type hints only and
do not count. The active session lives in the leaf module ``aoti_hooks.active`` so that the
seams never need the session machinery.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "aoti_hooks"


def module_names():
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


class Imports(ast.NodeVisitor):
    def __init__(self, module, path, known):
        self.module, self.known, self.found = module, known, set()
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit_If(self, node):
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node):
        self.found.update(alias.name for alias in node.names if alias.name in self.known)

    def visit_ImportFrom(self, node):
        base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1] if node.level else []
        name = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{name}.{alias.name}"
            target = full if full in self.known else name
            if target in self.known and target != self.module:
                self.found.add(target)


def test_no_import_cycle_in_the_core():
    known = module_names()
    graph = {}
    for module, path in known.items():
        visitor = Imports(module, path, known)
        visitor.visit(ast.parse(path.read_text()))
        graph[module] = visitor.found
    cycles, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(stack[stack.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported, stack + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert graph["aoti_hooks.seams.inductor"] and cycles == []
