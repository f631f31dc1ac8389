"""Every seam's patches: in only while a session is active, restored on exceptions and across threads,
refused in one sentence when a symbol is missing or changed; one lifecycle for every process-wide change."""

import threading
from types import SimpleNamespace

import pytest
import torch

import aoti_hooks
from aoti_hooks import SeamError, hookimpl
from aoti_hooks.seams import inductor


def snapshot():
    # .get: a patched module-level name may shadow a builtin, which is then absent from the module
    return {(owner, attribute): vars(owner).get(attribute) for owner, attribute in inductor.patched_attributes()}


def assert_restored(before):
    for (owner, attribute), original in before.items():
        assert vars(owner).get(attribute) is original, f"{owner.__name__}.{attribute} was not restored"


class Marker:
    """serialize_constant answers with a marker tensor, so a routed call is visible."""

    def __init__(self, value):
        self.value = value

    @hookimpl
    def serialize_constant(self, name, tensor, session):
        return torch.full_like(tensor, self.value)


class FakeGraph:
    """The attributes GraphLowering.get_original_value_of_constant reads, on a plain object."""

    def __init__(self):
        self.allocated_constant_name = {"w": "w"}
        self.constants = {"w": torch.zeros(3)}
        self.module = SimpleNamespace(meta={})


fake_graph = FakeGraph


def read_constant(graph):
    from torch._inductor.graph import GraphLowering

    return GraphLowering.get_original_value_of_constant(graph, "w")


def test_patches_are_in_only_while_a_session_is_active(register):
    register("marker", Marker(1.0))
    before = snapshot()
    with aoti_hooks.session(["marker"]):
        assert all(vars(owner).get(attribute) is not original for (owner, attribute), original in before.items())
        assert read_constant(fake_graph()).tolist() == [1.0, 1.0, 1.0]
    assert_restored(before)
    assert read_constant(fake_graph()).tolist() == [0.0, 0.0, 0.0]


def test_nested_sessions_see_only_themselves_and_restore(register):
    register("one", Marker(1.0))
    register("two", Marker(2.0))
    before = snapshot()
    with aoti_hooks.session(["one"]) as outer:
        with aoti_hooks.session(["two"]) as inner:
            assert aoti_hooks.current_session() is inner
            assert read_constant(fake_graph()).tolist() == [2.0] * 3
        assert aoti_hooks.current_session() is outer
        assert read_constant(fake_graph()).tolist() == [1.0] * 3
    assert aoti_hooks.current_session() is None
    assert_restored(before)


def test_an_exception_inside_a_session_restores_everything(register):
    register("one", Marker(1.0))
    before = snapshot()
    with pytest.raises(RuntimeError, match="midway"):
        with aoti_hooks.session(["one"]):
            with aoti_hooks.session(["one"]):
                raise RuntimeError("midway")
    assert aoti_hooks.current_session() is None
    assert_restored(before)


def test_two_threads_with_overlapping_sessions_do_not_see_each_other(register):
    register("one", Marker(1.0))
    register("two", Marker(2.0))
    before = snapshot()
    entered = threading.Barrier(3, timeout=30)
    leave = threading.Event()
    seen = {}

    def worker(name, value):
        with aoti_hooks.session([name]):
            entered.wait()
            leave.wait()
            seen[name] = read_constant(fake_graph()).tolist()
        seen[name + " after"] = read_constant(fake_graph()).tolist()

    threads = [threading.Thread(target=worker, args=args) for args in (("one", 1.0), ("two", 2.0))]
    for thread in threads:
        thread.start()
    entered.wait()
    seen["bystander"] = read_constant(fake_graph()).tolist()  # this thread has no session
    leave.set()
    for thread in threads:
        thread.join()
    assert seen["one"] == [1.0] * 3 and seen["two"] == [2.0] * 3 and seen["bystander"] == [0.0] * 3
    assert seen["one after"] == [0.0] * 3 and seen["two after"] == [0.0] * 3
    assert_restored(before)


