"""Hugging Face transformers' own exporters and optimum-executorch's, run unedited inside a session, on a Qwen3 built from a config.

- ``ExecutorchExporter``: it builds its partitioner and compile specs itself, so no aoti-hooks spec can
  reach it; the session covers its method. Its ``cuda`` backend needs a GPU, so the test registers one
  more backend in transformers' own table of them (``_BACKEND_PREPARE``) that partitions to the CPU
  ``AotiBackend`` of these tests: a stand-in for CudaBackend, which cannot run here; the exporter's
  code (export, its fixes and patches, ``to_edge_transform_and_lower``, ``to_executorch``) is its own.
- ``DynamoExporter`` (its torch.export path), compiled by torch's own ``aoti_compile_and_package``.
- optimum-executorch's ``cuda`` recipe (``main_export``), its ``CudaPartitioner`` partitioning to the same
  CPU backend; its loading, export and lowering are its own.

Each against the same exporter outside a session: weights equal, outputs equal.
"""

import pytest
import torch

pytest.importorskip("transformers.exporters")

from et_helpers import BACKEND, DelegateRunner, delegates, method_spec  # noqa: E402

import aoti_hooks  # noqa: E402
from aoti_hooks.hosts import executorch as host  # noqa: E402
from aoti_hooks.tools.models import hf  # noqa: E402

pytestmark = pytest.mark.compile
OPTIONS = {"const_offload": {"min_bytes": "1KiB"}}
INPUTS = {"input_ids": torch.tensor([[5, 3, 9, 1]])}


def qwen3():
    return hf.causal_lm("qwen3-tiny", positions=64, dtype=torch.float32)


@pytest.fixture
def cpu_backend_in_transformers(monkeypatch):
    """transformers' ExecuTorch exporter with one more backend: the CPU AotiBackend (see the module doc)."""
    import transformers.exporters.exporter_executorch as exporter_module
    from executorch.backends.aoti.aoti_partitioner import AotiPartitioner

    def prepare(model, inputs):
        model.requires_grad_(False)
        return model, exporter_module._make_contiguous(inputs), [
            AotiPartitioner(BACKEND, [method_spec(model.__class__.__name__)])]

    monkeypatch.setitem(exporter_module._BACKEND_PREPARE, "aoti_hooks_cpu_test", prepare)
    was_installed = host.installed()
    yield "aoti_hooks_cpu_test"
    (host.install if was_installed else host.uninstall)()


def test_a_session_covers_transformers_executorch_exporter(cpu_backend_in_transformers, tmp_path):
    from transformers.exporters import ExecutorchConfig, ExecutorchExporter

    config = ExecutorchConfig(backend=cpu_backend_in_transformers)
    stock = delegates(ExecutorchExporter().export(qwen3(), dict(INPUTS), config=config).program.buffer)
    host.uninstall()  # as in a fresh process: nobody imported aoti_hooks.executorch
    with aoti_hooks.session(["kv_elide", "const_offload"], **OPTIONS) as session:
        assert host.installed()  # the session turned it on: ExecuTorch's AOTI backend was imported
        ours = delegates(ExecutorchExporter().export(qwen3(), dict(INPUTS), config=config).program.buffer)
    report = session.report.as_dict()
    assert report["const_offload"]["tensors_claimed"] > 0, report
    (method,) = stock
    assert set(ours) == {method} and ours[method][0] == stock[method][0] == BACKEND
    assert ours[method][2] == stock[method][2]  # the weights blob, byte for byte
    outputs = [DelegateRunner(str(tmp_path / name), found[method][1], found[method][2], ("input_ids",))
               .runner.run([INPUTS["input_ids"]]) for name, found in (("stock", stock), ("ours", ours))]
    assert len(outputs[0]) == len(outputs[1]) == 5  # the new keys and values of both layers, then the logits
    assert all(torch.equal(got, want) for got, want in zip(outputs[1], outputs[0]))
    with torch.no_grad():
        eager = qwen3()(**INPUTS).logits
    torch.testing.assert_close(outputs[1][-1], eager, rtol=1e-4, atol=1e-4)


def test_a_session_covers_transformers_dynamo_exporter_compiled_by_torchs_own_aoti(tmp_path):
    from transformers.exporters import DynamoConfig, DynamoExporter

    def exported():
        return DynamoExporter().export(qwen3(), dict(INPUTS), config=DynamoConfig()).program

    stock = torch._inductor.aoti_compile_and_package(exported(), package_path=str(tmp_path / "stock.pt2"))
    with aoti_hooks.session(["kv_elide", "const_offload"], **OPTIONS) as session:
        ours = torch._inductor.aoti_compile_and_package(exported(), package_path=str(tmp_path / "ours.pt2"))
    assert session.report.as_dict()["const_offload"]["tensors_claimed"] > 0
    runs = [torch._inductor.aoti_load_package(path) for path in (stock, ours)]
    constants = [run.get_constant_fqns() for run in runs]
    assert constants[0] == constants[1]
    stock_logits, our_logits = (run(**INPUTS).logits for run in runs)  # the model's own output class
    assert torch.equal(our_logits, stock_logits)
    with torch.no_grad():
        eager = qwen3()(**INPUTS).logits
    torch.testing.assert_close(our_logits, eager, rtol=1e-4, atol=1e-4)


