# Source on the GPU machine: installs this checkout's wheels (carried as dist/) next to its torch,
# and ExecuTorch with its small dependencies when carried as .whl/ (../shared/gpu-wheels.sh .whl).
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site dist/*.whl $(ls .whl/*.whl .whl_mpl/*.whl .whl_exporters/*.whl 2>/dev/null) || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
export TMPDIR=/tmp/aoti-tmp && mkdir -p $TMPDIR
export PYTEST_ADDOPTS="-p no:hydra_pytest"  # hydra (ExecuTorch brings it) registers a pytest plugin that needs antlr4
