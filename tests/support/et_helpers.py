"""A CPU ``AotiBackend`` for tests, lowering to a ``.pte``, and running its delegate on the CPU.

No ExecuTorch runtime runs here; the delegate's ``.so`` and weights blob are taken out of
the ``.pte`` and run in torch's CPU AOTI runner, which is what an AOTI delegate is.
"""

from __future__ import annotations

import os
import warnings

import torch
from executorch.backends.aoti.aoti_backend import AotiBackend
from executorch.backends.aoti.aoti_partitioner import AotiPartitioner
from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
from executorch.exir._serialize._program import deserialize_pte_binary
from executorch.exir.backend.backend_details import BackendDetails
from executorch.exir.backend.compile_spec_schema import CompileSpec

warnings.filterwarnings("ignore", message=".*experimental.*")


class _AnyKernel(dict):
    """A fallback-kernel table that supports every kernel (the CPU runner has them all)."""

    def __contains__(self, kernel) -> bool:
        return True


class AotiHooksCpuTestBackend(AotiBackend, BackendDetails):
    """ExecuTorch's AOTI backend compiling for the CPU; records the specs each call saw."""

    seen_specs: list[dict[str, bytes]] = []

    @classmethod
    def get_device_name(cls) -> str:
        return "cpu"

    @classmethod
    def get_supported_fallback_kernels(cls):
        return _AnyKernel()

    @classmethod
    def get_decomposition_table(cls):
        return {}

    @classmethod
    def get_aoti_compile_options(cls, compile_specs):
        cls.seen_specs.append({spec.key: bytes(spec.value) for spec in compile_specs})
        return {
            "aot_inductor.package": True,
            "aot_inductor.package_constants_in_so": False,
            "aot_inductor.package_constants_on_disk_format": "binary_blob",
            "aot_inductor.compile_wrapper_opt_level": "O0",
        }

    @classmethod
    def get_custom_passes(cls, compile_specs):
        return []


BACKEND = AotiHooksCpuTestBackend.__name__


def method_spec(method: str) -> CompileSpec:
    return AotiHooksCpuTestBackend.generate_method_name_compile_spec(method)


def lower(programs: dict, specs: dict) -> tuple[bytes, dict]:
    """Lower ``{method: ExportedProgram}`` with ``{method: [CompileSpec]}``; the .pte and the edge manager."""
    partitioners = {method: [AotiPartitioner(BACKEND, specs[method])] for method in programs}
    edge = to_edge_transform_and_lower(
        programs, partitioner=partitioners, compile_config=EdgeCompileConfig(_check_ir_validity=False)
    )
    return edge.to_executorch().buffer, edge


def delegates(pte: bytes) -> dict[str, tuple[str, bytes, bytes]]:
    """``{method: (backend id, .so bytes, weights blob bytes)}`` of a .pte with one delegate per method
    (constant methods, which hold values such as the max sequence length and no delegate, left out)."""
    program = deserialize_pte_binary(pte)
    named = program.named_data
    blobs = {key: bytes(named.buffers[entry.buffer_index]) for key, entry in named.pte_data.items()}
    found = {}
    for plan in program.program.execution_plan:
        if not plan.delegates:
            continue
        (delegate,) = plan.delegates
        processed = program.program.backend_delegate_data[delegate.processed.index].data
        so_key, weights_key = bytes(processed).decode().split("\n")
        found[plan.name] = (delegate.id, blobs[so_key], blobs[weights_key])
    return found


class DelegateRunner:
    """One delegate's .so and weights blob, loaded in torch's CPU AOTI runner."""

    def __init__(self, folder: str, so: bytes, weights: bytes, input_names: tuple[str, ...]):
        os.makedirs(folder, exist_ok=True)
        so_path, blob_path = os.path.join(folder, "delegate.so"), os.path.join(folder, "weights.blob")
        with open(so_path, "wb") as f:
            f.write(so)
        with open(blob_path, "wb") as f:
            f.write(weights)
        self.runner = torch._C._aoti.AOTIModelContainerRunnerCpu(so_path, 1)
        self.runner.update_constant_buffer_from_blob(blob_path)
        self.input_names = input_names

    def __call__(self, tokens, input_pos, temperature=None):
        given = {"tokens": tokens, "input_pos": input_pos, "temperature": temperature}
        return self.runner.run([given[name] for name in self.input_names])[0]


def input_names(edge, method: str) -> tuple[str, ...]:
    """The order in which the method's delegate takes its inputs."""
    module = edge.exported_program(method).graph_module.lowered_module_0
    return tuple(module.original_module.graph_signature.user_inputs)
