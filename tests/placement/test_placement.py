"""The core's placement: candidates, claims merged in plugin order, refusals, aliases, and the
user's program left as it was on success, on failure and for another device."""

import pytest
import torch
from helpers import INDUCTOR_CONFIGS, export_cache_model, program_snapshot

import aoti_hooks
from aoti_hooks import AotiHooksError, PluginError
from aoti_hooks.core.types import Candidate
from aoti_hooks.hosts.lifecycle import move_program
from aoti_hooks.placement import candidates, refusal


class Claims:
    """A plugin that claims fixed FQNs with fixed fills (a stand-in for a claim policy)."""

    def __init__(self, claims):
        self.claims = claims
        self.seen: list[Candidate] = []

    @aoti_hooks.hookimpl
    def claim_tensors(self, program, candidates, session):
        self.seen = list(candidates)
        return self.claims


class NonPersistentCache(torch.nn.Module):
    """A Hugging Face-style cache (``persistent=False``: it lives in ``program.constants``), a
    tied weight (one storage, two names), a lifted tensor constant, and a non-zero buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("key_cache_0", torch.zeros(16, 8), persistent=False)
        self.register_buffer("scale", torch.full((8,), 0.5))
        self.embed = torch.nn.Embedding(16, 8)
        self.head = torch.nn.Linear(8, 16, bias=False)
        self.head.weight = self.embed.weight
        self.table = torch.arange(8.0)  # a plain attribute: a lifted tensor constant

    def forward(self, tokens, pos):
        x = self.embed(tokens)[0] * self.scale + self.table
        self.key_cache_0.index_copy_(0, pos, x)
        return self.head(self.key_cache_0.sum(0, keepdim=True))


def export_non_persistent():
    torch.manual_seed(0)
    model = NonPersistentCache()
    return model, torch.export.export(model, (torch.tensor([[3]]), torch.tensor([2])))


def test_candidates_cover_every_kind_of_tensor_and_aliases():
    _, program = export_non_persistent()
    found = {candidate.fqn: candidate for candidate in candidates(program)}
    assert found["key_cache_0"].kind == "non_persistent_buffer" and found["key_cache_0"].written
    assert "key_cache_0" in program.constants and "key_cache_0" not in program.state_dict
    assert found["scale"].kind == "buffer" and not found["scale"].written
    assert found["embed.weight"].kind == "parameter" and found["embed.weight"].aliases == ("head.weight",)
    assert found["head.weight"].aliases == ("embed.weight",)  # only in the state dict: the graph names one
    (constant,) = [c for c in found.values() if c.kind == "constant"]
    assert torch.equal(constant.tensor, torch.arange(8.0))
    assert found["key_cache_0"].all_zeros and not found["scale"].all_zeros
    assert found["key_cache_0"].nbytes == 16 * 8 * 4


def test_claims_merge_in_plugin_order_and_the_first_claim_on_a_storage_wins(register):
    _, program = export_non_persistent()
    register("first", Claims({"key_cache_0": "zeros", "head.weight": "host"}))
    register("second", Claims({"key_cache_0": "host", "embed.weight": "host", "scale": "zeros"}))
    with aoti_hooks.session(["first", "second"]) as session:
        moved = move_program(session, program, torch.device("cpu"))
    placement = session.report.as_dict()["placement"]
    placed = {entry["fqn"]: (entry["plugin"], entry["fill"]) for entry in placement["tensors"]}
    # the tied weight is one decision: claiming one name places both, for the first plugin
    assert placed == {"key_cache_0": ("first", "zeros"), "head.weight": ("first", "host"),
                      "embed.weight": ("first", "host")}
    assert {(e["fqn"], e["plugin"], e["placed_by"]) for e in placement["overruled"]} == {
        ("key_cache_0", "second", "first"), ("embed.weight", "second", "first")}
    assert placement["refused"] == [{"fqn": "scale", "plugin": "second", "reason": "its values are not all zeros"}]
    assert "second" not in session.report.as_dict()  # it placed nothing
    lines = str(session.report).splitlines()  # the summary keeps counts; as_dict() names each tensor
    assert "first: tensors_claimed=3, claimed_bytes=1.0 KiB" in lines
    assert "placement: overruled=2, refused=1, tensors=3" in lines
    # placed on the CPU: a view of the values (for zeros, a zero mapping), one storage for the tied pair;
    # the user's tensors keep theirs
    cache = moved.constants["key_cache_0"]
    assert cache.untyped_storage() is not program.constants["key_cache_0"].untyped_storage()
    assert cache.untyped_storage().nbytes() == 16 * 8 * 4 and not cache.any()
    assert moved.state_dict["embed.weight"].untyped_storage() is moved.state_dict["head.weight"].untyped_storage()
    assert isinstance(moved.state_dict["embed.weight"], torch.nn.Parameter)
    assert program.state_dict["embed.weight"].untyped_storage().nbytes() == 16 * 8 * 4
    assert moved.state_dict["scale"] is program.state_dict["scale"]


def test_placed_values_come_back_from_the_host_for_every_hook(register, cpu_as_gpu):
    _, program = export_non_persistent()
    register("claims", Claims({"key_cache_0": "zeros", "embed.weight": "host"}))
    with aoti_hooks.session(["claims"]) as session:
        moved = move_program(session, program, torch.device("cpu"))
        cache, weight = moved.constants["key_cache_0"], moved.state_dict["embed.weight"]
        user_weight = program.state_dict["embed.weight"]
        written = session.hooks.serialize_constant("embed.weight", weight)
        assert torch.equal(written, user_weight)
        assert written.untyped_storage().data_ptr() == user_weight.untyped_storage().data_ptr()  # read, not copied
        assert not session.hooks.clone_lifted_buffer(cache).any()
        assert session.hooks.pre_constant_dedup("key_cache_0", cache, "embed.weight", weight) is False
        assert session.hooks.pre_constant_dedup("head.weight", moved.state_dict["head.weight"], "embed.weight", weight) is None
        # The launch is a stand-in: a real autotune run needs Triton and a GPU.
        seen = session.hooks.autotune_arguments(
            (cache, weight), lambda: (bool((cache == 0).all()), torch.equal(weight, user_weight)))
        assert seen == (True, True)
        assert cache.untyped_storage().nbytes() == 0 and weight.untyped_storage().nbytes() == 0
    assert session.report.get("placement")["autotune_materializations"] == 2


def test_a_run_nested_in_another_keeps_the_bytes_until_the_outer_run_ends(register, cpu_as_gpu):
    """The two-pass compile's first pass is one run over what its extern kernels read; the Triton
    runs inside it must not free those bytes under it (stand-in launches: no Triton here)."""
    _, program = export_non_persistent()
    register("claims", Claims({"key_cache_0": "zeros", "embed.weight": "host"}))
    with aoti_hooks.session(["claims"]) as session:
        moved = move_program(session, program, torch.device("cpu"))
        cache, weight = moved.constants["key_cache_0"], moved.state_dict["embed.weight"]

        def first_pass():
            session.hooks.autotune_arguments((cache, weight), lambda: None)  # a Triton run inside
            return cache.untyped_storage().nbytes(), weight.untyped_storage().nbytes()

        assert session.hooks.autotune_arguments((cache,), first_pass) == (cache.numel() * 4, 0)
        assert cache.untyped_storage().nbytes() == 0


@pytest.mark.parametrize("claims, message", [
    ({"nothing.here": "zeros"}, r"plugin 'claims' failed in hook 'claim_tensors': ValueError: claimed 'nothing.here', "
                                r"which the program does not hold"),
    ({"scale": "disk"}, r"claimed 'scale' with fill 'disk'; the fills are zeros, host"),
    (["scale"], r"returned list, not a dict of FQN to fill"),
])
def test_a_bad_claim_names_the_plugin_and_the_hook(register, claims, message):
    _, program = export_non_persistent()
    register("claims", Claims(claims))
    with aoti_hooks.session(["claims"]) as session, pytest.raises(PluginError, match=message):
        move_program(session, program, torch.device("cpu"))


def test_what_cannot_be_placed_is_refused_with_a_reason():
    class Wrapper(torch.Tensor):
        pass

    assert "tensor subclass (Wrapper)" in refusal(torch.Tensor._make_subclass(Wrapper, torch.zeros(2)))
    assert "meta tensor" in refusal(torch.zeros(2, device="meta"))
    assert "empty tensor" in refusal(torch.zeros(0))
    assert refusal(torch.nn.Parameter(torch.zeros(2))) is None


def test_the_name_placement_is_reserved(register):
    with pytest.raises(AotiHooksError, match="'placement' is the name of aoti-hooks' built-in placement"):
        register("placement", Claims({}))
    with pytest.raises(AotiHooksError, match="'placement' is built in and runs in every session"):
        aoti_hooks.session(["kv_elide", "placement"])


def test_a_plugin_that_moves_the_program_itself_goes_first_and_nothing_is_claimed(register):
    _, program = export_non_persistent()

    class Mover:
        @aoti_hooks.hookimpl
        def move_program_to_device(self, program, device, session):
            return program

    claims = register("claims", Claims({"key_cache_0": "zeros"}))
    register("mover", Mover())
    with aoti_hooks.session(["claims", "mover"]) as session:
        assert move_program(session, program, torch.device("cpu")) is program
    assert claims.seen == [] and "placement" not in session.report.as_dict()


@pytest.mark.compile
@pytest.mark.parametrize("plugins", [["kv_elide", "const_offload"], ["kv_elide"]], ids="+".join)
def test_the_users_program_is_unchanged_when_a_compile_for_another_device_fails(tmp_path, plugins):
    """``meta`` stands in for a GPU on this CPU machine: the program is moved there, then the compile
    fails. Before, the move rewrote the user's graph and (nothing claimed) moved its weights. (A target
    spelled ``device=meta`` is refused; a `Target` object is taken as given, which this test needs.)"""
    _, program = export_cache_model()
    before = program_snapshot(program)
    options = {"kv_elide": {"min_bytes": "16B" if len(plugins) == 2 else "1GiB"}, "const_offload": {"min_bytes": "16B"}}
    with aoti_hooks.session(plugins, target=aoti_hooks.Target("stand-in", 101376, 2**30, "meta"),
                            **{name: options[name] for name in plugins}) as session:
        with pytest.raises(Exception):
            aoti_hooks.aoti_compile_and_package(program, str(tmp_path / "x.pt2"), inductor_configs=INDUCTOR_CONFIGS)
    assert program_snapshot(program) == before
    claimed = len(session.report.as_dict().get("placement", {}).get("tensors", []))
    assert claimed == (3 if len(plugins) == 2 else 0)  # c0, c1 (zeros); w (host); scale is inlined: left out


def test_a_private_program_is_moved_in_place_so_its_tensors_are_released(register, cpu_as_gpu):
    """ExecuTorch hands preprocess its own copy; moving that copy (not a copy of it) lets its host
    tensors go as they are replaced, as ExecuTorch's own move does (H100: +0.6 GiB host otherwise)."""
    _, program = export_non_persistent()
    register("claims", Claims({"key_cache_0": "zeros"}))
    cache = program.constants["key_cache_0"]
    with aoti_hooks.session(["claims"]) as session:
        session.program_is_private = True
        moved = session.hooks.move_program_to_device(program, torch.device("cpu"))
    assert moved is program and program.constants["key_cache_0"] is not cache
    assert program.constants["key_cache_0"].untyped_storage().nbytes() == 0
    assert cache.untyped_storage().nbytes() == 16 * 8 * 4  # the tensor itself is never changed


