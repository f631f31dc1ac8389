"""The tree's layers, read from every import: no circle anywhere, nothing importing upward.

Every import counts: at the top, inside functions (a deferred import hides a circle until
someone moves it up) and under ``if TYPE_CHECKING:`` (a type-only import is still a dependency
a reader must follow). The layers, bottom up:

- ``core``: the contract, its types, sessions, registry, options; imports only ``core``;
- ``seams``: adapters to private torch/Triton/ExecuTorch symbols; import only the core's leaves
  (``types``, ``errors``, ``active``) and each other, never what calls them;
- ``placement`` (the built-in plugin) and ``hosts`` (where compiles happen): the core and the seams;
- ``tools`` (the command line's cli, demo, bench) and the package's own modules (``aoti_hooks``,
  ``plugin``, ``executorch``): anything below.

Plugins import only ``aoti_hooks.plugin``.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aoti_hooks"
SEAM_MAY_IMPORT = {"aoti_hooks.core.types", "aoti_hooks.core.errors", "aoti_hooks.core.text", "aoti_hooks.core.active"}
MAY_IMPORT = {  # layer -> the layers it may import
    "core": {"core"},
    "seams": {"seams"},
    "placement": {"core", "seams", "placement"},
    "hosts": {"core", "seams", "hosts"},
    "tools": {"core", "seams", "placement", "hosts", "tools", "top"},
    "top": {"core", "seams", "placement", "hosts", "tools", "top"},
}


def module_names(package: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(module: str, path: pathlib.Path) -> set[str]:
    """Every dotted name ``path`` imports (``from a import b`` gives ``a.b``), type-only ones too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            names.update(f"{name}.{alias.name}" for alias in node.names)
    return names


def graph(package: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (a name resolves to the longest module it starts with)."""
    known = module_names(package)
    edges = {}
    for module, path in known.items():
        targets = set()
        for name in imported(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT and parts[1] != "top" else "top"


def cycles(edges: dict[str, set[str]]) -> list[str]:
    found, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                found.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found


PLUGINS = sorted(path for path in (ROOT / "plugins").glob("*/aoti_hooks_*") if path.is_dir())


def test_no_import_circle_anywhere_type_only_imports_included():
    edges = graph()
    assert "aoti_hooks.core.types" in edges["aoti_hooks.core.hookspecs"]  # the graph sees type-only imports
    assert cycles(edges) == []


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda path: path.name)
def test_no_import_circle_in_a_plugin(plugin):
    edges = graph(plugin)
    assert len(edges) >= 1 and cycles(edges) == []


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    upward = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if layer(module) == "seams" and layer(target) != "seams":
                allowed = target in SEAM_MAY_IMPORT
            else:
                allowed = layer(target) in MAY_IMPORT[layer(module)]
            if not allowed:
                upward.append(f"{module} -> {target}")
    return upward


def test_no_layer_imports_upward():
    assert upward_imports(graph()) == []


def test_the_rules_see_a_type_only_import_upward_and_its_circle(tmp_path):
    fake = tmp_path / "aoti_hooks"
    for folder in ("seams", "hosts"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "seams" / "x.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from ..hosts.aoti import compile_in_session\n")
    (fake / "hosts" / "aoti.py").write_text("def f():\n    from ..seams import x\n")
    edges = graph(fake)
    assert upward_imports(edges) == ["aoti_hooks.seams.x -> aoti_hooks.hosts.aoti"]
    assert cycles(edges) == ["aoti_hooks.hosts.aoti -> aoti_hooks.seams.x -> aoti_hooks.hosts.aoti"]


PLUGIN_SOURCES = sorted((ROOT / "plugins").glob("*/aoti_hooks_*/**/*.py"))


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_plugins_import_only_the_plugin_api(path):
    ours = sorted(name for name in imported("plugin", path)
                  if name.split(".")[0] == "aoti_hooks" and name not in ("aoti_hooks", "aoti_hooks.plugin")
                  and not name.startswith("aoti_hooks.plugin."))
    assert ours == [], f"{path.relative_to(ROOT)} imports {ours}; import them from aoti_hooks.plugin"


def test_the_plugin_api_exports_what_it_imports():
    import aoti_hooks.plugin as api

    assert sorted(api.__all__) == sorted(name for name in vars(api) if not name.startswith("_")
                                         and name not in ("annotations",))
