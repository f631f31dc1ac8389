import threading
import types
from types import SimpleNamespace

import pytest
import torch
from helpers import INDUCTOR_CONFIGS

import aoti_hooks
from aoti_hooks import SeamError, hookimpl
from aoti_hooks.seams import inductor
from aoti_hooks.seams.inductor import examples, first_pass as first_pass_seam


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


def test_host_backed_constants_keep_their_device_and_read_host_bytes():
    like = torch.empty((2, 3), dtype=torch.float16, device="meta").t()
    host = torch.arange(6, dtype=torch.float16).reshape(2, 3).t()
    backed = inductor.HostBacked(like, host)
    assert backed.device.type == "meta" and backed.shape == (3, 2) and backed.stride() == (1, 3)
    assert backed.untyped_storage().nbytes() == 12
    assert backed.untyped_storage().data_ptr() == host.untyped_storage().data_ptr()
    with pytest.raises(SeamError, match="host-backed"):
        backed + 1


class Materialize:
    """Gives argument 0 real storage for one run, as kv_elide will."""

    def __init__(self):
        self.log = []

    @hookimpl(wrapper=True)
    def autotune_arguments(self, args, session):
        self.log.append(("before", args[0].untyped_storage().nbytes()))
        args[0].untyped_storage().resize_(args[0].numel() * args[0].element_size())
        try:
            return (yield)
        finally:
            args[0].untyped_storage().resize_(0)
            self.log.append(("after", args[0].untyped_storage().nbytes()))


def test_caching_autotuner_run_goes_through_autotune_arguments(register, monkeypatch):
    # A mock: a real CachingAutotuner needs Triton and a GPU, which this machine lacks.
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner

    launches = []

    def fake_run(self, *args, stream, **kwargs):
        launches.append(args[0].untyped_storage().nbytes())
        return "launched"

    monkeypatch.setattr(CachingAutotuner, "run", fake_run)
    plugin = register("materialize", Materialize())
    elided = torch.empty(4)
    elided.untyped_storage().resize_(0)
    autotuner = object.__new__(CachingAutotuner)
    with aoti_hooks.session(["materialize"]):
        assert CachingAutotuner.run(autotuner, elided, stream=0) == "launched"
    assert launches == [16]
    assert plugin.log == [("before", 0), ("after", 0)]
    assert vars(CachingAutotuner)["run"] is fake_run
    assert CachingAutotuner.run(autotuner, elided, stream=0) == "launched" and launches[-1] == 0


class CopyFives:
    """Answers the autotuner's copy of a written argument with fives (with a bad layout for shape (3,))."""

    @hookimpl
    def clone_autotune_argument(self, tensor, session):
        return torch.full((4,), 5.0) if tensor.shape == (3,) else torch.full_like(tensor, 5.0)


def test_the_autotuners_copy_of_a_written_argument_goes_through_clone_autotune_argument(register, monkeypatch):
    # Partly a mock: a real CachingAutotuner needs Triton and a GPU. Its run is replaced by one that
    # copies its written arguments with the real maybe_clone_args, as its benchmarking does.
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner

    def tuning_run(self, *args, stream, **kwargs):
        return self.maybe_clone_args(set(), *args)[0]

    monkeypatch.setattr(CachingAutotuner, "run", tuning_run)
    register("fives", CopyFives())
    autotuner = object.__new__(CachingAutotuner)
    autotuner.mutated_arg_names, autotuner.fn = ["out"], SimpleNamespace(arg_names=["out", "x"])
    out, x = torch.zeros(2, 3).t(), torch.ones(4)
    with aoti_hooks.session(["fives"]):
        copy, same = CachingAutotuner.run(autotuner, out, x, stream=0)
        assert same is x  # not written: not copied
        assert torch.equal(copy, torch.full((3, 2), 5.0)) and copy.stride() == out.stride()
        with pytest.raises(SeamError, match="clone_autotune_argument for .an autotune argument. returned a tensor whose shape"):
            CachingAutotuner.run(autotuner, torch.zeros(3), x, stream=0)
        outside_a_run, _ = autotuner.maybe_clone_args(set(), out, x)[0]  # not tuning (the two-pass first pass): stock
        assert torch.equal(outside_a_run, out) and outside_a_run.data_ptr() != out.data_ptr()
    stock, _ = CachingAutotuner.run(autotuner, out, x, stream=0)  # no session: the stock copy
    assert torch.equal(stock, out) and stock.data_ptr() != out.data_ptr()


