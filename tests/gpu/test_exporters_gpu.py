"""The exporters users run, unedited, lowering to ExecuTorch's CudaBackend on this GPU, stock and under
``aoti-hooks run`` (no edit to the command): transformers' ``ExecutorchExporter`` in a user's script,
and ``optimum-cli export executorch --recipe cuda``. The plugins claim the model's tensors; the
``.ptd`` blobs and weight tables equal stock's; each delegate, run by torch's AOTI runner on the same
inputs, gives stock's outputs bit for bit. The same exporters inside a session at Qwen3-0.6B's size
are bench's (suite ``exporters``)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from aoti_hooks.tools.harness.artifacts import named_contents, program_files
from aoti_hooks.tools.models import exporters

pytestmark = pytest.mark.gpu

MODEL, CTX = "qwen3-small", 1024
PLUGINS = ["--plugins", "kv_elide,const_offload"]
TRANSFORMERS_SCRIPT = textwrap.dedent(f"""
    import sys
    from transformers.exporters import ExecutorchConfig, ExecutorchExporter
    from aoti_hooks.tools.harness.artifacts import write_program
    from aoti_hooks.tools.models import exporters, hf
    model = hf.causal_lm({MODEL!r}, positions={CTX})
    exported = ExecutorchExporter().export(model, {{"input_ids": exporters.prompt({MODEL!r})}},
                                           config=ExecutorchConfig(backend="cuda"))
    write_program(getattr(exported, "program", exported), sys.argv[1])
""")


def _command(exporter: str, tmp_path, out: str) -> list[str]:
    if exporter == "transformers":
        script = tmp_path / "export.py"
        script.write_text(TRANSFORMERS_SCRIPT)
        return [sys.executable, str(script), out]
    model = tmp_path / "model"
    if not model.exists():
        exporters.save_model(MODEL, None, CTX, str(model))
    return [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "executorch", "--model", str(model),
            "--task", "text-generation", "--recipe", "cuda", "--output_dir", out, "--dtype", "bfloat16",
            "--max_seq_len", str(CTX)]


def _outputs(exporter: str, folder: str, tmp_path) -> list:
    """The delegate's outputs over 3 calls, in a process of its own (bench's worker)."""
    spec = {"exporter": exporter, "hf": MODEL, "folder": folder, "steps": 3,
            "logits": str(tmp_path / f"{os.path.basename(folder)}.pt"), "result": str(tmp_path / "result.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "aoti_hooks.tools.harness.worker", "outputs", str(tmp_path / "spec.json")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(spec["logits"])


@pytest.mark.parametrize("exporter", ["transformers", "optimum"])
def test_an_exporter_run_unedited_under_aoti_hooks_run_gives_stocks_program_and_outputs(exporter, tmp_path):
    pytest.importorskip({"transformers": "transformers.exporters", "optimum": "optimum.exporters.executorch"}[exporter])
    if exporter == "optimum":
        try:  # optimum-executorch loads ExecuTorch's LLM custom ops whatever the recipe
            import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401
        except OSError as error:
            pytest.skip(f"optimum-executorch cannot run with torch {torch.__version__}: ExecuTorch's LLM custom ops, "
                        f"which it loads, were built for another torch ({str(error)[:120]})")
    stock, ours, report = str(tmp_path / "stock"), str(tmp_path / "ours"), tmp_path / "report.jsonl"
    done = subprocess.run(_command(exporter, tmp_path, stock), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, "-m", "aoti_hooks", "run", *PLUGINS, "--report", str(report), "--",
                           *_command(exporter, tmp_path, ours)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    entries = [json.loads(line) for line in report.read_text().splitlines()]
    claimed = sum(entry["report"].get(name, {}).get("tensors_claimed", 0)
                  for entry in entries for name in ("kv_elide", "const_offload"))
    assert claimed > 0, entries
    if exporter == "optimum":  # its static cache is a buffer of the program: kv_elide's
        assert any(entry["report"].get("kv_elide", {}).get("tensors_claimed") for entry in entries), entries
    assert named_contents(program_files(ours)) == named_contents(program_files(stock))
    got, want = _outputs(exporter, ours, tmp_path), _outputs(exporter, stock, tmp_path)
    assert len(got) == len(want) == 3 and all(torch.equal(x, y) for a, b in zip(got, want) for x, y in zip(a, b))