def test_the_two_pass_gpu_compile_places_host_and_zeros_fills_as_the_one_pass_compile_does(register):
    """Its first pass reads constants (written ones too) as their autotune examples, so placing a
    weight on the host is safe there too (tests/seams/test_seams.py, tests/gpu). ``meta`` stands in for
    the GPU (any device but the CPU)."""
    _, program = export_non_persistent()
    register("claims", Claims({"key_cache_0": "zeros", "embed.weight": "host"}))
    with aoti_hooks.session(["claims"]) as session:
        session.compile_options = {"triton.autotune_at_compile_time": False}
        move_program(session, program, torch.device("meta"))
    placement = session.report.as_dict()["placement"]
    assert sorted(entry["fqn"] for entry in placement["tensors"]) == ["embed.weight", "head.weight", "key_cache_0"]
    assert "refused" not in placement


@pytest.mark.parametrize("dtype, written, is_placed, block", [
    (torch.bfloat16, False, False, None),     # a resident weight no kernel writes is its own example
    (torch.bfloat16, False, True, "zeros"),   # a placed weight: the block nothing writes
    (torch.int8, False, True, "zeros"),       # packed int weights too: zero bytes, as stock's integer examples
    (torch.float32, True, True, "scratch"),   # a placed cache: writes land in the scratch block
    (torch.float16, True, False, "scratch"),  # a cache no plugin placed: not Inductor's full-size copy
    (torch.int64, True, True, None),          # a written integer tensor: garbage there could be an index
    (torch.int64, True, False, None),
])
def test_which_constants_autotune_reads_through_a_stand_in(dtype, written, is_placed, block):
    """The stand-ins themselves need CUDA's virtual memory management: tests/gpu/test_stand_ins.py."""
    from aoti_hooks.placement import stand_in_block

    assert stand_in_block(dtype, written, is_placed) == block


