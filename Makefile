PY ?= python3
DIST ?= dist
PLUGINS := plugins/kv_elide plugins/chunked_dequant plugins/sdpa_configs plugins/const_offload
TORCH_VERSION := 2.13.0
# Where the CPU build of torch comes from. Used when it answers; otherwise torch comes from pip's
# configured index, which on Linux (PyPI) is the CUDA build, several GB: set TORCH_INDEX to choose.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# Test processes: the suite is mostly real compiles, one core each; a test file stays in one process
# (its module fixtures compile once). 2 matches CI's cores: 16 min there against 29 in one process.
TEST_WORKERS ?= 2

.PHONY: dev ready torch executorch test test-fast test-torch-next docs lint wheels doctor demo

ready:  ## install what dev installs unless it is all there already (a few seconds when it is)
	@$(PY) -c "import torch, aoti_hooks, aoti_hooks_kv_elide, aoti_hooks_chunked_dequant, aoti_hooks_sdpa_configs, aoti_hooks_const_offload, executorch.exir, transformers, optimum.exporters.executorch, pytest, xdist; assert torch.__version__.startswith('$(TORCH_VERSION)'); from aoti_hooks.seams.inductor.fatbin import library; assert library()" >/dev/null 2>&1 \
		|| $(MAKE) --no-print-directory dev

dev: torch  ## install torch (CPU), the core and the four plugins (editable), and ExecuTorch, for development
	$(PY) -m pip install -q "pip>=24"
	$(PY) -m pip install -q "pluggy>=1.5" "hatchling>=1.20" editables "pytest>=7" "pytest-xdist>=3" matplotlib transformers==5.24.0 "ruff>=0.6" "nvidia-nvfatbin>=12.4"
	$(PY) -m pip install -q --no-build-isolation --no-deps -e . $(addprefix -e ,$(PLUGINS))
	@# optimum-executorch pins a transformers release candidate; without its pins it runs on this one. It imports
	@# every recipe it has before it runs one: CoreML's needs coremltools, and ExecuTorch's devtools pandas.
	$(PY) -m pip install -q coremltools pandas accelerate
	$(PY) -m pip install -q --no-deps optimum-executorch==1.1.0 optimum==2.0.0
	$(MAKE) --no-print-directory executorch

torch:  ## torch $(TORCH_VERSION), the CPU build from TORCH_INDEX when it answers
	@if $(PY) -c "import torch; assert torch.__version__.startswith('$(TORCH_VERSION)')" >/dev/null 2>&1; then \
		echo "torch $(TORCH_VERSION) is installed"; \
	elif $(PY) -c "import urllib.request; urllib.request.urlopen('$(TORCH_INDEX)/torch/', timeout=10)" >/dev/null 2>&1; then \
		echo "installing torch $(TORCH_VERSION), the CPU build (about 200 MB to download, 1 GB installed)"; \
		$(PY) -m pip install torch==$(TORCH_VERSION) --index-url $(TORCH_INDEX); \
	else \
		echo "note: $(TORCH_INDEX) does not answer; installing torch==$(TORCH_VERSION) from pip's configured index (from PyPI on Linux that is the CUDA build, several GB; set TORCH_INDEX=<index> to choose)"; \
		$(PY) -m pip install torch==$(TORCH_VERSION); \
	fi

# ExecuTorch for the integration tests, without its heavy optional dependencies (coremltools,
# scikit-learn, ...): the AOTI backend and exir need only these. ExecuTorch goes in last and
# without its declared dependencies, so pip's resolver has nothing to warn about.
executorch:  ## ExecuTorch 1.5.1, torchao (its CUDA quantized ops import it), triton (its Triton kernels import it) and the small pure-Python packages its AOTI backend imports
	$(PY) -m pip install -q flatbuffers numpy pyyaml ruamel.yaml tabulate expecttest packaging hypothesis
	@$(PY) -c "import executorch, torchao, triton" >/dev/null 2>&1 || echo "installing ExecuTorch 1.5.1, torchao 0.18.0 and Triton 3.7.1 (about 1 GB)"
	$(PY) -m pip install --no-deps torchao==0.18.0 triton==3.7.1 executorch==1.5.1

test: ready  ## the whole suite, CPU only: real AOTI compiles (installs first when needed)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

docs:  ## docs/hooks.md from the contract's docstrings (aoti_hooks/core/hookspecs.py)
	$(PY) -m aoti_hooks.tools.hooks_doc

lint:  ## ruff: pyflakes, import order and line length, as configured in pyproject.toml
	@$(PY) -m ruff --version >/dev/null 2>&1 || $(PY) -m pip install -q "ruff>=0.6"
	$(PY) -m ruff check .

test-fast: ready  ## every test that compiles no AOTI program (-m "not compile"), about a minute on 2 cores
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not compile"

# The next torch: its seams and real compiles, in a venv of its own (torch 2.14.1 on PyPI is a CUDA build,
# about 5.5 GB; it runs on the CPU). ExecuTorch 1.5.1 is built against torch 2.13, so its tests stay there.
# Another release: make test-torch-next TORCH_NEXT=2.15.0 (where a pip config caps torch's version, run it
# with PIP_CONFIG_FILE=/dev/null).
TORCH_NEXT := 2.14.1
NEXT_VENV ?= .venv-torch-$(TORCH_NEXT)
NEXT_TESTS := tests/house/test_import_graph.py tests/seams tests/hosts/test_compile.py tests/placement \
	tests/hosts/test_host_memory.py tests/tools/test_run.py tests/hosts/test_disk.py tests/matrix/test_matrix_ours.py \
	tests/plugins/kv_elide tests/plugins/const_offload

test-torch-next:  ## the seams and the real compiles (ours and Hugging Face's models) on torch $(TORCH_NEXT), in $(NEXT_VENV)
	@test -x $(NEXT_VENV)/bin/python || $(PY) -c "import shutil, sys; free = shutil.disk_usage('.').free / 2**30; \
		sys.exit(0 if free >= 8 else f'test-torch-next: the torch $(TORCH_NEXT) venv needs about 8 GiB of disk here and {free:.1f} GiB is free; free some, or set NEXT_VENV to a folder on a larger disk')"
	test -x $(NEXT_VENV)/bin/python || $(PY) -m venv $(NEXT_VENV)
	$(NEXT_VENV)/bin/python -m pip install -q "pip>=24"
	$(NEXT_VENV)/bin/python -m pip install -q --no-cache-dir torch==$(TORCH_NEXT) "pluggy>=1.5" numpy "pytest>=7" "pytest-xdist>=3" \
		transformers==5.24.0 "hatchling>=1.20" editables "nvidia-nvfatbin>=12.4"
	$(NEXT_VENV)/bin/python -m pip install -q --no-build-isolation --no-deps -e . $(addprefix -e ,$(PLUGINS))
	$(NEXT_VENV)/bin/python -m aoti_hooks doctor
	$(NEXT_VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider $(NEXT_TESTS)

wheels:  ## the five wheels into $(DIST)/ (installs their build backend, hatchling, when it is missing)
	@$(PY) -c "import hatchling" >/dev/null 2>&1 || $(PY) -m pip install -q "hatchling>=1.20"
	rm -rf $(DIST) && mkdir -p $(DIST)
	for project in . $(PLUGINS); do $(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(DIST) $$project || exit 1; done

doctor: ready
	aoti-hooks doctor

demo: ready  ## the main job: export the built-in decoder stock and with kv_elide, side by side (installs first when needed)
	aoti-hooks demo
