"""kv_elide on real CPU compiles: same outputs and constants as stock, user tensors untouched,
and the two stock failure modes of emptied caches kept as regression tests."""


import pytest
import torch
from aoti_hooks_kv_elide.selection import select_caches
from helpers import INDUCTOR_CONFIGS, package_constants, package_files, tensor_bytes

import aoti_hooks
from aoti_hooks import AotiHooksError
from aoti_hooks.placement import candidates
from aoti_hooks.placement.storage import host_snapshot
from aoti_hooks.seams.export import written_inputs
from aoti_hooks.tools.models.decoder import CONFIGS, build, decode_steps, export_decoder

CONFIG = CONFIGS["tiny"]  # caches: 2 KiB each, 6 of them, all the same shape
OPTIONS = {"min_bytes": "1KiB"}
NONZERO = "layers.1.attention.kv_cache.v_cache"
STEPS = decode_steps(CONFIG, 5, start=4)  # positions 4..8: attention also reads the initial cache rows


def make_model():
    """The tiny decoder; one cache starts non-zero (a cache-module buffer that must survive)."""
    model = build(CONFIG)
    model.get_buffer(NONZERO).fill_(0.25)
    return model


def run(fn):
    with torch.no_grad():
        return [fn(tokens, pos).clone() for tokens, pos in STEPS]


@pytest.fixture(scope="module")
def eager():
    return run(make_model())


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    program = export_decoder(make_model())
    path = torch._inductor.aoti_compile_and_package(
        program, package_path=str(tmp_path_factory.mktemp("stock") / "stock.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    return {"constants": package_constants(path), "outputs": run(torch._inductor.aoti_load_package(path))}


@pytest.mark.compile
def test_the_check_can_see_a_difference(eager):
    assert len({tuple(o.flatten().tolist()) for o in eager}) == len(STEPS)
    changed = build(CONFIG)  # the same model without the non-zero cache decodes differently
    assert not torch.allclose(run(changed)[0], eager[0])


@pytest.mark.compile
def test_kv_elide_export_equals_stock_and_eager(tmp_path, stock, eager, cpu_as_gpu):
    model = make_model()
    program = export_decoder(model)
    buffers_before = {name: tensor_bytes(b) for name, b in model.named_buffers()}
    state_before = {name: (t.untyped_storage().nbytes(), tensor_bytes(t)) for name, t in program.state_dict.items()}
    with aoti_hooks.session(["kv_elide"], kv_elide=OPTIONS) as session:
        path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "kv.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    report = session.report.get("kv_elide")
    assert report["tensors_claimed"] == 5  # six caches, one of them non-zero
    assert report["claimed_bytes"] == 5 * 2048
    assert session.report.get("placement")["kept_apart"] > 0
    constants = package_constants(path)
    assert constants == stock["constants"]
    assert constants[NONZERO] != bytes(len(constants[NONZERO]))
    outputs = run(torch._inductor.aoti_load_package(path))
    for got, want, reference in zip(outputs, stock["outputs"], eager):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5)
    assert {name: tensor_bytes(b) for name, b in model.named_buffers()} == buffers_before
    assert {name: (t.untyped_storage().nbytes(), tensor_bytes(t)) for name, t in program.state_dict.items()} == state_before


class FreesCaches:
    """A plugin that frees the caches itself and answers only ``hooks`` of what the core's placement does.

    It shows why each of those hooks exists: stock Inductor given freed caches breaks.
    """

    def __init__(self, *hooks):
        self.hooks = hooks

    @aoti_hooks.hookimpl
    def move_program_to_device(self, program, device, session):
        from aoti_hooks.placement import candidates
        from aoti_hooks.placement.storage import view_of
        from aoti_hooks.seams.export import moved_copy

        state = {}
        for candidate in candidates(program):
            if candidate.written and candidate.all_zeros:
                state[candidate.fqn] = view_of(torch.UntypedStorage(0), candidate.tensor)
                state[candidate.fqn].untyped_storage().resize_(0)
        session.state("frees")["storages"] = {id(t.untyped_storage()) for t in state.values()}
        return moved_copy(program, device, state)

    def _mine(self, session, tensor):
        return id(tensor.untyped_storage()) in session.state("frees")["storages"]

    @aoti_hooks.hookimpl
    def clone_lifted_buffer(self, tensor, session):
        if "clone_lifted_buffer" in self.hooks and self._mine(session, tensor):
            return torch.zeros_like(tensor)
        return None

    @aoti_hooks.hookimpl
    def serialize_constant(self, name, tensor, session):
        if "serialize_constant" in self.hooks and self._mine(session, tensor):
            return torch.zeros_like(tensor)
        return None


@pytest.mark.compile
def test_regression_emptied_caches_break_the_stock_clone(tmp_path, register):
    """Stock Inductor clones every buffer with as_strided: on a freed storage that is out of bounds."""
    register("frees", FreesCaches())
    program = export_decoder(make_model())
    with pytest.raises(RuntimeError, match=r"setStorage: .* out of bounds for storage of size 0"):
        aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "x.pt2"), plugins=["frees"],
                                            inductor_configs=INDUCTOR_CONFIGS)


