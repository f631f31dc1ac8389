"""A test run leaves nothing behind in the temp folder: compiles write hundreds of MB per run there."""

import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parents[1]


def _run_suite(folder, temp, **env):
    (folder / "test_writes.py").write_text(
        "def test_writes(tmp_path):\n    (tmp_path / 'package.pt2').write_bytes(b'x' * 4096)\n")
    shutil.copy(HERE / "conftest.py", folder / "conftest.py")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "no:cacheprovider", str(folder)],
                          env={**os.environ, "TMPDIR": str(temp), **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_run_folder_is_removed_after_the_run(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    (tmp_path / "suite").mkdir()
    _run_suite(tmp_path / "suite", temp)
    assert list(temp.iterdir()) == []


def test_the_run_folder_stays_when_asked(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    (tmp_path / "suite").mkdir()
    _run_suite(tmp_path / "suite", temp, AOTI_HOOKS_KEEP_TEST_FILES="1")
    kept = list(temp.glob("aoti-hooks-tests-*/tmp/**/package.pt2"))
    assert len(kept) == 1
