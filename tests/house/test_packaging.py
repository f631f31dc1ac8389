"""The five wheels install into a fresh venv; the extra pulls exactly its plugin.

The venv reuses this machine's torch (and its dependencies) through a folder of links,
so nothing is downloaded, and it sees none of the plugins installed here.
"""

import os
import pathlib
import re
import subprocess
import sys
import venv
from importlib import metadata

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGINS = ("kv_elide", "chunked_dequant", "sdpa_configs", "const_offload")


def test_versions_and_extras_agree():
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name in PLUGINS:
        plugin = tomllib.loads((ROOT / "plugins" / name / "pyproject.toml").read_text())["project"]
        assert plugin["version"] == core["version"]
        assert plugin["dependencies"] == [f"aoti-hooks=={core['version']}"]
        assert plugin["entry-points"]["aoti_hooks"] == {name: f"aoti_hooks_{name}"}
        assert core["optional-dependencies"][name] == [f"{plugin['name']}=={core['version']}"]
        assert (ROOT / "plugins" / name / "README.md").exists()
    assert sorted(core["optional-dependencies"]["all"]) == sorted(
        f"aoti-hooks-{n.replace('_', '-')}=={core['version']}" for n in PLUGINS)


def _requirement_closure(names):
    todo, found = list(names), {}
    while todo:
        name = re.split(r"[ ;<>=!~\[]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        todo += [req for req in (dist.requires or []) if "extra ==" not in req]
    return found.values()


def _link_installed(names, folder: pathlib.Path):
    """Symlink these distributions (and what they need) with their dist-info into ``folder``."""
    folder.mkdir()
    for dist in _requirement_closure(names):
        base = pathlib.Path(dist.locate_file(""))
        tops = {pathlib.PurePath(str(file)).parts[0] for file in dist.files or []}
        for top in tops:
            source = base / top
            if top not in ("..", "bin") and source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)


@pytest.mark.slow
def test_make_wheels_works_in_a_fresh_venv(tmp_path):
    """The README's wheels path in a venv that has only pip: the build backend comes with it."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    assert subprocess.run([python, "-c", "import hatchling"], capture_output=True).returncode != 0
    dist = tmp_path / "dist"
    built = subprocess.run(["make", "-s", "wheels", f"DIST={dist}", f"PY={python}"], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, "PIP_CONSTRAINT": ""})
    assert built.returncode == 0, built.stderr[-2000:]
    assert len(list(dist.glob("*.whl"))) == 5


@pytest.mark.slow
def test_wheels_install_and_the_extra_brings_only_its_plugin(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(["make", "-s", "wheels", f"DIST={dist}", f"PY={sys.executable}"], cwd=ROOT, check=True,
                   capture_output=True)
    wheels = sorted(path.name for path in dist.glob("*.whl"))
    import zipfile

    for wheel in dist.glob("*.whl"):  # bench/ and tests/ are not part of the product
        assert not [name for name in zipfile.ZipFile(wheel).namelist() if name.startswith(("bench/", "tests/"))], wheel
    assert [w.split("-0.1.0")[0] for w in wheels] == ["aoti_hooks", "aoti_hooks_chunked_dequant",
                                                      "aoti_hooks_const_offload", "aoti_hooks_kv_elide",
                                                      "aoti_hooks_sdpa_configs"]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    _link_installed(["torch", "pluggy", "numpy"], tmp_path / "shared")
    pathlib.Path(site, "shared-torch.pth").write_text(str(tmp_path / "shared") + "\n")
    environment = {**os.environ, "PIP_CONSTRAINT": "", "PIP_CONFIG_FILE": os.devnull}
    # This machine's pip installs into the venv (pip >= 23.3 matches the normalized extra names).
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
                    "--find-links", dist, "aoti-hooks[kv_elide]"], check=True, cwd=tmp_path, env=environment)
    listed = subprocess.run([env_dir / "bin" / "aoti-hooks", "list"], capture_output=True, text=True, cwd=tmp_path,
                            env={**environment, "PYTHONPATH": ""})
    assert listed.returncode == 0, listed.stderr
    assert "NumPy" not in listed.stderr  # the core declares numpy: torch warns on every command without it
    assert "kv_elide" in listed.stdout and "aoti-hooks-kv-elide" in listed.stdout
    assert "chunked_dequant" not in listed.stdout and "sdpa_configs" not in listed.stdout
    assert "const_offload" not in listed.stdout


def test_every_bench_script_is_listed_with_what_it_is():
    """bench/README.md says, per script, whether it is a measurement or a probe and what it made."""
    listed = (ROOT / "bench" / "README.md").read_text()
    scripts = sorted(path.name for path in (ROOT / "bench").iterdir() if path.suffix in (".py", ".sh"))
    assert scripts and [name for name in scripts if f"`{name}`" not in listed] == []
    for result in re.findall(r"`(results/[^`]+\.md)`", listed):
        assert (ROOT / "bench" / result).is_file(), result
