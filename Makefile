# The two commands a user needs are `make demo` and `make test`; both install first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test jstest lint bench clean

KERNELSPEC := $(VENV)/share/jupyter/kernels/confidential-python/kernel.json

HUB_PROXY := deploy/jupyterhub/node_modules/.bin/configurable-http-proxy

install: $(STAMP) $(KERNELSPEC) $(HUB_PROXY)

# Reinstall only when the dependency declaration or the lab extension's sources change (the
# Python code is editable; the extension is built into the environment by the install).
EXTENSION_SOURCES := extensions/package.json extensions/yarn.lock extensions/tsconfig.json \
	$(wildcard extensions/src/*.ts extensions/style/* jupyter-config/server-config/*.json)
$(STAMP): pyproject.toml $(EXTENSION_SOURCES)
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python 3.11" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The Confidential Python kernelspec, into the venv; refreshed when its sources change.
$(KERNELSPEC): $(STAMP) $(wildcard kernels/confidential-python/*)
	$(BIN)/workbench kernel install --prefix $(VENV)
	touch $(KERNELSPEC)

# configurable-http-proxy for the JupyterHub deployment (deploy/jupyterhub), exactly as the
# committed lockfile says; reinstalled only when the lockfile changes.
$(HUB_PROXY): deploy/jupyterhub/package.json deploy/jupyterhub/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found; install Node.js 20+ (JupyterHub's proxy needs it)" >&2; exit 2; }
	cd deploy/jupyterhub && npm ci --no-audit --no-fund --loglevel=error
	touch $(HUB_PROXY)

demo: install
	$(BIN)/workbench demo

lint: install
	$(BIN)/ruff check workbench tests benchmarks

# The lab extension's unit tests (jest); jlpm comes with the environment.
jstest: install
	cd extensions && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm install --immutable >/dev/null
	cd extensions && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm test --ci

# Playwright's sync API leaves its event loop behind in the process that used it, which
# breaks later asyncio-based tests; each browser suite therefore runs in its own process.
BROWSER_TESTS := tests/browser tests/hub/test_hub_browser.py tests/gateway/test_gateway_browser.py
test: install lint jstest
	$(BIN)/python -m pytest -q -p no:cacheprovider $(addprefix --ignore=,$(BROWSER_TESTS))
	$(foreach suite,$(BROWSER_TESTS),$(BIN)/python -m pytest -q -p no:cacheprovider $(suite) &&) true

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	rm -rf extensions/lib extensions/labextension extensions/tsconfig.tsbuildinfo
