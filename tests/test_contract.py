"""Keep the contract, its docs and its tests in step (datasette's conformance tests)."""

import inspect
import pathlib
import re

import pytest

from aoti_hooks import hookspecs

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "aoti_hooks_spec"))
REQUIRED = {"move_program_to_device", "pre_constant_dedup", "serialize_constant", "clone_lifted_buffer",
            "autotune_arguments", "compile_context", "autotune_configs", "aoti_options"}


def test_the_contract_has_every_required_hook():
    assert REQUIRED <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_are_typed_and_documented(hook):
    function = getattr(hookspecs, hook)
    signature = inspect.signature(function)
    assert "session" in signature.parameters
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())
    assert signature.return_annotation is not inspect.Signature.empty
    doc = inspect.getdoc(function) or ""
    assert len(doc.split()) >= 25, f"{hook} needs a docstring saying when, what it gets, what its return means"


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_have_a_row_in_the_readme(hook):
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\| `{hook}\(", readme, re.MULTILINE), f"README.md has no hook-table row for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_have_tests(hook):
    here = pathlib.Path(__file__).name
    tests = [path for path in (ROOT / "tests").rglob("test_*.py") if path.name != here]
    assert any(re.search(rf"def {hook}\(", path.read_text()) for path in tests), f"no test implements {hook}"
