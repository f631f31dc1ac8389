"""The seams through which Inductor's autotuning reads constants and makes copies: host-backed constants,
``autotune_arguments``, ``clone_autotune_argument``, ``choice_example`` (max-autotune's choices and fusion
benchmarks)."""

import types
from types import SimpleNamespace

import pytest
import torch
from seam_plugins import Materialize

import aoti_hooks
from aoti_hooks import SeamError, hookimpl
from aoti_hooks.seams import inductor


def test_host_backed_constants_keep_their_device_and_read_host_bytes():
    like = torch.empty((2, 3), dtype=torch.float16, device="meta").t()
    host = torch.arange(6, dtype=torch.float16).reshape(2, 3).t()
    backed = inductor.HostBacked(like, host)
    assert backed.device.type == "meta" and backed.shape == (3, 2) and backed.stride() == (1, 3)
    assert backed.untyped_storage().nbytes() == 12
    assert backed.untyped_storage().data_ptr() == host.untyped_storage().data_ptr()
    with pytest.raises(SeamError, match="host-backed"):
        backed + 1


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




class Kept(ChoiceFives):
    """ChoiceFives that keeps what it gave."""

    def __init__(self):
        super().__init__()
        self.given = []

    @hookimpl
    def choice_example(self, size, stride, dtype, device, storage_elements, session):
        example = ChoiceFives.choice_example(self, size, stride, dtype, device, storage_elements, session)
        self.given.append(example)
        return example


def _autotune_block(calls: str):
    """A wrapper codegen holding a compile-time autotune block: the header torch writes, then ``calls``."""
    from torch._inductor.codegen.common import IndentedBuffer
    from torch._inductor.codegen.wrapper import PythonWrapperCodegen

    wrapper = object.__new__(PythonWrapperCodegen)
    wrapper.kernel_autotune_defs, wrapper.kernel_autotune_calls = IndentedBuffer(), IndentedBuffer()
    wrapper.kernel_autotune_defs.splice(
        "import torch\nfrom torch._inductor.select_algorithm import AlgorithmSelectorCache\n"
        "from torch._inductor.async_compile import AsyncCompile\nasync_compile = AsyncCompile()\n"
        "generate_example_value = AlgorithmSelectorCache.generate_example_value\n")
    wrapper.kernel_autotune_calls.splice(calls)
    return wrapper


def test_the_autotune_blocks_examples_of_buffers_go_through_choice_example(register):
    # The real block runner (generate_and_run_autotune_block) on a block of two example lines as
    # Inductor writes them: a kernel needs a GPU, so the block makes its examples and runs none.
    from torch._inductor.codegen.wrapper import PythonWrapperCodegen
    from torch._inductor.select_algorithm import AlgorithmSelectorCache

    wrapper = _autotune_block("buf0 = generate_example_value((3, 4), (1, 3), 'cpu', torch.float32, 0, (3, 4))\n"
                              "buf1 = generate_example_value((5,), (1,), 'cpu', torch.int64, 0, (5,))\n")
    plugin = register("kept", Kept())
    with aoti_hooks.session(["kept"]):
        PythonWrapperCodegen.generate_and_run_autotune_block(wrapper)
        AlgorithmSelectorCache.generate_example_value([2], [1], "cpu", torch.float32, 0)  # outside the block: not asked
    assert plugin.asked == [((3, 4), (1, 3), torch.float32, 12), ((5,), (1,), torch.int64, 5)]
    assert torch.equal(plugin.given[0], torch.full((3, 4), 5.0)) and plugin.given[1] is None  # the integer: stock's
    PythonWrapperCodegen.generate_and_run_autotune_block(_autotune_block("buf0 = generate_example_value("
                                                                         "(3,), (1,), 'cpu', torch.float32, 0)\n"))
    assert len(plugin.asked) == 2  # no session: stock examples


class CopyOnDevice:
    """Answers the autotuner's copy of a written floating-point argument on the meta device (where it
    costs nothing), as the core answers one on a GPU with a stand-in."""

    @hookimpl
    def clone_autotune_argument(self, tensor, session):
        return torch.empty_like(tensor) if tensor.device.type == "meta" and tensor.is_floating_point() else None


def test_a_written_argument_copied_through_clone_autotune_argument_is_not_copied_to_the_host(register, monkeypatch):
    # Partly a mock: the host copy needs a GPU argument, which this machine cannot make. The stock
    # copy_args_to_cpu_if_needed is replaced by one that says what it was given; the patch around it
    # is the real one, and passes over (a host tensor) what the hook copies on the device.
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner

    given = []
    monkeypatch.setattr(CachingAutotuner, "copy_args_to_cpu_if_needed", lambda self, *args, **kwargs: given.append(
        (args, kwargs)) or {})

    def tuning_run(self, *args, stream, **kwargs):
        return self.copy_args_to_cpu_if_needed(*args, **kwargs)

    monkeypatch.setattr(CachingAutotuner, "run", tuning_run)
    register("on_device", CopyOnDevice())
    autotuner = object.__new__(CachingAutotuner)
    autotuner.mutated_arg_names = ["cache", "index", "extra"]
    autotuner.fn = SimpleNamespace(arg_names=["cache", "index", "x"])
    cache, index, x = torch.empty(4, device="meta"), torch.empty(2, device="meta", dtype=torch.int64), torch.ones(3)
    extra = torch.empty(2, device="meta")
    with aoti_hooks.session(["on_device"]):
        CachingAutotuner.run(autotuner, cache, index, x, stream=0, extra=extra)
    (args, kwargs), = given
    assert args[0].device.type == "cpu" and args[0].numel() == 0  # copied on the device: passed over
    assert args[1] is index and args[2] is x  # the hook left the integer alone; x is not written
    assert kwargs["extra"].device.type == "cpu"
    CachingAutotuner.run(autotuner, cache, index, x, stream=0)  # no session: as given
    assert given[-1][0][0] is cache