def test_a_graph_touched_by_a_session_finds_it_from_a_worker_thread(register):
    """Inductor serializes constants from a thread pool, where context variables are empty."""
    register("one", Marker(1.0))
    graph = fake_graph()
    with aoti_hooks.session(["one"]):
        assert read_constant(graph).tolist() == [1.0] * 3  # binds graph -> session
        result = {}
        thread = threading.Thread(target=lambda: result.update(value=read_constant(graph).tolist()))
        thread.start()
        thread.join()
        assert result["value"] == [1.0] * 3
        unbound = {}
        thread = threading.Thread(target=lambda: unbound.update(value=read_constant(fake_graph()).tolist()))
        thread.start()
        thread.join()
        assert unbound["value"] == [0.0] * 3


def test_a_missing_symbol_fails_the_session_start_and_installs_nothing(register, monkeypatch):
    import torch._inductor.compile_fx as compile_fx

    register("one", Marker(1.0))
    before = {key: value for key, value in snapshot().items() if key[1] != "clone_preserve_strides"}
    monkeypatch.delattr(compile_fx, "clone_preserve_strides")
    with pytest.raises(SeamError, match=r"torch._inductor.compile_fx.clone_preserve_strides is missing .*torch 2.11 through 2.15"):
        with aoti_hooks.session(["one"]):
            pass
    assert not inductor.PATCHES.active
    assert_restored(before)


def test_a_changed_signature_is_named(monkeypatch):
    import torch._inductor.graph as graph

    monkeypatch.setattr(graph, "is_same_tensor", lambda a, b, c: True)
    problems = dict(inductor.check())
    assert "expected ('data', 'value')" in problems["torch._inductor.graph.is_same_tensor"]


def test_an_unsupported_torch_version_is_refused(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.10.0")
    with pytest.raises(SeamError, match="torch 2.10.0 is not supported; aoti-hooks supports torch 2.11 through 2.15"):
        with aoti_hooks.session([]):
            pass


# --- one lifecycle for every process-wide change ------------------------------------------------


def test_every_patch_set_is_held_only_while_needed_and_shared_sets_are_forgotten():
    """Sessions, shared per-object sets and the ExecuTorch integration go through one mechanism:
    `patching.active()` names what is in, and nothing stays behind a session or in the shared table."""
    pytest.importorskip("executorch.backends.aoti.aoti_backend")  # the integration's set is one of them
    from aoti_hooks.seams import executorch as et_seam, patching

    was_installed = et_seam.installed()
    import aoti_hooks.executorch  # installs the integration on its first import; put back as found below

    class Owner:
        value = "stock"

    baseline = set(patching.active())
    assert not any("Inductor" in label for label in baseline)
    with aoti_hooks.session([]):
        assert inductor.PATCHES.label in patching.active()
        with patching.shared(("test", 1), lambda: [patching.Patch(Owner, "value", lambda old: old + "+ours")], "owner"):
            with patching.shared(("test", 1), lambda: pytest.fail("a second holder builds nothing"), "owner"):
                assert Owner.value == "stock+ours" and "owner" in patching.active()
            assert Owner.value == "stock+ours"
        assert vars(Owner)["value"] == "stock"
        assert ("test", 1) not in patching._shared
    assert set(patching.active()) == baseline
    with pytest.raises(RuntimeError, match="boom"):
        with patching.shared(("test", 2), lambda: [patching.Patch(Owner, "value", lambda old: "x")], "owner2"):
            raise RuntimeError("boom")
    assert Owner.value == "stock" and ("test", 2) not in patching._shared and set(patching.active()) == baseline

    aoti_hooks.executorch.install()
    assert et_seam.INTEGRATION.label in patching.active()
    et_seam.uninstall()
    assert et_seam.INTEGRATION.label not in patching.active() and not et_seam.installed()
    from executorch.backends.aoti.aoti_backend import AotiBackend
    assert AotiBackend.preprocess.__func__.__module__.startswith("executorch")  # the stock method is back
    if was_installed:
        aoti_hooks.executorch.install()
