"""A Hugging Face model from a config through the ExecuTorch exporters its users run, unedited:
``bench --model hf:<name> --exporter transformers|optimum``.

- ``transformers``: transformers' ``ExecutorchExporter().export(model, {"input_ids": ...},
  config=ExecutorchConfig(backend="cuda"))``, the model's forward over a ``ctx``-token prompt (what
  the exporter's documentation shows); the delegate takes the prompt and returns the logits and the
  new keys and values.
- ``optimum``: optimum-executorch's ``main_export(folder, "text-generation", "cuda", ...)`` (what
  ``optimum-cli export executorch --recipe cuda`` calls) on the model saved to a folder, its static
  KV cache ``ctx`` long; the delegate takes a token and its position and keeps the cache.

Neither takes aoti-hooks compile specs: the plugins reach them through a session around the export
(or ``aoti-hooks run``). Outputs are compared by running each variant's delegate, taken out of its
``.pte``/``.ptd``, on the same seeded inputs (`outputs`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

import torch

from ...core.errors import AotiHooksError
from . import hf

EXPORTERS = {"transformers": "transformers' ExecutorchExporter (backend cuda)",
             "optimum": "optimum-executorch's cuda recipe (main_export, as optimum-cli runs it)"}
PROMPT = 16  # tokens of the transformers exporter's example prompt
INSTALL = {"transformers": "pip install 'transformers>=5.17'",
           "optimum": "pip install optimum-executorch (and pandas, which its cuda recipe imports)"}


def check_installed(exporter: str) -> None:
    """One sentence naming what to install when ``exporter``'s package is missing."""
    module = {"transformers": "transformers.exporters", "optimum": "optimum.exporters.executorch"}[exporter]
    try:
        __import__(module)
    except ImportError as error:
        raise AotiHooksError(f"--exporter {exporter} runs {EXPORTERS[exporter]}, which needs {module} "
                             f"({error}); {INSTALL[exporter]}") from None


def save_model(name: str, layers: int | None, ctx: int, folder: str) -> int:
    """Hugging Face model ``name`` built from its config (bf16, seeded) saved as a model folder, as a
    user's download is; its weights' bytes."""
    model = hf.causal_lm(name, layers, positions=ctx)
    model.save_pretrained(folder)
    return hf.parameter_bytes(model)


def prompt(name: str, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, hf.MODELS[name]["vocab_size"], (1, PROMPT), generator=generator)


def prepared_lowering(spec: dict) -> tuple[Callable[[], tuple[dict, Callable[[], dict]]], int, int | None]:
    """``(lowering, weight bytes, cache bytes)`` for the bench worker: the model is built (and, for
    optimum, saved) before the measured part; ``lowering()`` runs the exporter, inside a session with
    the run's plugins when it names any, and writes the program to the run's folder."""
    from ..harness.artifacts import contents_path, described, program_files, write_program

    exporter, name = spec["exporter"], spec["hf"]
    ctx = spec.get("ctx") or hf.DEFAULT_CTX
    folder = os.path.splitext(spec["package"])[0]
    os.makedirs(folder, exist_ok=True)
    if exporter == "optimum":
        model_folder = folder + "-model"
        weight_bytes = save_model(name, spec.get("layers"), ctx, model_folder)
        dims = hf.MODELS[name]
        head_dim = dims.get("head_dim", dims["hidden_size"] // dims["num_attention_heads"])
        kv_bytes = 2 * (spec.get("layers") or dims["num_hidden_layers"]) * dims["num_key_value_heads"] * ctx * head_dim * 2

        def export() -> list[str]:
            from optimum.exporters.executorch import main_export

            main_export(model_folder, task="text-generation", recipe="cuda", output_dir=folder, dtype="bfloat16",
                        max_seq_len=ctx)
            return program_files(folder)
    else:
        model = hf.causal_lm(name, spec.get("layers"), positions=ctx)
        weight_bytes = hf.parameter_bytes(model)
        kv_bytes = None  # no cache: the prompt's new keys and values are outputs

        def export() -> list[str]:
            from transformers.exporters import ExecutorchConfig, ExecutorchExporter

            exported = ExecutorchExporter().export(model, {"input_ids": prompt(name)},
                                                   config=ExecutorchConfig(backend="cuda"))
            return write_program(getattr(exported, "program", exported), folder)  # 5.17 returns the manager

    def lowering() -> tuple[dict, Callable[[], dict]]:
        import aoti_hooks

        session = (aoti_hooks.session(spec["plugins"], target=spec.get("target") or "local", **spec.get("options", {}))
                   if spec["plugins"] else contextlib.nullcontext())
        with session:
            written = export()
        report = session.report.as_dict() if spec["plugins"] else {}
        return report, lambda: described(written, contents_path(spec))

    return lowering, weight_bytes, kv_bytes


def step_inputs(exporter: str, name: str, steps: int) -> list[list[torch.Tensor]]:
    """The delegate's inputs for each of ``steps`` calls: the prompt (transformers: the same each
    call, the export keeps no state), or the seeded decode calls of `hf.decode_inputs`, a token and
    its position (optimum: the delegate's cache carries over)."""
    if exporter == "transformers":
        return [[prompt(name)] for _ in range(steps)]
    return [[call["input_ids"], call["cache_position"]] for call in hf.decode_inputs(name, steps)]


@torch.no_grad()
def outputs(spec: dict) -> dict:
    """Run the delegate of the run in ``spec["folder"]`` (taken out of its ``.pte``/``.ptd``) over
    ``steps`` calls on the GPU; save every output of every call to ``spec["logits"]``."""
    from ..harness.artifacts import tensor_digest
    from .et_gemma4 import delegate_runners

    device = "cuda:0"
    runners, _ = delegate_runners(spec["folder"], device)
    if len(runners) != 1:
        raise AotiHooksError(f"expected one delegate in {spec['folder']}, found {sorted(runners)}")
    (run,) = runners.values()
    saved = []
    for inputs in step_inputs(spec["exporter"], spec["hf"], spec.get("steps", 4)):
        saved.append([out.detach().cpu() for out in run([tensor.to(device) for tensor in inputs])])
    torch.cuda.synchronize()
    torch.save(saved, spec["logits"])
    return {"steps": len(saved), "outputs_sha256": [[tensor_digest(out) for out in step] for step in saved]}