class ChoiceFives:
    """Answers max-autotune's floating-point choice examples with fives (a bad layout for shape (3,))."""

    def __init__(self):
        self.asked = []

    @hookimpl
    def choice_example(self, size, stride, dtype, device, storage_elements, session):
        self.asked.append((size, stride, dtype, storage_elements))
        if not dtype.is_floating_point:
            return None
        if size == (3,):
            return torch.full((4,), 5.0)
        return torch.full((storage_elements,), 5.0, dtype=dtype, device=device).as_strided(size, stride)


def test_max_autotunes_examples_for_timing_choices_go_through_choice_example(register):
    # The real benchmark_example_value, on a graph that holds nothing but the layouts asked for.
    from torch._inductor import ir
    from torch._inductor.graph import GraphLowering
    from torch._inductor.select_algorithm import AlgorithmSelectorCache
    from torch._inductor.virtualized import V

    cpu = torch.device("cpu")
    output = ir.FixedLayout(cpu, torch.float32, [3, 4], [1, 3])
    index = ir.Buffer(name="index", layout=ir.FixedLayout(cpu, torch.int64, [5], [1]))
    plugin = register("fives", ChoiceFives())
    with V.set_graph_handler(GraphLowering(torch.fx.symbolic_trace(torch.nn.Identity()))):
        with aoti_hooks.session(["fives"]):
            example = AlgorithmSelectorCache.benchmark_example_value(output)
            assert torch.equal(example, torch.full((3, 4), 5.0)) and example.stride() == (1, 3)
            assert AlgorithmSelectorCache.benchmark_example_value(index).dtype == torch.int64  # stock: None answered
            with pytest.raises(SeamError, match="choice_example returned a tensor that is not"):
                AlgorithmSelectorCache.benchmark_example_value(ir.FixedLayout(cpu, torch.float32, [3], [1]))
            block_example = AlgorithmSelectorCache.generate_example_value([2], [1], cpu, torch.float32, 0)
            assert not torch.equal(block_example, torch.full((2,), 5.0))  # the autotune block's: not routed
        assert plugin.asked[:2] == [((3, 4), (1, 3), torch.float32, 12), ((5,), (1,), torch.int64, 5)]
        stock = AlgorithmSelectorCache.benchmark_example_value(output)  # no session: stock random values
        assert stock.shape == (3, 4) and not torch.equal(stock, torch.full((3, 4), 5.0))
    assert len(plugin.asked) == 3


def test_a_fusion_benchmarks_kernel_arguments_go_through_choice_example(register, monkeypatch):
    # Partly a mock: the real benchmark times a Triton kernel on a GPU. Its stand-in calls the real
    # generated module's get_args (made from the code Inductor writes for it), as the real one does.
    import types

    from torch._inductor.codegen.triton import TritonScheduling

    module = types.ModuleType("kernel_module")
    exec("from torch._dynamo.testing import rand_strided\nimport torch\n\ndef get_args():\n"
         "    arg_0 = rand_strided((4, 2), (1, 4), device='cpu', dtype=torch.float32)\n"
         "    arg_1 = rand_strided((3,), (1,), device='cpu', dtype=torch.int64)\n"
         "    return arg_0, arg_1\n", module.__dict__)
    stock = module.rand_strided

    def benchmark(self, mod, n_spills_threshold=8, node_names=None):
        assert mod.rand_strided is not stock
        return mod.get_args()

    monkeypatch.setattr(TritonScheduling, "benchmark_codegened_module", benchmark)
    plugin = register("fives", ChoiceFives())
    scheduling = object.__new__(TritonScheduling)
    with aoti_hooks.session(["fives"]):
        table, index = TritonScheduling.benchmark_codegened_module(scheduling, module)
        assert torch.equal(table, torch.full((4, 2), 5.0)) and table.stride() == (1, 4)
        assert index.dtype == torch.int64 and int(index.count_nonzero()) == 0  # stock's: None answered
        assert module.rand_strided is stock  # restored after the benchmark
        outside, _ = module.get_args()  # the module called outside a benchmark: stock
        assert not torch.equal(outside, torch.full((4, 2), 5.0))
    assert plugin.asked == [((4, 2), (1, 4), torch.float32, 8), ((3,), (1,), torch.int64, 3)]
    assert vars(TritonScheduling)["benchmark_codegened_module"] is benchmark


