PY ?= python3
DIST ?= dist
PLUGINS := plugins/kv_elide plugins/chunked_dequant plugins/sdpa_configs plugins/const_offload

.PHONY: dev executorch test wheels doctor demo

dev:  ## install torch (CPU), the core and the four plugins (editable), and ExecuTorch, for development
	$(PY) -m pip install -q "pip>=24"
	$(PY) -m pip install -q torch==2.13.0 "pluggy>=1.5" "hatchling>=1.20" editables "pytest>=7" matplotlib transformers==5.24.0
	$(PY) -m pip install -q --no-build-isolation --no-deps -e . $(addprefix -e ,$(PLUGINS))
	$(MAKE) executorch

# ExecuTorch for the integration tests, without its heavy optional dependencies (coremltools,
# scikit-learn, torchao, ...): the AOTI backend and exir need only these.
executorch:  ## ExecuTorch 1.5.1, torchao (its CUDA quantized ops import it), triton (its Triton kernels import it) and the small pure-Python packages its AOTI backend imports
	$(PY) -m pip install -q --no-deps executorch==1.5.1 torchao==0.18.0 triton==3.7.1
	$(PY) -m pip install -q flatbuffers numpy pyyaml ruamel.yaml tabulate expecttest packaging hypothesis

test:  ## the whole suite, CPU only: real AOTI compiles
	$(PY) -m pytest -q

wheels:  ## the five wheels into $(DIST)/
	rm -rf $(DIST) && mkdir -p $(DIST)
	for project in . $(PLUGINS); do $(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(DIST) $$project || exit 1; done

doctor:
	aoti-hooks doctor

demo:  ## the main job: export the built-in decoder stock and with kv_elide, side by side
	aoti-hooks demo
