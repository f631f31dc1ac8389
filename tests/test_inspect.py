"""``aoti-hooks inspect``: the GPU kernels a package bakes and whether they launch on a target, read on the CPU.

A CPU package (compiled here) bakes no GPU kernel. A CUDA package cannot be compiled here, so one is
assembled from what Inductor writes into one: wrapper lines in the form its C++ GPU wrapper
generates (``launchKernel(kernel, grid_0, grid_1, grid_2, warps, shared, kernel_args_, stream_)``),
and cubin headers with the ``e_flags`` ``cuobjdump --dump-elf`` reads from real cubins.
"""

import json
import struct
import zipfile

import pytest
import torch

from aoti_hooks.tools.cli import main
from aoti_hooks.tools.kernels import cuda_arch, embedded_arches, runs_on

# e_flags of real cubins per SM (cuobjdump --dump-elf)
E_FLAGS = {70: 0x460546, 75: 0x4B054B, 80: 0x500550, 86: 0x560556, 89: 0x590559, 90: 0x5A055A,
           100: 0x6006402, 103: 0x6006702, 110: 0x6006E02, 120: 0x6007802, 121: 0x6007902}


def cubin_header(flags: int, machine: int = 190) -> bytes:
    """The first 64 bytes of a 64-bit little-endian ELF (what the architecture is read from)."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0x33, 7]) + bytes(7)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, 64, 0, flags, 64, 56, 0, 64, 0, 0)


WRAPPER = """
    kernels_.triton_tem_fused_mm_0 = loadKernel("/tmp/x/c4.cubin", "triton_tem_fused_mm_0", 163840, cubin_dir_, &kernels_.loaded_modules_);
    void* kernel_args_[] = {&var_0, &var_1, &var_2};
    launchKernel(kernels_.triton_tem_fused_mm_0, grid_0, grid_1, grid_2, 8, 163840, kernel_args_, stream_);
    launchKernel(kernels_.triton_poi_fused_1, grid_0, grid_1, grid_2, 4, 0, kernel_args_, stream_);
    launchKernel(kernels_._sdpa_fwd_kernel_0, grid_0, grid_1, grid_2, 4, 102400, kernel_args_, stream_);
"""


@pytest.fixture
def cuda_package(tmp_path):
    path = tmp_path / "cuda.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data/aotinductor/model/cabc.wrapper.cpp", WRAPPER)
        archive.writestr("model/data/aotinductor/model/c4.cubin", cubin_header(E_FLAGS[90]) + bytes(256))
        archive.writestr("model/data/aotinductor/model/cabc.wrapper.so", b"\x7fELF host library" + bytes(64))
    return str(path)


@pytest.mark.parametrize("sm", E_FLAGS)
def test_the_architecture_is_read_from_a_cubins_header(sm):
    assert cuda_arch(cubin_header(E_FLAGS[sm])) == sm
    assert cuda_arch(cubin_header(E_FLAGS[sm], machine=62)) is None  # an x86-64 ELF is no cubin


def test_cubins_embedded_in_a_library_are_found():
    library = b"\x7fELF host" + bytes(100) + cubin_header(E_FLAGS[89]) + bytes(40) + cubin_header(E_FLAGS[120])
    assert embedded_arches(library) == [89, 120]


def test_code_runs_on_its_major_version_at_the_same_or_a_higher_minor():
    assert runs_on(80, 86) and runs_on(90, 90) and not runs_on(86, 80) and not runs_on(90, 120) and not runs_on(80, 90)


def test_a_package_for_an_h100_launches_there(cuda_package, capsys):
    assert main(["inspect", cuda_package, "--target", "h100"]) == 0
    out = capsys.readouterr().out
    assert "3 GPU kernel(s)" in out and "triton_tem_fused_mm_0: 163840 B shared, 256 threads  ok" in out
    assert "built for: sm_90" in out and "every kernel launches" in out


def test_a_package_for_an_h100_does_not_launch_on_a_5090_and_says_why(cuda_package, capsys):
    assert main(["inspect", cuda_package, "--target", "rtx5090", "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["problems"] == [
        "triton_tem_fused_mm_0 needs 163840 B of shared memory, the target allows 101376 B",
        "_sdpa_fwd_kernel_0 needs 102400 B of shared memory, the target allows 101376 B",
        "code built for sm_90 does not run on sm_120"]
    assert [k["launches_on_target"] for k in found["kernels"]] == [False, True, False]
    assert found["cubin_arches"] == {"c4.cubin": 90}


def test_an_explicit_shared_memory_target_checks_shared_memory_only(cuda_package, capsys):
    assert main(["inspect", cuda_package, "--target", "smem=200000,mem=24GiB"]) == 0
    assert "every kernel launches" in capsys.readouterr().out


def test_inspect_refuses_what_is_not_a_package_in_one_sentence(tmp_path, capsys):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"not a zip")
    assert main(["inspect", str(bad)]) == 2
    assert "is neither an AOTI package (.pt2) nor an ExecuTorch program (.pte)" in capsys.readouterr().err


@pytest.mark.compile
def test_a_cpu_package_bakes_no_gpu_kernel(tmp_path, capsys):
    from aoti_hooks.tools.demo import CONFIGS, build, export_decoder

    path = torch._inductor.aoti_compile_and_package(export_decoder(build(CONFIGS["tiny"])),
                                                    package_path=str(tmp_path / "cpu.pt2"))
    assert main(["inspect", path, "--target", "rtx5090"]) == 0
    out = capsys.readouterr().out
    assert "0 GPU kernel(s)" in out and "no CUDA binary found" in out and "every kernel launches" in out
