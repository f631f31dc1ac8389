"""Plugins found through entry points, named per session, called in the named order, disabled by
name; their hooks combined as the contract says (first result, all results, chained, wrapper),
their failures named, their seconds kept."""

import pathlib
import time

import pytest

import aoti_hooks
from aoti_hooks import AotiHooksError, PluginError, hookimpl
from aoti_hooks.core.registry import InstalledPlugin, plugin_registry


class Echo:
    """Answers move_program_to_device with its own name, so the call order is visible."""

    def __init__(self, name, answer=True):
        self.name, self.answer, self.seen = name, answer, []

    @hookimpl
    def move_program_to_device(self, program, device, session):
        self.seen.append(program)
        return f"{self.name}:{program}" if self.answer else None


def test_installed_plugins_are_found_through_entry_points():
    installed = plugin_registry.installed()
    for name in ("kv_elide", "chunked_dequant", "sdpa_configs"):
        assert installed[name].distribution == "aoti-hooks-" + name.replace("_", "-")
        assert installed[name].version == aoti_hooks.__version__


def test_unknown_plugin_lists_installed_and_the_pip_line(monkeypatch):
    with pytest.raises(AotiHooksError) as caught:
        aoti_hooks.session(["kv_elid"])  # a typo: the close name first, no install advice
    message = str(caught.value)
    assert "unknown plugin 'kv_elid' (did you mean 'kv_elide'?); installed: chunked_dequant" in message
    assert "pip install" not in message
    with pytest.raises(AotiHooksError) as caught:
        aoti_hooks.session(["flash_prefill"])
    # Nothing is published: the advice is what installs it from here (its wheel; a checkout's folder below).
    assert ("install its wheel with: pip install --find-links <folder with the aoti-hooks wheels> "
            "aoti-hooks-flash-prefill") in str(caught.value)
    from aoti_hooks.core.registry import how_to_install

    folder = pathlib.Path(aoti_hooks.__file__).resolve().parent.parent / "plugins" / "const_offload"
    assert how_to_install("const_offload") == f"install it from this checkout with: pip install {folder}"
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "23.0.1" if name == "pip" else real(name))
    with pytest.raises(AotiHooksError, match=r"pip 23.0.1 here installs 'aoti-hooks\[<plugin>\]' without the plugin.*"
                                             r"run pip install -U pip first"):
        aoti_hooks.session(["flash_prefill"])


def test_plugin_named_twice(register):
    register("echo", Echo("echo"))
    with pytest.raises(AotiHooksError, match="plugin 'echo' is named twice"):
        aoti_hooks.session(["echo", "echo"])


def test_options_for_a_plugin_not_named(register):
    register("echo", Echo("echo"))
    with pytest.raises(AotiHooksError, match="not in the plugin list"):
        aoti_hooks.session(["echo"], other={"x": 1})


def test_only_named_plugins_run_in_the_named_order(register):
    first, second, idle = register("first", Echo("first")), register("second", Echo("second")), register("idle", Echo("idle"))
    session = aoti_hooks.session(["second", "first"])
    assert session.hooks.move_program_to_device("ep", "cpu") == "second:ep"
    assert second.seen == ["ep"] and first.seen == [] and idle.seen == []
    first.answer = True
    second.answer = False
    assert session.hooks.move_program_to_device("ep", "cpu") == "first:ep"


def test_disable_env_blocks_a_named_plugin_with_a_warning(register, monkeypatch):
    register("first", Echo("first"))
    register("second", Echo("second"))
    monkeypatch.setenv("AOTI_HOOKS_DISABLE", "second, other")
    with pytest.warns(UserWarning, match="plugin 'second' is disabled by AOTI_HOOKS_DISABLE"):
        session = aoti_hooks.session(["second", "first"])
    assert session.plugins == ["first"]


def test_a_plugin_that_fails_to_import_is_named(monkeypatch):
    original = plugin_registry.installed

    def failing_import():
        raise ImportError("no module named 'flash'")

    def installed_with_broken():
        found = original()
        found["broken"] = InstalledPlugin("broken", "aoti-hooks-broken", "0.1.0", failing_import)
        return found

    monkeypatch.setattr(plugin_registry, "installed", installed_with_broken)
    with pytest.raises(AotiHooksError, match=r"plugin 'broken' is installed but failed to import .*AOTI_HOOKS_DISABLE=broken"):
        aoti_hooks.session(["broken"])


class Raiser:
    @hookimpl
    def serialize_constant(self, name, tensor, session):
        raise KeyError("boom")


def test_a_plugin_raising_in_a_hook_names_plugin_and_hook_and_chains(register):
    register("raiser", Raiser())
    session = aoti_hooks.session(["raiser"])
    with pytest.raises(PluginError) as caught:
        session.hooks.serialize_constant("w", None)
    assert caught.value.plugin == "raiser" and caught.value.hook == "serialize_constant"
    assert "plugin 'raiser' failed in hook 'serialize_constant'" in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)


class AskOptions:
    def __init__(self, options):
        self.options = options

    @hookimpl
    def aoti_options(self, inductor_options, session):
        return self.options


def test_aoti_options_merge_conflicts_and_user_override(register):
    register("a", AskOptions({"max_autotune": True, "x": 1}))
    register("b", AskOptions({"max_autotune": True}))
    register("c", AskOptions({"max_autotune": False}))
    assert aoti_hooks.session(["a", "b"]).hooks.aoti_options({}) == {"max_autotune": True, "x": 1}
    with pytest.raises(AotiHooksError, match="plugins 'a' and 'c' ask for different values of Inductor option 'max_autotune'"):
        aoti_hooks.session(["a", "c"]).hooks.aoti_options({})
    with pytest.warns(UserWarning, match="'x'=2 set by you overrides 1 asked for by plugin 'a'"):
        assert aoti_hooks.session(["a"]).hooks.aoti_options({"x": 2})["x"] == 2


