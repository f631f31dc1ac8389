"""A session's target architecture is what the baked Triton kernels are built for.

No GPU here, so no Inductor compile bakes a CUDA kernel on this machine. The test drives the real
baking step (``CachingAutotuner.save_gpu_kernel`` writing ``CudaKernelParamCache``) on a real
Triton kernel, compiled by the real Triton for an H100 (sm_90) as Inductor's autotuner would have
left it; the autotuner's device properties are a stand-in for that H100 (it says so below). What
lands in the cache is read back as the artifact's cubin is read (`tools.kernels.cuda_arch`).
"""

import copy
from types import SimpleNamespace

import pytest

import aoti_hooks
from aoti_hooks.core.errors import AotiHooksError
from aoti_hooks.tools.kernels import cuda_arch, ptx_target

triton = pytest.importorskip("triton")
tl = triton.language
pytest.importorskip("triton.backends.nvidia")

from torch._inductor.codecache import CudaKernelParamCache  # noqa: E402
from torch._inductor.runtime.hints import DeviceProperties  # noqa: E402
from torch._inductor.runtime.triton_heuristics import CachingAutotuner  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402


@triton.jit
def add_kernel(x, y, out, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out + offsets, tl.load(x + offsets, mask=mask) + tl.load(y + offsets, mask=mask), mask=mask)


SIGNATURE = {"x": "*fp32", "y": "*fp32", "out": "*fp32", "n": "i32", "BLOCK": "constexpr"}


@pytest.fixture(autouse=True)
def _param_cache_restored():
    """The kernels baked here leave Inductor's process-wide kernel table as it was."""
    before = dict(CudaKernelParamCache.cache)
    yield
    CudaKernelParamCache.cache.clear()
    CudaKernelParamCache.cache.update(before)


def _h100_props():
    """A stand-in for an H100's properties (no GPU here to ask): the local GPU of the compile."""
    fields = DeviceProperties._fields
    values = dict(type="cuda", index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536,
                  max_threads_per_multi_processor=2048, warp_size=32)
    return DeviceProperties(**{name: values.get(name) for name in fields})


def _baked(name: str, target=None, from_a_worker: bool = False, launches: int = 1, layers: int = 1) -> dict:
    """Bake ``add_kernel`` as Inductor does after autotuning on the H100, in a session for ``target``.
    ``from_a_worker``: compiled in a compile worker, as Inductor's parallel compile does: the
    autotuner came back pickled without its function and reloads it from the kernel's source.
    ``launches`` saves of one autotuner; ``layers`` autotuners of the one kernel, as the compile-time
    autotune block makes one per layer."""
    built = [_autotuner(name, from_a_worker) for _ in range(layers)]
    if target is None:
        for autotuner, launcher in built:
            autotuner.save_gpu_kernel(None, launcher)
        return {"params": CudaKernelParamCache.get(name)}
    with aoti_hooks.session(["kv_elide"], target=target) as session:
        for autotuner, launcher in built:
            for _ in range(launches):  # outside benchmarking Inductor saves a kernel at each of its launches
                autotuner.save_gpu_kernel(None, launcher)
        params = CudaKernelParamCache.get(name)  # as Inductor reads it to write the kernel's launch
    report = {key: value for key, value in (session.report.get("target") or {}).items()
              if key not in ("target_build_s", "target_builds_in_workers")}  # times, and where the builds ran
    return {"params": params, "report": report}