@pytest.mark.compile
def test_regression_stock_dedup_collapses_emptied_caches(tmp_path, register, stock, eager):
    """Freed storages all have data_ptr 0: without the core's pre_constant_dedup Inductor merges the caches."""
    register("frees", FreesCaches("clone_lifted_buffer", "serialize_constant"))
    program = export_decoder(make_model())
    path = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "d.pt2"), plugins=["frees"],
                                               inductor_configs=INDUCTOR_CONFIGS)
    assert len(package_constants(path)) < len(stock["constants"])
    outputs = run(torch._inductor.aoti_load_package(path))
    assert not all(torch.allclose(got, want, atol=1e-4) for got, want in zip(outputs, eager))


class Cache(torch.nn.Module):
    """Hugging Face static-cache naming: key_cache_0/value_cache_0, written with index_copy_."""

    def __init__(self):
        super().__init__()
        self.register_buffer("key_cache_0", torch.zeros(64, 32))
        self.register_buffer("value_cache_0", torch.zeros(64, 32))
        self.register_buffer("codebook", torch.ones(64, 32))        # non-zero, written
        self.register_buffer("unused_zeros", torch.zeros(64, 32))   # zero, never written
        self.register_buffer("small_cache", torch.zeros(2, 4))      # written, under min_bytes
        self.weight = torch.nn.Parameter(torch.zeros(64, 32))       # zeros, but a parameter

    def forward(self, x, pos):
        self.key_cache_0.index_copy_(0, pos, x)
        self.value_cache_0[pos] = x * 2          # index_put_ through a view
        self.codebook.index_copy_(0, pos, x)
        self.small_cache[0].copy_(x[0, :4])
        return self.key_cache_0.sum() + self.value_cache_0.sum() + self.codebook.sum() + self.unused_zeros.sum() + self.weight.sum()


def chosen(program, min_bytes, pattern=None):
    return {candidate.fqn for candidate in select_caches(candidates(program), min_bytes, pattern)}


def test_selection_reads_the_graph_not_the_names():
    program = torch.export.export(Cache(), (torch.randn(1, 32), torch.tensor([3])))
    assert {"key_cache_0", "value_cache_0", "codebook", "small_cache"} <= written_inputs(program)
    assert "unused_zeros" not in written_inputs(program)
    assert chosen(program, 1024) == {"key_cache_0", "value_cache_0"}
    import re
    assert chosen(program, 1024, re.compile(r"^key_")) == {"key_cache_0"}
    assert chosen(program, 16) == {"key_cache_0", "value_cache_0", "small_cache"}


def test_caches_left_out_by_an_option_are_reported_with_the_option():
    """A newcomer whose caches are under min_bytes sees why none were found, not only caches_found=0."""
    program = torch.export.export(Cache(), (torch.randn(1, 32), torch.tensor([3])))
    with aoti_hooks.session(["kv_elide"], kv_elide={"min_bytes": "1KiB", "pattern": "^key_"}) as session:
        session.hooks.move_program_to_device(program, torch.device("cpu"))
    assert session.report.get("kv_elide") == {
        "caches_found": 1, "tensors_claimed": 1, "claimed_bytes": 8192,
        "left_out_by_min_bytes": "below min_bytes=1.0 KiB: 1 buffer, 32 B",  # small_cache (codebook is not zeros)
        "left_out_by_pattern": "not matching pattern='^key_': 1 buffer, 8.0 KiB",  # value_cache_0
    }


def test_bad_min_bytes_is_one_sentence():
    with pytest.raises(AotiHooksError, match=r"bad value 'lots' for option 'min_bytes' of plugin 'kv_elide'"):
        aoti_hooks.session(["kv_elide"], kv_elide={"min_bytes": "lots"})


def test_nothing_to_elide_leaves_the_move_to_the_stock_pass():
    program = torch.export.export(torch.nn.Linear(4, 4), (torch.randn(1, 4),))
    with aoti_hooks.session(["kv_elide"]) as session:
        assert session.hooks.move_program_to_device(program, torch.device("cpu")) is None
    assert session.report.get("kv_elide") == {"caches_found": 0}


