"""Transparency: Inductor's compile-time readers of constant values never meet a claimed tensor as an empty storage.

On the CPU a placed tensor is a view of its host values, so freezing, the C++ GEMM template's
weight prepacking and runtime constant folding read real values (the configuration matrix,
``tests/matrix``, compiles each of them with every tensor claimed); on a GPU the session leaves out,
up front, what a pass over every constant or Inductor's lowering would read (`cpu_as_gpu` stands
the CPU in for the GPU here: no GPU exists on this machine). A reader nobody listed gets one
sentence naming it and the tensor. ``torch._inductor.aot_compile`` inside a session says once that
it runs without the plugins.
"""

import warnings

import pytest
import torch
from helpers import export_small

import aoti_hooks
from aoti_hooks import AotiHooksError
from aoti_hooks.core.errors import AotiHooksWarning
from aoti_hooks.hosts.lifecycle import enter_compile_contexts, move_program

EVERYTHING = {"kv_elide": {"min_bytes": 0}, "const_offload": {"min_bytes": 0}}


def test_on_a_gpu_a_pass_over_every_constant_leaves_every_claim_out(register, cpu_as_gpu):
    for options, reader, words in [({"freezing": True}, "freezing", "freezing=True"),
                                   ({"aot_inductor.use_runtime_constant_folding": True}, "runtime_constant_folding",
                                    "use_runtime_constant_folding")]:
        with aoti_hooks.session(["kv_elide", "const_offload"], **EVERYTHING) as session:
            session.compile_options = options
            moved = move_program(session, export_small(), torch.device("cpu"))
        placement = session.report.as_dict()["placement"]
        assert "tensors" not in placement and placement[f"left_out_for_{reader}"] == len(placement["refused"]) == 6
        assert all(words in entry["reason"] for entry in placement["refused"])
        assert all(tensor.untyped_storage().nbytes() > 0 for tensor in [*moved.state_dict.values(), *moved.constants.values()])


def test_on_a_gpu_tensors_inductor_inlines_are_left_out_and_the_rest_placed(cpu_as_gpu):
    with aoti_hooks.session(["kv_elide", "const_offload"], **EVERYTHING) as session:
        moved = move_program(session, export_small(), torch.device("cpu"))
    placement = session.report.as_dict()["placement"]
    assert {entry["fqn"] for entry in placement["refused"]} == {"scale", "pair"} == {
        entry["fqn"] for entry in placement["refused"] if "inlines it as literals" in entry["reason"]}
    assert placement["left_out_for_lowering"] == 2
    assert {entry["fqn"] for entry in placement["tensors"]} == {"linear.weight", "linear.bias", "cache", "table"}
    assert moved.state_dict["linear.weight"].untyped_storage().nbytes() == 0
    assert moved.state_dict["scale"].item() == 2.0


def test_a_reader_no_one_listed_gets_one_sentence_naming_it_and_the_tensor(cpu_as_gpu):
    """The reader is torch.fx's interpreter calling ``tolist`` (a stand-in for a compile-time reader
    not yet known); the placed tensor's storage is empty, as on a GPU."""
    program = export_small()
    graph = torch.fx.Graph()
    weight = graph.get_attr("weight")
    graph.output(graph.call_method("tolist", (weight,)))
    with aoti_hooks.session(["const_offload"], const_offload={"min_bytes": 0}) as session:
        moved = move_program(session, program, torch.device("cpu"))
        module = torch.fx.GraphModule({"weight": moved.state_dict["linear.weight"]}, graph)
        with pytest.raises(AotiHooksError) as raised:
            with __import__("contextlib").ExitStack() as stack:
                enter_compile_contexts(session, stack)
                torch.fx.Interpreter(module).run()
    message = str(raised.value)
    assert message.startswith("torch.fx.interpreter.Interpreter.call_method read the values of linear.weight while compiling")
    assert "raise const_offload's min_bytes past its 4.0 KiB" in message and "\n" not in message
    assert moved.state_dict["linear.weight"].untyped_storage().nbytes() == 0  # nothing else was touched


def test_the_older_entry_point_says_once_that_it_runs_without_the_plugins():
    """The compile itself fails at once (an unknown option): what is checked is what precedes it."""
    module = export_small().module()
    with aoti_hooks.session(["kv_elide"]) as session, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with pytest.raises(Exception):
                torch._inductor.aot_compile(module, (torch.randn(1, 32), torch.tensor([1])),
                                            options={"no_such_option_here": 1})
    said = [w for w in caught if issubclass(w.category, AotiHooksWarning)]
    assert len(said) == 1 and "aot_compile compiles a graph module without the session's plugins" in str(said[0].message)
    assert session.report.get("session")["not_covered"] == "torch._inductor.aot_compile"
    with warnings.catch_warnings(record=True) as caught:  # outside a session: nothing to say
        warnings.simplefilter("always")
        with pytest.raises(Exception):
            torch._inductor.aot_compile(module, (torch.randn(1, 32), torch.tensor([1])), options={"no_such_option_here": 1})
    assert not [w for w in caught if issubclass(w.category, AotiHooksWarning)]