class ExternAndGather(torch.nn.Module):
    """A gather (an Inductor kernel), a matmul and an SDPA over a cache (extern kernels); the cache
    written first, as a decode step does, so the SDPA reads the written version (under the name of
    the buffer that wrote it, until the scheduler's renames map it back)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(32, 16)
        self.proj = torch.nn.Linear(16, 16)
        self.register_buffer("key_cache", torch.randn(1, 2, 8, 8), persistent=False)

    def forward(self, tokens, pos):
        x = self.proj(self.embed(tokens))  # (1, 4, 16)
        q = x.view(1, 4, 2, 8).transpose(1, 2)
        self.key_cache.index_copy_(2, pos, q[:, :, :1])
        return torch.nn.functional.scaled_dot_product_attention(q, self.key_cache, self.key_cache)


@pytest.mark.compile
def test_the_constants_extern_kernels_read_are_found_in_a_scheduled_graph(tmp_path, monkeypatch):
    """On a real CPU AOTI compile: the matmul's weight and the SDPA's cache are read by extern
    kernels; the embedding table only by Inductor's own gather kernel."""
    from torch._inductor.graph import GraphLowering

    seen: list[list[str]] = []
    codegen = GraphLowering.codegen

    def recording_codegen(self, *args, **kwargs):
        result = codegen(self, *args, **kwargs)
        seen.append([self.allocated_constant_name.get(name, name) for name in inductor.extern_read_constants(self)])
        return result

    monkeypatch.setattr(GraphLowering, "codegen", recording_codegen)
    torch.manual_seed(0)
    program = torch.export.export(ExternAndGather(), (torch.tensor([[1, 2, 3, 4]]), torch.tensor([5])))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "m.pt2"),
                                             inductor_configs=INDUCTOR_CONFIGS)
    (names,) = seen
    flat = " ".join(names)
    assert "proj" in flat and "key_cache" in flat and "embed" not in flat, names


class FirstPassGraph:
    """The attributes the first-pass patch reads, on a plain object."""

    def __init__(self, constants):
        self.aot_mode, self.cpp_wrapper, self.constants = True, False, constants


def test_the_two_pass_first_pass_runs_as_one_run_over_what_extern_kernels_read(register, monkeypatch):
    """The wiring of the first pass, a GPU-only path: the graph and its module are stand-ins; the
    selection is the real function, tested on a real graph above."""
    from aoti_hooks.core.active import current_session

    placed = torch.empty(4)
    placed.untyped_storage().resize_(0)
    calls = []
    module = types.ModuleType("first_pass_wrapper")  # as PyCodeCache loads it
    module.call, module.path = lambda inputs: calls.append(placed.untyped_storage().nbytes()) or "ran", "m.py"
    graph = FirstPassGraph({"cache": placed})
    monkeypatch.setattr(first_pass_seam, "extern_read_constants", lambda g: ["cache"])
    plugin = register("materialize", Materialize())
    patched = first_pass_seam._patched_compile_to_module(lambda g: module)
    with aoti_hooks.session(["materialize"]):
        assert current_session() is not None
        wrapped = patched(graph)
        assert wrapped is not module and wrapped.call([]) == "ran" and wrapped.path == "m.py"
        graph.cpp_wrapper = True  # the second pass (and any one-pass compile): the module as it is
        assert patched(graph) is module
    assert calls == [16] and plugin.log == [("before", 0), ("after", 0)]
    assert patched(FirstPassGraph({"cache": placed})) is module  # no session: nothing changes


class Example:
    """autotune_example answers with a fixed tensor (or None), or by the constant's name."""

    def __init__(self, answer=None, by_name=None):
        self.answer, self.by_name, self.asked = answer, by_name, []

    @hookimpl
    def autotune_example(self, name, tensor, written, session):
        self.asked.append((name, written))
        return self.answer if self.by_name is None else self.by_name.get(name)


def freed(*shape):
    """A tensor whose storage is freed as placement's are, but placed by no session: the core has no
    example for it, so the tests' plugin answers (the core answers first)."""
    tensor = torch.empty(*shape)
    tensor.untyped_storage().resize_(0)
    return tensor


