PY ?= python3
DIST ?= dist
PLUGINS := plugins/kv_elide plugins/chunked_dequant plugins/sdpa_configs

.PHONY: dev test wheels doctor demo

dev:  ## install torch (CPU), the core and the three plugins (editable) for development
	$(PY) -m pip install -q "pip>=24"
	$(PY) -m pip install -q torch==2.13.0 "pluggy>=1.5" "hatchling>=1.20" editables "pytest>=7"
	$(PY) -m pip install -q --no-build-isolation --no-deps -e . $(addprefix -e ,$(PLUGINS))

test:  ## the whole suite, CPU only: real AOTI compiles
	$(PY) -m pytest -q

wheels:  ## the four wheels into $(DIST)/
	rm -rf $(DIST) && mkdir -p $(DIST)
	for project in . $(PLUGINS); do $(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(DIST) $$project || exit 1; done

doctor:
	aoti-hooks doctor

demo:  ## the main job: export the built-in decoder stock and with kv_elide, side by side
	aoti-hooks demo