def test_a_session_imports_no_executorch_a_process_has_not_imported():
    """The session turns the integration on only for a backend already loaded: plain AOTI users pay nothing."""
    import subprocess
    import sys

    code = ("import sys, aoti_hooks\n"
            "with aoti_hooks.session(['kv_elide']):\n"
            "    pass\n"
            "assert not any(name.startswith('executorch') for name in sys.modules), 'executorch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_aoti_hooks_run_turns_the_integration_on_when_the_script_imports_executorchs_backend():
    """Under ``aoti-hooks run``, a script that imports ExecuTorch's AOTI backend gets the integration
    (its ``preprocess`` goes through the seam) and one that never does imports no ExecuTorch."""
    import subprocess
    import sys

    probe = ("import sys\n"
             "if sys.argv[1] == 'import':\n"
             "    from executorch.backends.aoti.aoti_backend import AotiBackend\n"
             "    from aoti_hooks.seams import executorch as seam\n"
             "    assert seam.installed(), 'the integration is off'\n"
             "else:\n"
             "    assert not any(name.startswith('executorch') for name in sys.modules), 'executorch imported'\n")
    for mode in ("import", "none"):
        done = subprocess.run([sys.executable, "-m", "aoti_hooks", "run", "--plugins", "kv_elide", "--",
                               sys.executable, "-c", probe, mode], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (mode, done.stderr[-2000:])


def test_inspect_reads_the_delegate_libraries_of_a_pte(cpu_backend_in_transformers, tmp_path, capsys):
    """A .pte from transformers' exporter through the CPU AotiBackend: one delegate library, no CUDA image in it."""
    from transformers.exporters import ExecutorchConfig, ExecutorchExporter

    from aoti_hooks.tools.cli import main

    path = tmp_path / "model.pte"
    path.write_bytes(ExecutorchExporter().export(qwen3(), dict(INPUTS),
                                                 config=ExecutorchConfig(backend=cpu_backend_in_transformers)).program.buffer)
    assert main(["inspect", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: an ExecuTorch program with 1 delegate library and no GPU code in it"
    assert main(["inspect", str(path), "--target", "rtx5090"]) == 1  # nothing in it can launch on a GPU
    assert capsys.readouterr().out.strip().endswith("no GPU code in it; nothing in it launches on rtx5090")


@pytest.fixture
def cpu_backend_for_cuda_partitioner(monkeypatch):
    """ExecuTorch's ``CudaPartitioner`` as optimum-executorch imports it, partitioning to the CPU
    AotiBackend of these tests: a stand-in for CudaBackend, which cannot run here (see the module doc)."""
    import executorch.backends.cuda.cuda_partitioner as cuda_partitioner
    from executorch.backends.aoti.aoti_partitioner import AotiPartitioner

    class CpuPartitioner(AotiPartitioner):
        def __init__(self, compile_specs):
            super().__init__(BACKEND, [method_spec("forward")])

    monkeypatch.setattr(cuda_partitioner, "CudaPartitioner", CpuPartitioner)
    was_installed = host.installed()
    yield
    (host.install if was_installed else host.uninstall)()


def test_a_session_covers_optimum_executorchs_cuda_recipe(cpu_backend_for_cuda_partitioner, tmp_path):
    """optimum-executorch's ``main_export`` (what ``optimum-cli export executorch --recipe cuda`` runs) on a
    model folder: its own loading, static-cache export and lowering; the session claims the weights and the
    static KV cache, and the delegate gives stock's outputs."""
    pytest.importorskip("optimum.exporters.executorch")
    from optimum.exporters.executorch import main_export

    from aoti_hooks.tools.models import exporters

    model = tmp_path / "model"
    exporters.save_model("qwen3-tiny", 1, 64, str(model))  # one layer: its keys and values are the static cache

    def export(out):
        main_export(str(model), task="text-generation", recipe="cuda", output_dir=str(out), dtype="float32",
                    max_seq_len=64)
        return delegates((out / "model.pte").read_bytes())

    stock = export(tmp_path / "stock")
    host.uninstall()
    with aoti_hooks.session(["kv_elide", "const_offload"], kv_elide={"min_bytes": "1KiB"}, **OPTIONS) as session:
        ours = export(tmp_path / "ours")
    report = session.report.as_dict()
    assert report["kv_elide"]["tensors_claimed"] == 2 and report["const_offload"]["tensors_claimed"] > 0, report
    (method,) = stock
    assert ours[method][2] == stock[method][2]  # the weights blob, byte for byte
    steps = exporters.step_inputs("optimum", "qwen3-tiny", 3)
    outputs = []
    for name, found in (("stock", stock), ("ours", ours)):
        runner = DelegateRunner(str(tmp_path / name), found[method][1], found[method][2], ()).runner
        outputs.append([runner.run(inputs)[0] for inputs in steps])  # each call writes the cache the next reads
    assert all(torch.equal(got, want) for got, want in zip(outputs[1], outputs[0]))