def first_pass_module(weight, cache):
    """A compiled wrapper module as PyCodeCache loads it: constants are globals its ``call`` reads."""
    module = types.ModuleType("first_pass_wrapper")
    module.weight, module.cache, module.unread = weight, cache, freed(2)
    exec("def call(inputs):\n    return weight, cache, cache.untyped_storage().nbytes()\n"
         "def fails(inputs):\n    return weight / 0 if inputs else 1 // 0\n", vars(module))
    return module


def test_the_first_pass_reads_constants_as_their_autotune_examples_and_restores_them(register, monkeypatch):
    """A GPU-only path (the two-pass compile): the graph and its module are stand-ins (with a real
    module's globals); what the first pass holds and what it asks the hooks is the real code."""
    weight, cache = freed(2, 3), freed(4)
    example, cache_example = torch.zeros(2, 3), torch.ones(4)
    module = first_pass_module(weight, cache)
    graph = FirstPassGraph({"weight": weight, "cache": cache, "unread": module.unread})
    graph.mutated_buffers = {"cache"}
    monkeypatch.setattr(first_pass_seam, "extern_read_constants", lambda g: ["weight", "cache"])
    answers = register("answers", Example(by_name={"weight": example, "cache": cache_example, "unread": torch.ones(2)}))
    materialize = register("materialize", Materialize())
    patched = first_pass_seam._patched_compile_to_module(lambda g: module)
    with aoti_hooks.session(["answers", "materialize"]) as session:
        first_pass = patched(graph)
        read_weight, read_cache, _ = first_pass.call([])
        assert read_weight is example and read_cache is cache_example  # the written one too: asked as written
        assert session.report.as_dict()["first_pass"] == {"examples": 2, "example_bytes": 6 * 4 + 4 * 4}
        assert module.weight is weight and module.cache is cache
        assert answers.asked == [("weight", False), ("cache", True)]  # an unread one is left alone
        assert materialize.log == []  # nothing keeps its values: no run holds bytes

        answers.by_name.pop("cache")  # no example (a written integer cache, say): it keeps its values
        read_weight, read_cache, cache_bytes = first_pass.call([])
        assert read_weight is example and read_cache is cache and cache_bytes == 16  # filled for the pass
        assert materialize.log == [("before", 0), ("after", 0)]  # one run, over the cache alone

        module.call = module.fails
        with pytest.raises(ZeroDivisionError):
            first_pass.call([])
        assert module.weight is weight  # restored on an exception too
    register("bad", Example(by_name={"weight": torch.zeros(3, 2)}))
    with aoti_hooks.session(["bad"]), pytest.raises(SeamError, match="autotune_example for 'weight' returned a tensor whose shape"):
        patched(graph).call([])
    assert module.weight is weight


def test_a_first_pass_that_raises_on_its_examples_runs_again_on_the_constants_values(register, monkeypatch):
    """As a wrapper whose shapes follow a weight's values would: on the examples it raises, so the pass
    runs again as stock's does (the placed weight filled for it), and the report says why."""
    weight, cache = freed(2, 3), freed(4)
    module = first_pass_module(weight, cache)
    exec("def picky(inputs):\n    given = list(inputs)\n    inputs.clear()\n"
         "    if weight.untyped_storage().nbytes() == 0 or not given:\n        raise RuntimeError('nonzero() found no rows\\nmore')\n"
         "    return weight.untyped_storage().nbytes(), given\n", vars(module))
    module.call = module.picky
    monkeypatch.setattr(first_pass_seam, "extern_read_constants", lambda g: ["weight"])
    register("answers", Example(by_name={"weight": freed(2, 3)}))  # an example that reads as no rows
    materialize = register("materialize", Materialize())
    patched = first_pass_seam._patched_compile_to_module(lambda g: module)
    with aoti_hooks.session(["answers", "materialize"]) as session:
        assert patched(FirstPassGraph({"weight": weight, "cache": cache})).call([7]) == (24, [7])
    assert session.report.as_dict()["first_pass"] == {"examples": 1, "example_bytes": 24,
                                                      "rerun_with_values": "RuntimeError: nonzero() found no rows"}
    assert materialize.log == [("before", 0), ("after", 0)] and module.weight is weight

    module.call = module.fails  # raises whatever it reads: the rerun's error is the one raised
    with aoti_hooks.session(["answers", "materialize"]), pytest.raises(ZeroDivisionError):
        patched(FirstPassGraph({"weight": weight, "cache": cache})).call([])
    assert module.weight is weight