class Configs:
    def __init__(self, add):
        self.add = add

    @hookimpl
    def autotune_configs(self, kernel, configs, target, session):
        return [*configs, self.add] if self.add else None


def test_autotune_configs_are_chained_in_plugin_order(register):
    register("one", Configs("one"))
    register("none", Configs(None))
    register("two", Configs("two"))
    session = aoti_hooks.session(["two", "none", "one"])
    assert session.hooks.autotune_configs("kernel", ["stock"], session.target) == ["stock", "two", "one"]


class KeepSmall:
    def __init__(self, limit):
        self.limit = limit

    @hookimpl
    def compiled_configs(self, kernel_name, compiled, target, session):
        return [config for config, shared in compiled if shared <= self.limit]


class KeepStranger:
    @hookimpl
    def compiled_configs(self, kernel_name, compiled, target, session):
        return ["a config it was not given"]


def test_compiled_configs_are_chained_and_only_narrow(register):
    register("under300", KeepSmall(300))
    register("under150", KeepSmall(150))
    register("stranger", KeepStranger())
    a, b, c = object(), object(), object()
    session = aoti_hooks.session(["under300", "under150"])
    assert session.hooks.compiled_configs("k", [(a, 100), (b, 200), (c, 400)], session.target) == [a]
    with pytest.raises(PluginError, match="returned configs it was not given"):
        aoti_hooks.session(["stranger"]).hooks.compiled_configs("k", [(a, 100)], session.target)


class Wrap:
    def __init__(self, log, name, fail_after=False):
        self.log, self.name, self.fail_after = log, name, fail_after

    @hookimpl(wrapper=True)
    def autotune_arguments(self, args, session):
        self.log.append(f"{self.name} before {args}")
        try:
            result = yield
        finally:
            self.log.append(f"{self.name} after")
        if self.fail_after:
            raise RuntimeError("release failed")
        return result


def test_autotune_arguments_wrappers_nest_and_see_errors(register):
    log = []
    register("outer", Wrap(log, "outer"))
    register("inner", Wrap(log, "inner"))
    session = aoti_hooks.session(["outer", "inner"])
    assert session.hooks.autotune_arguments((1,), lambda: log.append("run") or 42) == 42
    assert log == ["outer before (1,)", "inner before (1,)", "run", "inner after", "outer after"]

    log.clear()

    def failing_run():
        raise ValueError("kernel failed")

    with pytest.raises(ValueError, match="kernel failed"):  # the stock error passes through unchanged
        session.hooks.autotune_arguments((1,), failing_run)
    assert log[-2:] == ["inner after", "outer after"]

    register("bad", Wrap(log, "bad", fail_after=True))
    with pytest.raises(PluginError, match="plugin 'bad' failed in hook 'autotune_arguments'"):
        aoti_hooks.session(["bad"]).hooks.autotune_arguments((), lambda: 1)


class Slow:
    """A plugin whose hooks take known time: 50 ms in serialize_constant, 30 ms around the run it wraps."""

    @hookimpl
    def serialize_constant(self, name, tensor):
        time.sleep(0.05)

    @hookimpl(wrapper=True)
    def autotune_arguments(self, args):
        time.sleep(0.03)
        return (yield)


def test_the_report_keeps_the_seconds_spent_in_each_plugins_hooks_without_what_a_wrapper_wraps(register):
    import torch

    register("slow", Slow())
    session = aoti_hooks.session(["slow"])
    session.hooks.serialize_constant("w", torch.zeros(1))
    session.hooks.serialize_constant("v", torch.zeros(1))
    assert session.hooks.autotune_arguments((), lambda: time.sleep(0.2) or 7) == 7
    spent = session.report.get("time")
    assert 0.1 <= spent["slow.serialize_constant_s"] < 0.2  # two calls
    assert 0.03 <= spent["slow.autotune_arguments_s"] < 0.15  # the 0.2 s run it wraps is not its time
    assert "placement.autotune_arguments_s" in spent  # the built-in plugin is timed like any other
    line = next(line for line in str(session.report).splitlines() if line.startswith("time: "))
    assert "slow.serialize_constant_s=0.1" in line and "placement" not in line  # under 5 ms: in the dict only


class PlainAutotune:
    @hookimpl
    def autotune_arguments(self, args, session):
        return None


def test_autotune_arguments_must_be_a_wrapper(register):
    register("plain", PlainAutotune())
    with pytest.raises(AotiHooksError, match="without @hookimpl\\(wrapper=True\\)"):
        aoti_hooks.session(["plain"])


class Misspelled:
    @hookimpl
    def serialise_constant(self, name, tensor, session):
        return None


def test_a_hook_that_is_not_in_the_contract_is_refused(register):
    register("misspelled", Misspelled())
    with pytest.raises(AotiHooksError, match="does not fit the aoti_hooks contract"):
        aoti_hooks.session(["misspelled"])


def test_report_counts_and_prints():
    report = aoti_hooks.Report()
    report.add("kv_elide", "buffers_elided")
    report.add("kv_elide", "buffers_elided")
    report.add("kv_elide", "elided_bytes", 3 * 2**20)
    assert report.as_dict() == {"kv_elide": {"buffers_elided": 2, "elided_bytes": 3 * 2**20}}
    assert str(report) == "kv_elide: buffers_elided=2, elided_bytes=3.0 MiB"