def test_autotune_arguments_materializes_zeros_for_one_run_only(cpu_as_gpu):
    # The launch is a stand-in: a real autotune run needs Triton and a GPU.
    program = torch.export.export(Cache(), (torch.randn(1, 32), torch.tensor([3])))
    with aoti_hooks.session(["kv_elide"], kv_elide=OPTIONS) as session:
        moved = session.hooks.move_program_to_device(program, torch.device("cpu"))
        cache = moved.state_dict["key_cache_0"]
        # A view over the same storage, made the way a wrapper reinterprets a buffer.
        view = torch.empty(0).set_(cache.untyped_storage(), 256, (8, 32), (32, 1))
        cache.untyped_storage().resize_(0)
        assert view.untyped_storage() is cache.untyped_storage()
        assert cache.untyped_storage().nbytes() == 0 and cache.shape == (64, 32)
        seen = {}

        def launch():
            seen["bytes"] = view.untyped_storage().nbytes()
            seen["zeros"] = bool((cache == 0).all()) and bool((view == 0).all())
            cache.fill_(5.0)  # a kernel writing the cache during the run
            return "done"

        assert session.hooks.autotune_arguments((view, torch.ones(2)), launch) == "done"
        assert seen == {"bytes": 64 * 32 * 4, "zeros": True}
        assert cache.untyped_storage().nbytes() == 0
        assert session.hooks.autotune_arguments((cache,), lambda: bool((cache == 0).all())) is True
    assert session.report.get("placement")["autotune_materializations"] == 2
    assert torch.count_nonzero(program.state_dict["key_cache_0"]) == 0  # the user's buffer


def test_elided_constants_are_kept_apart_and_serialized_as_host_zeros():
    program = torch.export.export(Cache(), (torch.randn(1, 32), torch.tensor([3])))
    with aoti_hooks.session(["kv_elide"], kv_elide=OPTIONS) as session:
        moved = session.hooks.move_program_to_device(program, torch.device("cpu"))
        key, value = moved.state_dict["key_cache_0"], moved.state_dict["value_cache_0"]
        assert session.hooks.pre_constant_dedup("value_cache_0", value, "key_cache_0", key) is False
        assert session.hooks.pre_constant_dedup("a", torch.ones(2), "b", torch.ones(2)) is None
        zeros = session.hooks.serialize_constant("key_cache_0", key)
        assert zeros.shape == key.shape and zeros.stride() == key.stride() and not zeros.any()
        assert session.hooks.serialize_constant("codebook", moved.state_dict["codebook"]) is None
        clone = session.hooks.clone_lifted_buffer(value)
        assert clone.untyped_storage().nbytes() == 64 * 32 * 4 and not clone.any()


@pytest.mark.compile
def test_pickle_weights_path_writes_the_stock_weight_files(tmp_path):
    """The TensorProperties/Weights path: every weight file and the config equal stock's.

    (Such packages are compared, not loaded: torch 2.13's CPU loader segfaults on a stock
    pickle_weights package too.)
    """
    configs = {**INDUCTOR_CONFIGS, "aot_inductor.package_constants_in_so": False,
               "aot_inductor.package_constants_on_disk_format": "pickle_weights"}
    program = export_decoder(make_model())
    stock = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "s.pt2"), inductor_configs=configs)
    ours = aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "k.pt2"), plugins=["kv_elide"], kv_elide=OPTIONS,
                                               inductor_configs=configs)
    stock_files = package_files(stock, "data/weights/", "weights_config.json")
    model = make_model()  # one weight file per parameter and buffer: no two caches collapsed
    assert len([name for name in stock_files if "data/weights/" in name]) == len(list(model.parameters())) + len(list(model.buffers()))
    assert package_files(ours, "data/weights/", "weights_config.json") == stock_files


def test_host_snapshot_keeps_layout_and_values():
    base = torch.arange(40, dtype=torch.bfloat16)
    view = torch.as_strided(base, (3, 4), (1, 5), 7)  # offset and transposed strides
    snapshot = host_snapshot(view)
    assert snapshot.device.type == "cpu" and snapshot.untyped_storage().data_ptr() != base.untyped_storage().data_ptr()
    assert (snapshot.shape, snapshot.stride(), snapshot.storage_offset()) == (view.shape, view.stride(), 7)
    assert torch.equal(snapshot, view)
    assert snapshot.untyped_storage().nbytes() == (7 + 2 * 1 + 3 * 5 + 1) * 2  # clone_preserve_strides' extent
