"""One plain-AOTI compile of a Hugging Face Qwen3 built from a config, in its own process, measured.

    python tests/support/host_memory_worker.py OUT.json PACKAGE.pt2 [stock|session|session-mmap]

Writes the weights' bytes, the host RSS and anonymous memory before and at the peak of the
compile, the session's ``host`` report, a digest of the user's tensors before and after, the
package's entries by SHA-256 and the logits of one decode step run from the package. With
``session-mmap`` the weights are saved to a safetensors file and loaded back memory-mapped
(``safetensors.torch.load_file``, assigned to the model) before the export, as a user loading a
checkpoint has them; the result then says which parameters are still backed by that file after
the compile, and how much of the file the process holds resident as its pages.
"""

import ctypes
import gc
import hashlib
import json
import sys
import zipfile

import torch

import aoti_hooks
from aoti_hooks.tools.harness.measure import Sampler

# Each compile has a cold cache: torch's headers precompiled for one compile cost more than they save.
CONFIGS = {"aot_inductor.precompile_headers": False, "aot_inductor.compile_wrapper_opt_level": "O0"}


def digest(tensors) -> str:
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def file_backed(tensors, path: str) -> int:
    """How many of ``tensors`` lie in a mapping of the file at ``path`` (read from /proc/self/maps)."""
    import os

    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == os.path.realpath(path):
                start, end = (int(part, 16) for part in fields[0].split("-"))
                ranges.append((start, end))
    return sum(any(start <= t.data_ptr() < end for start, end in ranges) for t in tensors)


def resident_in(path: str) -> int:
    """Bytes of the file at ``path`` resident in this process's mappings of it (``Rss`` in /proc/self/smaps):
    memory the process holds as that file's pages, not as anonymous memory."""
    import os

    resident, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's first line: its range, ..., its file
                inside = len(fields) >= 6 and os.path.realpath(fields[5]) == os.path.realpath(path)
            elif inside and fields[0] == "Rss:":
                resident += int(fields[1]) * 1024
    return resident


def main(out: str, package: str, mode: str) -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from transformers.integrations.executorch import TorchExportableModuleForDecoderOnlyLM

    config = Qwen3Config(vocab_size=16384, hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, head_dim=64, max_position_embeddings=256,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).eval()
    checkpoint = None
    if mode == "session-mmap":
        from safetensors.torch import load_file, save_file

        checkpoint = out + ".safetensors"
        save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, checkpoint)
        model.load_state_dict(load_file(checkpoint), assign=True)
        # The randomly initialised weights just replaced are free but may stay in the C heap as
        # anonymous pages; a user loading a checkpoint never had them, so they go back to the system.
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    model.generation_config.cache_implementation = "static"
    module = TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=256).eval()
    with torch.no_grad():
        program = module.export(input_ids=torch.tensor([[1]]), cache_position=torch.tensor([0]))
    weights = list(model.parameters())
    before = digest(weights)
    report = {}
    with Sampler() as sampler:
        if mode.startswith("session"):
            with aoti_hooks.session(["kv_elide"]) as session:
                aoti_hooks.aoti_compile_and_package(program, package, inductor_configs=CONFIGS)
            report = session.report.as_dict()
        else:
            torch._inductor.aoti_compile_and_package(program, package_path=package, inductor_configs=CONFIGS)
    with zipfile.ZipFile(package) as archive:  # entries without the archive's own top folder
        entries = {info.filename.split("/", 1)[1]: hashlib.sha256(archive.read(info)).hexdigest()
                   for info in archive.infolist()}
    runner = torch._inductor.aoti_load_package(package)
    logits = runner(input_ids=torch.tensor([[5]]), cache_position=torch.tensor([0]))
    json.dump({"weight_bytes": sum(t.numel() * t.element_size() for t in weights),
               "parameters": len(weights), "file_backed_parameters": file_backed(weights, checkpoint) if checkpoint else None,
               "checkpoint_resident": resident_in(checkpoint) if checkpoint else None,
               "rss_before": sampler.host_baseline, "rss_peak": sampler.host_peak,
               "anonymous_before": sampler.host_anonymous_baseline, "anonymous_peak": sampler.host_anonymous_peak,
               "report": report, "user_tensors_before": before, "user_tensors_after": digest(weights),
               "entries": entries, "logits": hashlib.sha256(logits.contiguous().numpy().tobytes()).hexdigest()},
              open(out, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "stock")
