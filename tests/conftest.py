"""Per-run Inductor cache and temp folders, and clean plugin registration for every test."""

import contextlib
import hashlib
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile

# The helpers tests share (tests/support: models, compile and ExecuTorch helpers) import by their names.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "support"))

# Compiles leave hundreds of MB of Inductor cache and packages per test run: the run's folder is
# removed when the process that made it ends its run (xdist workers make theirs inside it).
_RUN_DIR = tempfile.mkdtemp(prefix="aoti-hooks-tests-")
_RUN_DIR_OWNER = os.getpid()
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(_RUN_DIR, "inductor")
os.environ["TMPDIR"] = os.path.join(_RUN_DIR, "tmp")
os.makedirs(os.environ["TMPDIR"], exist_ok=True)
tempfile.tempdir = None
# Third-party deprecations the suite does not own stay out of its output, in the processes tests start too.
os.environ["PYTHONWARNINGS"] = "ignore::DeprecationWarning"

import pytest  # noqa: E402
import torch  # noqa: E402

from aoti_hooks.core import registry  # noqa: E402
from aoti_hooks.core.output import quiet_third_party_logs  # noqa: E402

quiet_third_party_logs()


def pytest_unconfigure(config):
    """Remove this run's folder unless AOTI_HOOKS_KEEP_TEST_FILES is set (to look at a failed compile)."""
    if os.getpid() == _RUN_DIR_OWNER and not os.environ.get("AOTI_HOOKS_KEEP_TEST_FILES"):
        shutil.rmtree(_RUN_DIR, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def each_cpp_source_built_once():
    """A C++ build whose sources and flags equal one already run in this process copies its output
    (ccache's rule, `built_once`): a session's compile mostly builds stock's C++ again."""
    with built_once():
        yield


_BUILT = pathlib.Path(tempfile.mkdtemp(prefix="built-once-"))  # this process's builds, in its run folder


@contextlib.contextmanager
def built_once():
    """Inductor's C++ builds, each distinct one run once in this process: a command whose input files
    (C++ sources without comments) and other words equal an earlier command's copies that command's output."""
    from torch._inductor import cpp_builder

    original = cpp_builder._run_compile_cmd

    def run(cmd_line: str, cwd: str) -> None:
        words = shlex.split(cmd_line)
        output = words[words.index("-o") + 1] if "-o" in words else None
        key = hashlib.sha256()
        for index, word in enumerate(words):
            if word == output and words[index - 1] == "-o":
                continue
            path = word if os.path.isabs(word) else os.path.join(cwd, word)
            key.update(_source(path) if os.path.isfile(path) else word.encode())
            key.update(b"\0")
        kept = _BUILT / key.hexdigest()
        if output is None or not kept.exists():
            original(cmd_line, cwd)
            if output is not None:
                shutil.copyfile(os.path.join(cwd, output), kept)
            return
        shutil.copyfile(kept, os.path.join(cwd, output))

    cpp_builder._run_compile_cmd = run
    try:
        yield
    finally:
        cpp_builder._run_compile_cmd = original


def _source(path: str) -> bytes:
    """A file's bytes; a C++ source's without its blank and ``//`` lines (Inductor appends each build's command
    to the source it built, so a second build of the same code reads a longer file)."""
    data = pathlib.Path(path).read_bytes()
    if path.endswith((".cpp", ".hpp", ".h")):
        data = b"\n".join(line for line in data.splitlines() if line.strip() and not line.lstrip().startswith(b"//"))
    return data


@pytest.fixture
def register():
    """Register in-process plugins for one test; they are removed afterwards."""
    names = []

    def _register(name, plugin):
        registry.register_plugin(name, plugin)
        names.append(name)
        return plugin

    yield _register
    for name in names:
        registry.unregister_plugin(name)


# Test modules whose every test compiles an AOTI program or lowers through ExecuTorch; in other
# modules such tests carry @pytest.mark.compile themselves. `pytest -m "not compile"` is the fast tier.
COMPILING = ("hosts/test_compile.py", "house/test_packaging.py", "hosts/test_host_memory.py", "tools/test_run.py", "models/",
             "hosts/executorch/", "plugins/const_offload/", "gpu/", "matrix/")


# The longest files first: with --dist loadfile a file runs in one process, and one started last sets the end.
LONGEST_FIRST = ("hosts/test_host_memory.py", "matrix/test_matrix_hugging_face.py", "tools/test_suites.py", "tools/test_bench.py",
                 "tools/test_cli.py", "hosts/executorch/test_executorch_real_models.py", "tools/test_first_contact.py")


def _where(item) -> str:
    return item.path.relative_to(pathlib.Path(__file__).parent).as_posix()


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: LONGEST_FIRST.index(_where(item)) if _where(item) in LONGEST_FIRST else len(LONGEST_FIRST))
    for item in items:
        if _where(item).startswith(COMPILING) or "slow" in item.keywords:
            item.add_marker(pytest.mark.compile)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cpu_as_gpu(monkeypatch):
    """The CPU stands in for a GPU in placement: placed tensors get empty storages filled per run, as on a
    GPU (on the CPU they are otherwise views of their host values). No GPU exists here; tests/gpu runs it there."""
    from aoti_hooks.placement import claims

    monkeypatch.setattr(claims, "HOST_BACKED", ())


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a tmpfs of the size asked for under ``tmp_path`` (root only); unmounted after."""
    mounted = []

    def mount(size: int) -> pathlib.Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"a small filesystem needs mount (root): {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)
