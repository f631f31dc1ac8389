"""A session's target caps Triton's shared memory for its own compiles only, and says what it refused.

No GPU here: Triton's driver cannot answer the local limit on a CPU, so the local limit is a
stand-in (an H100's 232,448 B) installed before any session, as the driver would give it; the
cap, its scoping to the session's context (threads, Inductor's own pool), its restoration and
the autotune cache key are the real code on the real Triton and Inductor modules.
"""

import threading

import pytest

import aoti_hooks

compiler = pytest.importorskip("triton.compiler.compiler")
H100 = 232_448


@pytest.fixture
def h100_driver(monkeypatch):
    monkeypatch.setattr(compiler, "max_shared_mem", lambda device: H100)


def seen_in_thread() -> list[int]:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(compiler.max_shared_mem(0)))
    thread.start()
    thread.join()
    return seen


def test_the_cap_holds_in_the_sessions_context_and_nowhere_else(h100_driver):
    local = compiler.max_shared_mem
    with aoti_hooks.session(["kv_elide"], target="rtx5090"):
        assert compiler.max_shared_mem(0) == 101_376
        assert seen_in_thread() == [H100]  # a compile in another thread, without a session, keeps its own
        with aoti_hooks.session(["kv_elide"], target="smem=300000,mem=8GiB"):
            assert compiler.max_shared_mem(0) == H100  # a target above the local GPU: the GPU's limit
    assert compiler.max_shared_mem is local  # restored exactly
    with aoti_hooks.session(["kv_elide"]):  # no target on a CPU machine: no cap
        assert compiler.max_shared_mem(0) == H100


def test_the_cap_is_restored_when_the_compile_raises(h100_driver):
    local = compiler.max_shared_mem
    with pytest.raises(RuntimeError, match="boom"):
        with aoti_hooks.session(["kv_elide"], target="a100"):
            assert compiler.max_shared_mem(0) == 166_912
            raise RuntimeError("boom")
    assert compiler.max_shared_mem is local


def test_inductors_own_precompile_threads_see_the_session(h100_driver):
    from torch._inductor import select_algorithm

    with aoti_hooks.session(["kv_elide"], target="rtx4090"):
        with select_algorithm.ThreadPoolExecutor(max_workers=2) as pool:
            assert pool.submit(compiler.max_shared_mem, 0).result() == 101_376
    with select_algorithm.ThreadPoolExecutor(max_workers=2) as pool:  # stock's pool again
        assert pool.submit(compiler.max_shared_mem, 0).result() == H100


def test_a_kernel_refused_for_the_target_alone_is_in_the_report(h100_driver):
    """Triton's own check, run on a stand-in kernel object (no GPU can load one here): the
    kernel's 163,840 B fit the local GPU but not a 5090."""
    from types import SimpleNamespace

    from aoti_hooks.seams.shared_memory import _counted_init_handles

    def triton_check(kernel):  # what CompiledKernel._init_handles does with the limit
        limit = compiler.max_shared_mem(0)
        if kernel.metadata.shared > limit:
            raise compiler.OutOfResources(kernel.metadata.shared, limit, "shared memory")

    check = _counted_init_handles(triton_check, compiler.max_shared_mem)
    big = SimpleNamespace(metadata=SimpleNamespace(shared=163_840, name="triton_tem_fused_mm_0"))
    small = SimpleNamespace(metadata=SimpleNamespace(shared=65_536, name="triton_poi_fused_0"))
    with aoti_hooks.session(["kv_elide"], target="rtx5090") as session:
        check(small)
        with pytest.raises(compiler.OutOfResources):
            check(big)
    assert session.report.as_dict()["target"] == {
        "kernels_over_target_smem": 1, "refused_for_target_smem": ["triton_tem_fused_mm_0 (163840 B > 101376 B)"]}
    check(big)  # no session: the local limit, no refusal


def test_winners_chosen_under_a_cap_have_their_own_autotune_cache_key():
    from torch._inductor.runtime.autotune_cache import AutotuneCache

    stock = AutotuneCache._prepare_key("kernel.py")
    with aoti_hooks.session(["kv_elide"], target="rtx5090"):
        capped = AutotuneCache._prepare_key("kernel.py")
    with aoti_hooks.session(["kv_elide"], target="a100"):
        other = AutotuneCache._prepare_key("kernel.py")
    assert len({stock, capped, other}) == 3
    assert AutotuneCache._prepare_key("kernel.py") == stock