def _autotuner(name: str, from_a_worker: bool, kernel=add_kernel, block: int = 1024):
    """An autotuner of ``kernel`` and its winner's launcher (``BLOCK=block``), compiled for the H100."""
    meta = {"signature": SIGNATURE, "device": _h100_props(), "constants": {}, "configs": [{}]}
    config = triton.Config({"BLOCK": block}, num_warps=4, num_stages=1)
    autotuner = CachingAutotuner(copy.copy(kernel), meta, [config], None, [], False, None,
                                 inductor_meta={"kernel_name": name})
    if from_a_worker:
        autotuner.prepare_for_pickle()  # what the worker strips before sending it back
        autotuner._reload_kernel = lambda: SimpleNamespace(fn=kernel)  # stands for reloading the source
    local = triton.compile(ASTSource(kernel, SIGNATURE, {"BLOCK": block}, {}),
                           target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    launcher = SimpleNamespace(bin=local, config=config, def_args=["x", "y", "out", "n"],
                               call_args=["x", "y", "out", "n"], global_scratch=None, profile_scratch=None)
    return autotuner, launcher


def _binary(params) -> bytes:
    with open(params["cubin_path"], "rb") as file:
        return file.read()


def test_stock_bakes_the_local_gpus_code():
    assert cuda_arch(_binary(_baked("triton_poi_stock_0")["params"])) == 90


def test_a_target_of_another_architecture_bakes_its_cubin():
    found = _baked("triton_poi_rtx5090_0", "rtx5090")
    assert cuda_arch(_binary(found["params"])) == 120
    assert found["params"]["shared_mem"] <= 101_376
    assert found["report"] == {"kernels_built_as_cubin_for_sm_120": 1}
    assert cuda_arch(_binary(_baked("triton_poi_rtx4090_0", "rtx4090")["params"])) == 89


def test_a_kernel_launched_once_per_layer_is_built_for_the_target_once():
    found = _baked("triton_poi_layers_0", "rtx5090", launches=3)
    assert cuda_arch(_binary(found["params"])) == 120
    assert found["report"] == {"kernels_built_as_cubin_for_sm_120": 1, "target_builds_reused": 2}
    # one autotuner per layer, each with its own launcher of the same build: still one target build
    found = _baked("triton_poi_layers_1", "rtx5090", layers=3)
    assert cuda_arch(_binary(found["params"])) == 120
    assert found["report"] == {"kernels_built_as_cubin_for_sm_120": 1, "target_builds_reused": 2}


def test_only_the_winner_a_kernel_name_ends_with_is_built_for_the_target():
    """One kernel in three layers, each layer's autotuner with another winner: the artifact keeps the
    last one saved under the name (as stock's does), and only that one is built for the target."""
    built = [_autotuner("triton_poi_winners_0", False, block=block) for block in (256, 512, 1024)]
    with aoti_hooks.session(["kv_elide"], target="rtx5090") as session:
        for autotuner, launcher in built:
            autotuner.save_gpu_kernel(None, launcher)
        params = CudaKernelParamCache.get("triton_poi_winners_0")
    assert params["config"]["BLOCK"] == 1024 and cuda_arch(_binary(params)) == 120
    report = session.report.get("target")
    assert report["kernels_built_as_cubin_for_sm_120"] == 1 and report["target_builds_reused"] == 2


KERNEL_FILE = """
import triton
import triton.language as tl

@triton.jit
def add_times_{i}(x, y, out, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out + offsets, tl.load(x + offsets, mask=mask) + {i} * tl.load(y + offsets, mask=mask), mask=mask)
"""


def test_the_target_builds_run_in_inductors_compile_workers(tmp_path, monkeypatch):
    """Three kernels, each in a module file as Inductor writes them, baked for an RTX 5090: Inductor's
    real compile workers build them into Triton's cache, and the compiling process finds each there
    (one sm_120 build per kernel in the cache, none of its own beside it)."""
    import importlib.util
    import time

    from torch._inductor.async_compile import AsyncCompile, get_compile_threads

    if get_compile_threads() <= 1:
        pytest.skip("Inductor runs no compile workers on a machine with one CPU")
    AsyncCompile.warm_pool()  # as a compile starts it; its workers are up by the time the kernels are baked
    ready_by = time.monotonic() + 180
    while not AsyncCompile.use_process_pool():
        assert time.monotonic() < ready_by, "Inductor's compile workers did not start in 3 minutes"
        time.sleep(0.2)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    kernels = []
    for i in range(3):
        path = tmp_path / f"kernel_{i}.py"
        path.write_text(KERNEL_FILE.format(i=i + 2))
        spec = importlib.util.spec_from_file_location(f"kernel_{i}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        kernels.append(getattr(module, f"add_times_{i + 2}"))
    built = [_autotuner(f"triton_poi_workers_{i}", False, kernel) for i, kernel in enumerate(kernels)]
    with aoti_hooks.session(["kv_elide"], target="rtx5090") as session:
        for autotuner, launcher in built:
            autotuner.save_gpu_kernel(None, launcher)
        baked = [CudaKernelParamCache.get(f"triton_poi_workers_{i}") for i in range(3)]
    assert [cuda_arch(_binary(params)) for params in baked] == [120, 120, 120]
    report = session.report.get("target")
    assert report["kernels_built_as_cubin_for_sm_120"] == 3 and report["target_builds_in_workers"] == 3
    cached = [cuda_arch(path.read_bytes()) for path in (tmp_path / "triton").rglob("*.cubin")]
    assert sorted(cached) == [90, 90, 90, 120, 120, 120]


def test_a_kernel_compiled_in_a_worker_process_is_built_for_the_target_too():
    found = _baked("triton_poi_worker_0", "rtx5090", from_a_worker=True)
    assert cuda_arch(_binary(found["params"])) == 120


def test_the_same_architecture_keeps_the_local_build():
    found = _baked("triton_poi_h100_0", "h100")
    assert cuda_arch(_binary(found["params"])) == 90
    assert found["report"] == {}
    assert cuda_arch(_binary(_baked("triton_poi_sized_0", "rtx5090,sm=90")["params"])) == 90


def test_code_ptx_bakes_ptx_the_driver_builds_on_load():
    found = _baked("triton_poi_a100_ptx_0", "a100,code=ptx")
    binary = _binary(found["params"])
    assert binary.endswith(b"\0") and cuda_arch(binary) is None
    assert ptx_target(binary) == (80, False)
    assert found["report"] == {"kernels_built_as_ptx_for_sm_80": 1}


def test_an_architecture_triton_cannot_build_for_is_refused_in_one_sentence():
    with pytest.raises(AotiHooksError) as caught:
        _baked("triton_poi_sm_35_0", "smem=49152,sm=35")
    message = str(caught.value)
    assert "cannot build kernel triton_poi_sm_35_0 for sm_35" in message and "\n" not in message


def test_the_compile_names_the_target_architecture_for_fatbins(monkeypatch):
    from aoti_hooks.seams.inductor import arch, target_compile_options

    monkeypatch.setattr(arch, "local_sm", lambda: 90)  # the H100 stand-in again
    assert target_compile_options(aoti_hooks.parse_target("rtx5090"), {"a": 1}) == {"a": 1, "cuda.arch": "120"}
    assert target_compile_options(aoti_hooks.parse_target("h100"), {"a": 1}) == {"a": 1}
    assert target_compile_options(aoti_hooks.parse_target("smem=101376"), {}) == {}


@pytest.mark.parametrize("target, sm", [("rtx5090", 120), ("a100", 80)])
def test_inspect_reads_a_baked_kernels_registers_as_cuobjdump_does(target, sm, tmp_path, capsys):
    """The registers per thread in a real cubin's ``.nv.info``, against NVIDIA's own reader (Triton ships
    ``cuobjdump``), and in ``inspect``'s listing of a package holding that cubin."""
    import os
    import re
    import subprocess
    import zipfile

    from aoti_hooks.tools.cli import main
    from aoti_hooks.tools.kernels import cubin_registers

    name = f"triton_poi_regs_{sm}_0"
    binary = _binary(_baked(name, target)["params"])
    registers = cubin_registers(binary)
    assert set(registers) == {"add_kernel"} and registers["add_kernel"] > 0
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if os.path.exists(cuobjdump):
        (tmp_path / "k.cubin").write_bytes(binary)
        listed = subprocess.run([cuobjdump, "--dump-resource-usage", str(tmp_path / "k.cubin")],
                                capture_output=True, text=True).stdout
        assert [int(n) for n in re.findall(r"REG:(\d+)", listed)] == [registers["add_kernel"]]
    package = tmp_path / "p.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("model/data/aotinductor/model/c.wrapper.cpp",
                         "launchKernel(kernels_.add_kernel, grid_0, grid_1, grid_2, 4, 0, kernel_args_, stream_);\n")
        archive.writestr("model/data/aotinductor/model/c.cubin", binary)
    assert main(["inspect", str(package), "--target", target]) == 0
    out = capsys.readouterr().out
    assert f"add_kernel: 0 B shared, 128 threads, {registers['add_kernel']} registers  ok" in out
    assert f"built for: sm_{sm}" in out


def test_kernels_built_into_a_library_are_listed_with_their_architecture_and_registers():
    """A delegate library of a .pte embeds its cubins (ExecuTorch's CudaBackend builds them in): two real
    ones, for sm_120 and sm_80, inside a stand-in library's bytes, read back with their functions."""
    from aoti_hooks.tools.kernels import cubin_registers, embedded_images

    five = _binary(_baked("triton_poi_lib_120_0", "rtx5090")["params"])
    hundred = _binary(_baked("triton_poi_lib_80_0", "a100")["params"])
    library = b"\x7fELF host library" + bytes(4000) + five + bytes(123) + hundred + bytes(50)
    assert embedded_images(library) == [(120, cubin_registers(five)), (80, cubin_registers(hundred))]


def _cuobjdump_lists(binary: bytes, tmp_path) -> list[str]:
    """What NVIDIA's ``cuobjdump`` (the one Triton ships) lists in a baked binary: each ELF and PTX member."""
    import os
    import subprocess

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        pytest.skip("this Triton ships no cuobjdump")
    path = tmp_path / "kernel.fatbin"
    path.write_bytes(binary)
    listed = subprocess.run([tool, "-lelf", "-lptx", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split(":", 1)[1].strip() for line in listed.splitlines() if ":" in line]


def test_a_target_of_several_gpus_bakes_one_fatbin_that_launches_on_each(tmp_path, capsys):
    """rtx4090, rtx5090 and h100 from one compile on the H100: its own sm_90 build is kept, sm_89 and
    sm_120 are built, and the three go into one fatbin that NVIDIA's cuobjdump and `inspect` read."""
    import zipfile

    from aoti_hooks.tools.cli import main
    from aoti_hooks.tools.kernels import code_sets

    found = _baked("triton_poi_several_0", "rtx4090,rtx5090,h100")
    binary = _binary(found["params"])
    assert code_sets(binary) == [["sm_89", "sm_90", "sm_120"]]
    assert _cuobjdump_lists(binary, tmp_path) == [f"triton_poi_several_0.{arch}.cubin"
                                                  for arch in ("sm_89", "sm_90a", "sm_120a")]
    assert found["report"] == {"kernels_built_as_cubin_for_sm_89": 1, "kernels_built_as_cubin_for_sm_120": 1,
                               "fatbins_baked": 1}
    shared = found["params"]["shared_mem"]
    package = tmp_path / "several.pt2"
    with zipfile.ZipFile(package, "w") as archive:  # as the package holds it: the launch line and the binary
        archive.writestr("model/data/aotinductor/model/c.wrapper.cpp",
                         f"launchKernel(kernels_.triton_poi_several_0, grid_0, grid_1, grid_2, 4, {shared}, a, s);")
        archive.writestr("model/data/aotinductor/model/c1.cubin", binary)
    assert main(["inspect", str(package), "--target", "rtx4090,rtx5090,h100"]) == 0
    assert "built for: sm_89, sm_90, sm_120" in capsys.readouterr().out
    assert main(["inspect", str(package), "--target", "a100"]) == 1  # it holds no sm_80 code
    assert "c1.cubin holds no code for sm_80 (it holds sm_89, sm_90, sm_120)" in capsys.readouterr().out


def test_a_gpu_and_every_later_one_carry_its_cubin_and_its_ptx(tmp_path):
    found = _baked("triton_poi_a100_later_0", "a100+")
    binary = _binary(found["params"])
    assert _cuobjdump_lists(binary, tmp_path) == ["triton_poi_a100_later_0.sm_80.cubin",
                                                  "triton_poi_a100_later_0.sm_80.ptx"]
    assert found["report"] == {"kernels_built_as_cubin_for_sm_80": 1, "kernels_built_as_ptx_for_sm_80": 1,
                               "fatbins_baked": 1}


def test_a_target_of_several_gpus_without_nvfatbin_is_one_sentence(monkeypatch):
    from aoti_hooks.seams.inductor import fatbin

    monkeypatch.setattr(fatbin, "_candidates", lambda: [])
    fatbin.library.cache_clear()
    try:
        with pytest.raises(AotiHooksError, match=r"nvFatbin library, which is not installed here; pip install "
                                                 r"\"aoti-hooks\[several-gpus\]\""):
            fatbin.require()
    finally:
        fatbin.library.cache_clear()


def test_a_manifests_binaries_are_found_in_a_library_by_their_hash(tmp_path):
    """`kernel_manifest` believes a launch only where the library holds the kernel's binary: a cubin and
    a fatbin built here are found in a stand-in for a delegate library (a CUDA library cannot be built
    on this CPU), and a changed byte loses the one it changes."""
    from aoti_hooks.core import kernel_manifest
    from aoti_hooks.seams.inductor import fatbin

    _, launcher = _autotuner("triton_poi_lib_0", False)
    cubin = launcher.bin.asm["cubin"]
    several = fatbin.pack([(80, True, launcher.bin.asm["ptx"].encode())], "triton_poi_lib_1")
    launches = {}
    for name, binary in (("triton_poi_lib_0", cubin), ("triton_poi_lib_1", several)):
        path = tmp_path / f"{name}.cubin"
        path.write_bytes(binary)
        launches[name] = {"function": name, "shared_bytes": 0, "threads": 128, "binary": str(path)}
    manifest = kernel_manifest.parse(kernel_manifest.manifest(launches, "abc_so_blob", "h100"))
    library = b"\x7fELF host code" + bytes(100) + cubin + bytes(9) + several + b"tail"
    assert kernel_manifest.binaries_in(manifest, library) == {"triton_poi_lib_0": cubin, "triton_poi_lib_1": several}
    changed = bytearray(library)
    changed[len(b"\x7fELF host code") + 100 + 200] ^= 0xFF  # a byte of the cubin
    assert list(kernel_manifest.binaries_in(manifest, bytes(changed))) == ["triton_poi_lib_1"]


@pytest.mark.compile
def test_a_program_lowered_in_a_session_carries_a_kernel_manifest_that_inspect_checks(register, tmp_path, capsys):
    """A real CPU lowering in a session: the kernel Inductor reads to write its launch lands in the
    program's named data as the library's manifest, and `inspect` checks it against the library. The
    library is the CPU's (no GPU kernel can be compiled into one here), so the manifest's kernel is not
    in it, and inspect says so rather than believe the manifest."""
    import hashlib
    from contextlib import contextmanager

    pytest.importorskip("executorch.backends.aoti.aoti_backend")
    from et_helpers import lower, method_spec

    import aoti_hooks.executorch as integration
    from aoti_hooks.core import kernel_manifest
    from aoti_hooks.seams.executorch import deserialize_pte_binary
    from aoti_hooks.tools.cli import main
    from aoti_hooks.tools.models.decoder import CONFIGS, build, export_decoder

    class GpuWrapper:
        """Stands for Inductor's GPU wrapper, which cannot run on this CPU: while the method compiles it
        saves a Triton kernel (built here for an H100) and reads its entry to write the launch."""

        @aoti_hooks.hookimpl
        def compile_context(self, session):
            @contextmanager
            def baking():
                autotuner, launcher = _autotuner("triton_poi_manifest_0", False)
                autotuner.save_gpu_kernel(None, launcher)
                CudaKernelParamCache.get("triton_poi_manifest_0")
                yield

            return baking()

    register("gpu_wrapper", GpuWrapper())
    try:
        pte, _ = lower({"forward": export_decoder(build(CONFIGS["tiny"]))},
                       {"forward": [method_spec("forward"), *aoti_hooks.compile_specs(["gpu_wrapper"])]})
    finally:
        integration.uninstall()
    named = deserialize_pte_binary(pte).named_data
    blobs = {key: bytes(named.buffers[entry.buffer_index]) for key, entry in named.pte_data.items()}
    (library_key,) = [key for key in blobs if key.endswith("_so_blob")]
    manifest = kernel_manifest.parse(blobs[kernel_manifest.key_for(library_key)])
    (kernel,) = manifest["kernels"]
    params = CudaKernelParamCache.get("triton_poi_manifest_0")
    assert kernel == {"name": "triton_poi_manifest_0", "function": params["mangled_name"],
                      "shared_bytes": params["shared_mem"], "threads": 128, "bytes": len(_binary(params)),
                      "sha256": hashlib.sha256(_binary(params)).hexdigest()}
    program = tmp_path / "model.pte"
    program.write_bytes(pte)
    assert main(["inspect", str(program), "--target", "h100"]) == 1
    assert ("triton_poi_manifest_0: the manifest's binary for it is not in delegate library 1, so its launch "
            "cannot be checked") in capsys.readouterr().out