def test_first_passes_of_one_module_in_two_threads_each_see_their_examples_and_leave_it_restored(register, monkeypatch):
    weight, cache = freed(2, 3), torch.zeros(4)
    module = first_pass_module(weight, cache)
    monkeypatch.setattr(first_pass_seam, "extern_read_constants", lambda g: [])
    patched = first_pass_seam._patched_compile_to_module(lambda g: module)
    seen, errors = [], []
    barrier = threading.Barrier(2)

    def compile_in_thread(answer):
        register_name = f"answers{id(answer)}"
        try:
            with aoti_hooks.session([register_name]):
                first_pass = patched(FirstPassGraph({"weight": weight, "cache": cache}))
                barrier.wait()
                for _ in range(50):
                    seen.append(first_pass.call([])[0] is answer)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    answers = [torch.zeros(2, 3), torch.ones(2, 3)]
    for answer in answers:
        register(f"answers{id(answer)}", Example(by_name={"weight": answer}))
    threads = [threading.Thread(target=compile_in_thread, args=(answer,)) for answer in answers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(seen) == 100 and all(seen)
    assert module.weight is weight


class Standin(SimpleNamespace):
    """A SimpleNamespace keyed by identity, as a graph or a wrapper is (weak references, dict keys)."""

    __hash__ = object.__hash__


def example_line(constant, written=()):
    """The line the patched ``generate_example_arg_value`` writes for constant ``w`` (a GPU-only path:
    the graph and wrapper are stand-ins; the buffer is Inductor's own ``ConstantBuffer``). The
    real graph and wrapper are driven on models no one here wrote in tests/models."""
    from torch._inductor import ir
    from torch._inductor.codegen.common import IndentedBuffer
    from torch._inductor.virtualized import V

    graph = Standin(constants={"w": constant}, mutated_buffers=set(written), mutated_inputs=set(), scheduler=None)
    layout = ir.FixedLayout(constant.device, constant.dtype, list(constant.shape), list(constant.stride()))
    wrapper = Standin(args_to_buffers={"w": ir.ConstantBuffer(name="w", layout=layout)},
                      kernel_autotune_calls=IndentedBuffer())
    patched = examples._patched_example_arg_value(lambda self, arg, arg_type, raw_arg=None: "stock")
    with V.set_graph_handler(graph):
        returned = patched(wrapper, "w", constant.dtype)
    return returned, wrapper.kernel_autotune_calls.getvalue().strip(), wrapper


def test_a_constants_autotune_example_is_the_answered_tensor_read_back_in_process(register):
    constant, answer = torch.zeros(2, 3), torch.ones(2, 3)
    plugin = register("example", Example(answer))
    with aoti_hooks.session(["example"]):
        returned, line, wrapper = example_line(constant, written={"w"})
    scope = {}
    exec(line, scope)
    assert returned == "w" and scope["w"] is answer and plugin.asked == [("w", True)]
    del wrapper  # the block has run; what it named goes with its wrapper
    with pytest.raises(SeamError, match="asked for constant 'w', which aoti-hooks no longer holds"):
        exec(line, {})


def test_no_answer_or_no_session_keeps_inductors_own_example_and_a_bad_answer_is_named(register):
    plugin = register("none", Example(None))
    with aoti_hooks.session(["none"]):  # written: the core has no answer either
        assert example_line(torch.zeros(2, 3), written={"w"})[:2] == ("stock", "")
    assert plugin.asked == [("w", True)]
    assert example_line(torch.zeros(2, 3))[:2] == ("stock", "")
    register("bad", Example(torch.zeros(3, 2)))
    with aoti_hooks.session(["bad"]), pytest.raises(SeamError, match="autotune_example for 'w' returned a tensor whose shape"):
        example_line(torch.zeros(2, 3), written={"w"})


def test_the_core_names_a_resident_constant_itself_unless_a_kernel_writes_it():
    with aoti_hooks.session([]) as session:
        constant = torch.zeros(2, 3)
        assert example_line(constant)[1].startswith("w = __import__(")
        assert example_line(constant, written={"w"})[0] == "stock"  # a tuning run must not change it
    assert session.report.as_dict()["placement"]["autotune_examples_named"] == 1


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
