"""Host memory of a plain-AOTI compile, measured in fresh processes: a session's constants reach the
package through files, so the compile adds little anonymous memory, and the package is stock's.

The model is a Hugging Face Qwen3 built from a config (112 MiB of fp32 weights); each compile
runs in its own process with a cold Inductor cache (`host_memory_worker.py`).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "support"
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("host")
    cache = folder / "cache"  # one path for both (AOTI builds it into the library), emptied in between
    for mode in ("stock", "session", "session-mmap"):
        shutil.rmtree(cache, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, str(HERE / "host_memory_worker.py"), str(folder / f"{mode}.json"), str(folder / f"{mode}.pt2"), mode],
            env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{mode}: {(done.stdout + done.stderr)[-3000:]}"
    return {mode: json.loads((folder / f"{mode}.json").read_text()) for mode in ("stock", "session", "session-mmap")}


def added(run: dict, kind: str) -> float:
    """What the compile added to ``kind`` (``rss`` or ``anonymous``), in weights."""
    return (run[f"{kind}_peak"] - run[f"{kind}_before"]) / run["weight_bytes"]


def test_a_session_adds_little_anonymous_host_memory_where_stock_adds_twice_the_weights(measured):
    stock, ours = measured["stock"], measured["session"]
    assert added(stock, "anonymous") > 1.5, stock  # stock gathers the weights, then copies them once more
    assert added(ours, "anonymous") <= 0.5, ours
    assert added(ours, "rss") < added(stock, "rss") - 0.75  # file pages included, still a weights' worth less
    host = ours["report"]["host"]
    assert host["constants_gathered_in_file_bytes"] >= ours["weight_bytes"]
    assert host["package_files_mapped_bytes"] >= ours["weight_bytes"]


def by_kind(entries: dict) -> dict:
    """Entries by what they are: AOTI names its files by a hash that includes the cache folder."""
    return {name.rsplit("/", 1)[0] + "/" + name.rsplit("/", 1)[-1].split(".", 1)[-1] if "/model/" in name else name: sha
            for name, sha in entries.items()}


def test_the_package_and_the_users_tensors_are_stocks(measured):
    stock, ours = by_kind(measured["stock"]["entries"]), by_kind(measured["session"]["entries"])
    assert set(ours) == set(stock) and len(ours) == len(measured["stock"]["entries"])
    differ = sorted(name for name in stock if ours[name] != stock[name])
    assert differ == [], differ
    stock, ours = measured["stock"], measured["session"]
    assert ours["logits"] == stock["logits"]
    assert ours["user_tensors_after"] == ours["user_tensors_before"] == stock["user_tensors_before"]


def test_weights_loaded_memory_mapped_stay_in_their_file_through_the_compile(measured):
    """safetensors maps the checkpoint: a session reads those pages, it does not copy them.

    That the weights are the file's pages is read in the process itself: each parameter's address
    against its mappings, and the file's pages it holds resident. Anonymous memory before the
    compile is not compared across processes, as what the export and the allocator keep differs
    between runs by more than these weights.
    """
    stock, mapped = measured["stock"], measured["session-mmap"]
    assert mapped["file_backed_parameters"] == mapped["parameters"] > 0  # still the checkpoint's pages after the compile
    assert mapped["checkpoint_resident"] >= mapped["weight_bytes"]  # the weights held as file pages, not anonymous
    assert added(mapped, "anonymous") <= 0.5, mapped
    assert by_kind(mapped["entries"]) == by_kind(stock["entries"])
    assert mapped["logits"] == stock["logits"]
    assert mapped["user_tensors_after"] == mapped["user_tensors_before"] == stock["user_tensors_before"]


def test_a_disk_without_room_for_the_buffer_keeps_it_in_memory_and_says_so(monkeypatch):
    """A full disk cannot be made here: ``posix_fallocate`` is made to fail as it does on one."""
    import errno

    import aoti_hooks
    from aoti_hooks.seams.inductor import serialization

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(serialization.os, "posix_fallocate", full)
    with aoti_hooks.session(["kv_elide"]) as session:
        buffer = serialization._gathering_buffer(4 << 20)
    assert type(buffer) is bytearray and len(buffer) == 4 << 20
    assert session.report.as_dict()["host"]["constants_gathered_in_memory"] == [
        "4.0 MiB: no room for a file buffer (No space left on device)"]
    assert type(serialization._gathering_buffer(4 << 20)) is bytearray  # no session: stock's buffer


def test_a_file_buffer_is_file_backed_and_its_slices_are_views():
    from aoti_hooks.seams.inductor.serialization import file_buffer

    buffer = file_buffer(3 << 20)
    buffer[5:8] = b"abc"
    view = buffer[5:]
    assert isinstance(view, memoryview) and bytes(view[:3]) == b"abc" and len(view) == (3 << 20) - 5
    maps = Path(f"/proc/{os.getpid()}/maps").read_text()
    assert "(deleted)" in maps  # an unlinked file, gone with the buffer
