"""A disk without room, the file-size limit and Ctrl-C: one sentence, and nothing half-written at the destination.

Each case runs in a process of its own: one under a file-size limit the test sets (``ulimit -f``,
any user), one writing onto a small tmpfs the test mounts (needs root, as CI and this machine have;
skipped with the reason otherwise), one interrupted with SIGINT while it compiles.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from aoti_hooks.hosts import disk

EXPORT = textwrap.dedent("""
    import os, resource, sys
    import torch, aoti_hooks
    destination, limit = sys.argv[1], int(sys.argv[2])
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    torch.manual_seed(0)
    program = torch.export.export(torch.nn.Linear(1024, 1024), (torch.randn(1, 1024),))  # 4 MiB of weights
    print("compiling", flush=True)
    try:
        with aoti_hooks.session(["const_offload"]):
            aoti_hooks.aoti_compile_and_package(program, destination,
                                                inductor_configs={"aot_inductor.compile_wrapper_opt_level": "O0"})
    except aoti_hooks.AotiHooksError as error:
        print("said:", error)
    except KeyboardInterrupt:
        print("interrupted")
    print("left:", sorted(os.listdir(os.path.dirname(destination))))
""")
WEIGHTS = 1024 * 1024 * 4 + 1024 * 4


def default_sigint() -> None:
    """A child starts with Ctrl-C at its default: a shell's background job (``make test &``) passes it on ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def export(destination: Path, limit: int = 0, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", EXPORT, str(destination), str(limit)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def said(process: subprocess.Popen) -> tuple[str, str]:
    """The one sentence the export said, and what it left in the destination's folder."""
    output, _ = process.communicate(timeout=300)
    lines = output.strip().splitlines()
    sentences = [line.removeprefix("said: ") for line in lines if line.startswith("said: ")]
    assert len(sentences) == 1, output[-3000:]
    return sentences[0], lines[-1]


def test_a_disk_without_room_for_the_weights_is_said_before_compiling(small_disk):
    folder = small_disk(1 << 20)
    started = time.monotonic()
    sentence, left = said(export(folder / "model.pt2"))
    assert sentence.startswith("this export writes at least ") and "to a disk with 1.0 MiB free" in sentence
    assert f"the package 4.0 MiB in {folder}" in sentence and "\n" not in sentence
    assert left == "left: []" and time.monotonic() - started < 60  # nothing compiled, nothing written


@pytest.mark.compile
def test_a_disk_that_fills_while_the_package_is_written_leaves_nothing_at_the_destination(small_disk):
    folder = small_disk(WEIGHTS + (256 << 10))  # room for the weights, not for the package's library as well
    sentence, left = said(export(folder / "model.pt2"))
    assert sentence.startswith(f"the export stopped because the disk holding the package ({folder}) is full")
    assert f"leaving nothing at {folder / 'model.pt2'}; free space and run it again" in sentence
    assert left == "left: []"


def test_a_file_size_limit_below_the_weights_is_said_before_compiling(tmp_path):
    sentence, left = said(export(tmp_path / "model.pt2", limit=1 << 20))
    assert sentence == ("this export writes files of at least 4.0 MiB and this process may write files of at most "
                        "1.0 MiB (ulimit -f); raise the limit (ulimit -f unlimited) and run it again")
    assert left == "left: []"


@pytest.mark.compile
def test_a_file_size_limit_met_while_compiling_leaves_nothing_at_the_destination(tmp_path):
    sentence, left = said(export(tmp_path / "model.pt2", limit=WEIGHTS + (64 << 10)))
    assert sentence.startswith("the export stopped because a file passed this process's file-size limit "
                               f"(ulimit -f, 4.1 MiB), leaving nothing at {tmp_path / 'model.pt2'}")
    assert left == "left: []"


@pytest.mark.compile
def test_ctrl_c_while_compiling_leaves_nothing_at_the_destination(tmp_path):
    process = export(tmp_path / "model.pt2", preexec_fn=default_sigint)
    while not any(name.startswith(".aoti-hooks-writing-") for name in os.listdir(tmp_path)):
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    time.sleep(1)  # inside the compile
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert output.strip().splitlines()[-2:] == ["interrupted", "left: []"], output[-3000:]


