"""Keep the contract, its docs and its tests in step (datasette's conformance tests)."""

import inspect
import pathlib
import re

import pytest

from aoti_hooks.core import hookspecs

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "aoti_hooks_spec"))
SESSION_HOOKS = [hook for hook in HOOKS if hook not in hookspecs.CLI_HOOKS]
REQUIRED = {"move_program_to_device", "pre_constant_dedup", "serialize_constant", "clone_lifted_buffer",
            "autotune_arguments", "compile_context", "autotune_configs", "aoti_options"}


def test_the_contract_has_every_required_hook():
    assert REQUIRED <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_are_typed_and_documented(hook):
    function = getattr(hookspecs, hook)
    signature = inspect.signature(function)
    assert ("session" in signature.parameters) == (hook not in hookspecs.CLI_HOOKS)
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())
    assert signature.return_annotation is not inspect.Signature.empty
    doc = inspect.getdoc(function) or ""
    assert len(doc.split()) >= 25, f"{hook} needs a docstring saying when, what it gets, what its return means"


def test_the_hook_page_is_made_from_the_contract():
    """pytest's reference is made from its hookspecs: docs/hooks.md is what `hooks_doc` renders (``make docs``)."""
    from aoti_hooks.tools import hooks_doc

    assert (ROOT / "docs" / "hooks.md").read_text() == hooks_doc.render(), "docs/hooks.md is stale: run make docs"
    documented = re.findall(r"^## `(\w+)\(", hooks_doc.render(), re.MULTILINE)
    assert documented == [name for name, value in vars(hookspecs).items() if hasattr(value, "aoti_hooks_spec")]
    for hook in HOOKS:  # each section of each entry is there, under its own heading
        entry = hooks_doc.entry(hook)
        assert all(f"**{section}**:" in entry for section in hooks_doc.SECTIONS), hook


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_have_tests(hook):
    """Some test implements the hook as a plugin does (``@hookimpl`` on ``def hook(``), not merely names it."""
    here = pathlib.Path(__file__).name
    tests = [path for path in (ROOT / "tests").rglob("test_*.py") if path.name != here]
    implemented = re.compile(rf"@(?:aoti_hooks\.)?hookimpl[^\n]*\n(?:[ \t]*@[^\n]*\n)*[ \t]*def {hook}\(")
    assert any(implemented.search(path.read_text()) for path in tests), f"no test implements {hook} with @hookimpl"


@pytest.mark.parametrize("hook", SESSION_HOOKS)
def test_the_facade_names_each_hook_after_it(hook):
    from aoti_hooks.core.hooks import Hooks

    assert callable(getattr(Hooks, hook, None)), f"Hooks has no method {hook}"


def test_how_answers_combine_is_read_from_the_contract():
    first = {hook for hook in HOOKS if getattr(hookspecs, hook).aoti_hooks_spec.get("firstresult")}
    assert first == {"move_program_to_device", "clone_lifted_buffer", "clone_autotune_argument", "serialize_constant",
                     "autotune_example", "choice_example", "autotune_arguments"}  # a wrapper's yield: the run's result
    assert set(hookspecs.CHAINED) == {"autotune_configs", "compiled_configs"}


def test_a_plugin_reads_its_own_options_and_state_from_the_session_and_tracing_logs_each_call(
        register, caplog, monkeypatch):
    import torch

    import aoti_hooks
    from aoti_hooks import Option, hookimpl, parse_size

    seen = {}

    class Mine:
        OPTIONS = (Option("limit", parse_size, "1KiB", "a size"),)

        @hookimpl
        def serialize_constant(self, name, tensor, session):
            state = session.state("mine")
            state["calls"] = state.get("calls", 0) + 1
            seen[name] = (session.options_for("mine"), state)
            return None

    register("mine", Mine())
    monkeypatch.setenv("AOTI_HOOKS_TRACE", "1")
    with aoti_hooks.session(["mine"], mine={"limit": "2KiB"}) as session, caplog.at_level("WARNING", "aoti_hooks.trace"):
        session.hooks.serialize_constant("w", torch.zeros(2, 3))
        session.hooks.serialize_constant("v", torch.zeros(1))
    assert seen["w"][0] == {"limit": 2048} and seen["v"][1] is session.state("mine") and seen["v"][1]["calls"] == 2
    assert session.options_for("placement") == {}  # the built-in plugin has no options
    # pluggy's hook-call monitoring: the hook, its arguments in brief, the plugins in call order, the answer
    assert "serialize_constant(name='w', tensor=Tensor(2, 3) torch.float32 cpu) [placement, mine] -> None" in caplog.text


def test_a_hook_that_asks_for_options_or_state_is_told_where_they_are(register):
    import pytest

    import aoti_hooks
    from aoti_hooks import AotiHooksError, hookimpl

    class Old:
        @hookimpl
        def serialize_constant(self, name, tensor, options, state):
            return None

    register("old", Old())
    with pytest.raises(AotiHooksError, match=r"read them with session.options_for\(name\) and session.state\(name\)"):
        aoti_hooks.session(["old"])


def test_a_hook_is_called_with_exactly_the_arguments_its_function_names():
    """No generated code: pluggy reads the arguments from the plugin's own function (``__wrapped__``)."""
    from aoti_hooks.core.hooks import bound, new_pluggy_manager
    from aoti_hooks.core.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def claim_tensors(self, candidates, session):
            return {}

    pm = new_pluggy_manager()
    copy = bound("p", Plugin(), pm)
    assert inspect.signature(copy.claim_tensors).parameters.keys() == {"candidates", "session"}
    assert copy.claim_tensors.__code__.co_varnames[:1] == ("args",)  # one wrapper, not a generated function


def test_no_module_shares_a_name_with_a_public_function_or_a_builtin():
    """``import aoti_hooks.session`` once gave the function; ``compile.py`` shadowed a builtin."""
    import builtins
    import pkgutil

    import aoti_hooks

    modules = {module.name for module in pkgutil.iter_modules(aoti_hooks.__path__)}
    assert not modules & set(aoti_hooks.__all__)
    assert not modules & set(dir(builtins))
    assert {"core", "hosts", "placement", "seams", "tools", "plugin", "executorch"} <= modules


def test_the_core_imports_no_plugin():
    """Plugins own their subcommands and kernel tables; the core reaches them only through hooks."""
    import ast

    for path in (ROOT / "aoti_hooks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [name for name in names if name.startswith("aoti_hooks_")], f"{path} imports a plugin"


def test_a_report_line_cuts_a_long_value_and_as_dict_keeps_it():
    from aoti_hooks.core.types import LINE_VALUE_CHARS, Report

    report = Report()
    rejected = "; ".join(f"BLOCK_M={m},num_warps=4 (cosine 0.0{m} < 0.999)" for m in range(100))
    report.set("sdpa_configs", "kernel.rejected_numerics", rejected)
    (line,) = str(report).splitlines()
    assert len(line) < LINE_VALUE_CHARS + 80 and line.endswith("more (as_dict() lists them)")
    assert report.as_dict()["sdpa_configs"]["kernel.rejected_numerics"] == rejected