def test_a_driver_that_cannot_make_stand_ins_is_reported_once_and_not_asked_again(monkeypatch):
    """The failing block stands in for a CUDA driver without virtual memory management (none exists here)."""
    from aoti_hooks.placement import standins
    from aoti_hooks.placement.blocks import StandInError

    made = []

    class RefusingBlock:
        def __init__(self, device):
            made.append(device)
            raise StandInError("cuMemCreate failed with CUresult 801")

    monkeypatch.setattr(standins, "Block", RefusingBlock)
    with aoti_hooks.session([]) as session:
        tensor = torch.zeros(4)
        assert standins._stand_in(session, tensor, "zeros") is None
        assert standins._stand_in(session, tensor, "zeros") is None
    assert made == [0]
    assert session.report.get("placement")["autotune_stand_ins_unavailable"] == "cuMemCreate failed with CUresult 801"


def test_a_program_whose_input_is_named_like_a_builtin_is_placed():
    """nn.Sequential's argument is ``input``; copying a graph renames such a node, and the
    program's signature, which names the original, then failed verification."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(64, 16), torch.nn.Linear(16, 16)).eval()
    tokens = torch.tensor([[1, 2, 63]])
    program = torch.export.export(model, (tokens,))
    assert [spec.arg.name for spec in program.graph_signature.input_specs][-1] == "input"
    with aoti_hooks.session(["const_offload"], const_offload={"min_bytes": "1KiB"}) as session:
        moved = move_program(session, program, torch.device("cpu"))
    assert session.report.as_dict()["const_offload"]["tensors_claimed"] == 2  # the table and the linear's weight
    assert moved.graph_signature.input_specs[-1].arg.name == "input"
    moved.validate()
    assert [node.name for node in moved.graph.nodes] == [node.name for node in program.graph.nodes]