def test_the_command_line_says_one_sentence_when_interrupted():
    process = subprocess.Popen([sys.executable, "-m", "aoti_hooks", "run", "--", sys.executable, "-c",
                                "import time; print('up', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=default_sigint)
    assert process.stdout.readline().strip() == "up"
    os.killpg(process.pid, signal.SIGINT)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130
    assert errors.strip().splitlines()[-1] == "aoti-hooks run: interrupted; no package was left half-written"


def test_the_floor_counts_each_parameter_once_and_a_subclass_by_its_inner_tensors():
    pytest.importorskip("torchao")
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    tied = torch.nn.Linear(64, 64)
    model = torch.nn.Sequential(tied, tied, torch.nn.Linear(64, 32))
    assert disk.parameter_bytes(torch.export.export(model, (torch.randn(1, 64),))) == (64 * 64 + 64 + 64 * 32 + 32) * 4
    quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))
    inner = sum(t.numel() * t.element_size() for t in (model[2].weight.qdata, model[2].weight.scale, model[2].weight.zero_point))
    assert inner < 64 * 32 * 4
    program = torch.export.export(model, (torch.randn(1, 64),))
    assert disk.parameter_bytes(program) == sum(
        disk.parameter_bytes(torch.export.export(layer, (torch.randn(1, 64),))) for layer in (model[0], model[2]))


def test_what_a_full_disk_looks_like_to_the_writers_is_recognized(tmp_path):
    writes = [(str(tmp_path), 1, "the package")]
    assert disk.filled(RuntimeError("[enforce fail at inline_container.cc:659] . unexpected pos 64 vs 0"), writes) \
        == f"the disk holding the package ({tmp_path}) is full ({disk.format_bytes(disk.shutil.disk_usage(tmp_path).free)} free)"
    assert disk.filled(OSError(28, "No space left on device"), writes).startswith("the disk holding the package")
    assert disk.filled(subprocess.CalledProcessError(-signal.SIGXFSZ, ["g++"]), writes) \
        == "a file grew past the largest file its disk takes"  # no file-size limit in this process
    assert disk.filled(RuntimeError("an error of another kind"), writes) is None


def test_a_second_method_sharing_the_first_ones_weights_needs_room_for_its_own_copy_only(small_disk, monkeypatch):
    """ExecuTorch's methods share their weights (a session gives each method a program copy sharing the
    tensors): the first method's floor holds the weights twice (Inductor's folder, the program's data),
    a second's once; a program of other tensors twice again; a check refused on a full disk counts nothing."""
    import copy
    import tempfile

    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 64))
    program = torch.export.export(model, (torch.randn(1, 256),))
    weights = disk.parameter_bytes(program)

    def method_copy():
        shared = {id(tensor): tensor for tensor in program.state_dict.values()}
        return copy.deepcopy(program, shared)

    first, second = method_copy(), method_copy()
    assert [nbytes for _, nbytes, _ in disk.executorch_writes(first)] == [weights, weights]
    assert [nbytes for _, nbytes, _ in disk.check_method_room(first)] == [weights, weights]
    assert [nbytes for _, nbytes, _ in disk.check_method_room(second)] == [weights, 0]
    other = torch.export.export(torch.nn.Linear(256, 256), (torch.randn(1, 256),))
    other_weights = disk.parameter_bytes(other)
    full = small_disk(64 << 10)  # room for neither
    with monkeypatch.context() as patched:
        patched.setenv("TORCHINDUCTOR_CACHE_DIR", str(full))
        patched.setattr(tempfile, "tempdir", str(full))
        with pytest.raises(disk.AotiHooksError, match="to a disk with 64.0 KiB free"):
            disk.check_method_room(other)
    assert [nbytes for _, nbytes, _ in disk.check_method_room(other)] == [other_weights, other_weights]
