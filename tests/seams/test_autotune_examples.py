"""Autotune examples: the tensor the compile-time autotune block passes a kernel for a constant
(``autotune_example``), and the two-pass compile's first pass, which reads the constants extern kernels
read as their examples, runs once and restores them, also when it raises and across threads."""

import threading
import types
from types import SimpleNamespace

import pytest
import torch
from helpers import INDUCTOR_CONFIGS
from seam_plugins import Materialize

import aoti_hooks
from aoti_hooks import SeamError, hookimpl
from aoti_hooks.seams import inductor
from aoti_hooks.seams.inductor import examples, first_pass as first_pass_seam


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


