"""Real AOTI compiles on the CPU: the entry point, every hook's seam, and nothing lost."""

import contextlib
from pathlib import Path

import pytest
import torch
from helpers import INDUCTOR_CONFIGS, decode_inputs, export_cache_model, package_constants, run_steps

import aoti_hooks
from aoti_hooks import AotiHooksError, PluginError, hookimpl
from aoti_hooks.seams import inductor


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    """The stock export of the cache model: package, constants, outputs over 4 decode steps."""
    model, program = export_cache_model()
    path = torch._inductor.aoti_compile_and_package(
        program, package_path=str(tmp_path_factory.mktemp("stock") / "stock.pt2"), inductor_configs=INDUCTOR_CONFIGS
    )
    outputs = run_steps(torch._inductor.aoti_load_package(path), decode_inputs())
    return {"path": path, "constants": package_constants(path), "outputs": outputs}


def eager_outputs():
    model, _ = export_cache_model()
    with torch.no_grad():
        return run_steps(model, decode_inputs())


def assert_same_artifact(path, stock):
    assert package_constants(path) == stock["constants"]
    outputs = run_steps(torch._inductor.aoti_load_package(path), decode_inputs())
    for got, want, eager in zip(outputs, stock["outputs"], eager_outputs()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(got, eager)


def test_stock_outputs_change_with_each_step(stock):
    """Guards the comparisons below: four distinct decode steps, not one repeated value."""
    assert len({tuple(output.tolist()) for output in stock["outputs"]}) == 4


def test_without_plugins_it_is_the_stock_compile(stock, tmp_path):
    _, program = export_cache_model()
    before = {key: value.clone() for key, value in program.state_dict.items()}
    path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "plain.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    assert not inductor.PATCHES.active
    assert_same_artifact(path, stock)
    for key, value in program.state_dict.items():
        assert torch.equal(value, before[key])


class Recorder:
    """Implements every compile-time hook, answers 'no opinion', and records each call."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def move_program_to_device(self, program, device, session):
        self.calls.append(("move_program_to_device", str(device)))

    @hookimpl
    def pre_constant_dedup(self, name, tensor, other_name, other, session):
        self.calls.append(("pre_constant_dedup", name, other_name))

    @hookimpl
    def serialize_constant(self, name, tensor, session):
        self.calls.append(("serialize_constant", name))

    @hookimpl
    def clone_lifted_buffer(self, tensor, session):
        self.calls.append(("clone_lifted_buffer", tuple(tensor.shape)))

    @hookimpl
    def aoti_options(self, inductor_options, session):
        self.calls.append(("aoti_options", dict(inductor_options)))
        return {"aot_inductor.package_constants_in_so": True}

    @hookimpl
    def compile_context(self, session):
        @contextlib.contextmanager
        def context():
            self.calls.append(("enter", aoti_hooks.current_session() is session))
            self.program_seen = session.program
            yield
            self.calls.append(("exit",))
            session.report.add("recorder", "compiles")

        return context()


def test_every_hook_runs_in_a_real_compile_and_the_artifact_is_stock(stock, tmp_path, register):
    recorder = register("recorder", Recorder())
    _, program = export_cache_model()
    with aoti_hooks.session(["recorder"], target="local") as session:
        path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "rec.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    names = [call[0] for call in recorder.calls]
    assert names[:3] == ["move_program_to_device", "aoti_options", "enter"] and names[-1] == "exit"
    assert recorder.calls[0] == ("move_program_to_device", "cpu")
    assert recorder.calls[1] == ("aoti_options", INDUCTOR_CONFIGS)
    assert recorder.calls[2] == ("enter", True)
    assert recorder.program_seen is program  # the program being compiled (already on its device)
    assert sorted(c for c in recorder.calls if c[0] == "clone_lifted_buffer") == [("clone_lifted_buffer", (4, 8))] * 2 + [("clone_lifted_buffer", (8,))]
    assert {c[1] for c in recorder.calls if c[0] == "serialize_constant"} == set(stock["constants"]) == {"w", "c0", "c1"}
    report = session.report.as_dict()
    assert report.pop("recorder") == {"compiles": 1}
    hook_time = report.pop("time")  # seconds in each plugin's hooks (`core.hooks.TIME`)
    assert {"recorder.move_program_to_device_s", "recorder.serialize_constant_s"} <= set(hook_time)
    assert all(isinstance(seconds, float) and seconds >= 0 for seconds in hook_time.values())
    # the package mapped its library in instead of reading it (`seams.inductor.serialization`)
    assert report == {"host": {"package_files_mapped_bytes": report["host"]["package_files_mapped_bytes"]}}
    assert 1 << 20 <= report["host"]["package_files_mapped_bytes"] <= Path(path).stat().st_size
    assert_same_artifact(path, stock)


class Rewriter:
    """Changes what gets written, to prove both value seams reach the artifact."""

    @hookimpl
    def clone_lifted_buffer(self, tensor, session):
        return torch.full_like(tensor, 7.0) if tensor.shape == (4, 8) else None

    @hookimpl
    def serialize_constant(self, name, tensor, session):
        return torch.full_like(tensor, 3.0) if name == "w" else None


def test_clone_and_serialize_hooks_decide_the_written_bytes(tmp_path, register):
    register("rewriter", Rewriter())
    _, program = export_cache_model()
    path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "rw.pt2"), plugins=["rewriter"], inductor_configs=INDUCTOR_CONFIGS)
    constants = package_constants(path)
    as_floats = lambda raw: torch.frombuffer(bytearray(raw), dtype=torch.float32)
    assert torch.equal(as_floats(constants["c0"]), torch.full((32,), 7.0))
    assert torch.equal(as_floats(constants["c1"]), torch.full((32,), 7.0))
    assert torch.equal(as_floats(constants["w"]), torch.full((64,), 3.0))
    assert torch.equal(program.state_dict["c0"], torch.zeros(4, 8))  # the user's buffers are untouched


class TiedViews(torch.nn.Module):
    """Two parameters over one storage: stock Inductor merges them into one constant."""

    def __init__(self):
        super().__init__()
        base = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
        self.a = torch.nn.Parameter(base)
        self.b = torch.nn.Parameter(base.view(8, 8))

    def forward(self, x):
        return x @ self.a + (x * 2) @ self.b


class KeepApart:
    def __init__(self):
        self.asked = []

    @hookimpl
    def pre_constant_dedup(self, name, tensor, other_name, other, session):
        self.asked.append((name, other_name))
        return False


def test_pre_constant_dedup_keeps_constants_apart(tmp_path, register):
    program = torch.export.export(TiedViews(), (torch.randn(2, 8),))
    stock = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "s.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    assert set(package_constants(stock)) == {"a"}
    keeper = register("keep", KeepApart())
    path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "k.pt2"), plugins=["keep"], inductor_configs=INDUCTOR_CONFIGS)
    assert keeper.asked == [("b", "a")]
    constants = package_constants(path)
    assert set(constants) == {"a", "b"} and constants["a"] == constants["b"]
    x = torch.randn(2, 8)
    torch.testing.assert_close(torch._inductor.aoti_load_package(path)(x), TiedViews()(x))


class FailsInSerialize:
    @hookimpl
    def serialize_constant(self, name, tensor, session):
        raise RuntimeError("disk on fire")


def test_a_plugin_failing_mid_compile_is_named_and_torch_is_restored(tmp_path, register):
    register("fails", FailsInSerialize())
    before = {(owner, attribute): vars(owner).get(attribute) for owner, attribute in inductor.patched_attributes()}
    _, program = export_cache_model()
    with pytest.raises(PluginError, match="plugin 'fails' failed in hook 'serialize_constant'") as caught:
        aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "f.pt2"), plugins=["fails"], inductor_configs=INDUCTOR_CONFIGS)
    assert "disk on fire" in str(caught.value.__cause__)
    for (owner, attribute), original in before.items():
        assert vars(owner).get(attribute) is original


def test_entry_point_argument_mistakes_are_one_sentence(register):
    _, program = export_cache_model()
    with pytest.raises(AotiHooksError, match="without plugins"):
        aoti_hooks.aoti_compile_and_package(program, target="h100")
    register("keep", KeepApart())
    with aoti_hooks.session(["keep"]):
        with pytest.raises(AotiHooksError, match="inside an active aoti_hooks.session"):
            aoti_hooks.aoti_compile_and_package(program, plugins=["keep"])
    if not torch.cuda.is_available():
        with pytest.raises(AotiHooksError, match="no CUDA device is visible"):
            aoti_hooks.aoti_compile_and_package(program, plugins=["keep"], target="rtx5090")


# --- Inductor's caches see what the plugins change ------------------------------------------------


class ConfigPruner:
    """Implements compiled_configs (a hook that changes generated code); answers 'no opinion'."""

    @hookimpl
    def compiled_configs(self, kernel_name, compiled, target):
        return None


def test_sessions_that_change_generated_code_get_their_own_autotune_cache_entries(register):
    """Inductor keys a kernel's cached autotune winner by its source; configs a plugin drops after
    compiling are not in the source. Such a session keys the cache also by its plugins, options and
    target; a session whose plugins change no generated code keeps the stock key."""
    from torch._inductor.runtime.autotune_cache import AutotuneCache

    register("pruner", ConfigPruner())
    source = "/cache/c5/cxyzsourcehash.py"
    stock = AutotuneCache._prepare_key(source)
    with aoti_hooks.session(["kv_elide"]):
        assert AutotuneCache._prepare_key(source) == stock
    with aoti_hooks.session(["pruner"], target="rtx4090"):
        rtx4090 = AutotuneCache._prepare_key(source)
    with aoti_hooks.session(["pruner"], target="rtx4090"):
        assert AutotuneCache._prepare_key(source) == rtx4090  # the same plugins and target hit their own entry
    with aoti_hooks.session(["pruner"], target="h100"):
        h100 = AutotuneCache._prepare_key(source)
    assert len({stock, rtx4090, h100}) == 3
    assert AutotuneCache._prepare_key(source) == stock  # outside a session: stock, patches gone
    import threading

    seen = {}
    with aoti_hooks.session(["pruner"], target="rtx4090"):
        thread = threading.Thread(target=lambda: seen.update(key=AutotuneCache._prepare_key(source)))
        thread.start()
        thread.join()
    assert seen["key"] == stock  # another thread's stock compile keeps the stock key


def test_a_warm_cache_directory_gives_stock_and_plugin_compiles_their_own_results(stock, tmp_path, monkeypatch):
    """Stock, then kv_elide, then stock again in one fresh cache directory: the plugin still claims
    every cache (its hooks ran, no cached result skipped them) and every artifact equals stock."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "warm"))
    paths = []
    for index, plugins in enumerate(([], ["kv_elide"], [])):
        _, program = export_cache_model()
        with aoti_hooks.session(plugins, kv_elide={"min_bytes": 1}) if plugins else aoti_hooks.session() as session:
            paths.append(aoti_hooks.aoti_compile_and_package(
                program, str(tmp_path / f"{index}.pt2"), inductor_configs=INDUCTOR_CONFIGS))
        claimed = session.report.get("kv_elide").get("tensors_claimed", 0)
        assert claimed == (2 if plugins else 0)
    assert any((tmp_path / "warm").iterdir())  # the compiles did share the directory
    for path in paths:
        assert_same_artifact(path, stock)
