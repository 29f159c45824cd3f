# valeria-hub: every target does its own set-up (virtualenv, npm proxy, Debian packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
NODE_PREFIX := .node
CHP := $(NODE_PREFIX)/node_modules/.bin/configurable-http-proxy
# The "notebook image" of the local stand-in: a separate environment built from the
# system Python, so that notebook and job processes running as users' own uids can
# execute it (the development Python may live under /root).
NB_VENV := .venv-notebook
NB_STAMP := $(NB_VENV)/.installed
# The kbatch client in its own environment: the jobs service is tested against the real
# client's CLI. 0.4.2 is the newest kbatch on PyPI (`pip index versions kbatch`).
KB_VENV := .venv-kbatch
KB_STAMP := $(KB_VENV)/.installed
KBATCH_VERSION := 0.4.2
# kbatch-proxy, the peer of the jobs benchmark, in an environment of its own: 0.4.2 needs
# pydantic 1 and kubernetes<36, which the product's environment cannot hold, and imports
# rich without declaring it.
KBP_VENV := .venv-kbatch-proxy
KBP_STAMP := $(KBP_VENV)/.installed
# Keycloak's own server for tests/keycloak/: Maven Central's distribution, downloaded,
# unpacked and built once by devstack/keycloak/real.py (which holds the version).
KC_STAMP := .keycloak/.installed
export PATH := $(abspath $(NODE_PREFIX))/node_modules/.bin:$(abspath $(BIN)):$(PATH)

# Debian packages the test suite drives (a real PostgreSQL server, headless Chromium).
TEST_DEBS := postgresql chromium

.PHONY: all demo test lint bench system-deps devstack clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# What the demo needs (the product and JupyterLab), apart from the test tools: `make demo`
# installs only this, and says what it is doing while it does.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> valeria-hub and the demo's Python packages, into $(VENV) (first time: about a minute)"
	$(BIN)/pip install --progress-bar on -e '.[demo]' | grep -E '^(Collecting|Successfully)' || true
	@test -x $(BIN)/jupyterhub || { echo "the install failed: run $(BIN)/pip install -e '.[demo]'"; exit 1; }
	@# devstack/, tests/ and benchmarks/ are not part of the product's wheel: the checkout
	@# itself goes on the virtualenv's path so that `python -m devstack` works anywhere.
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/valeria-hub-checkout.pth"
	touch $@

$(STAMP): pyproject.toml $(DEMO_STAMP)
	$(BIN)/pip install -q -e '.[test,demo]'
	touch $@

$(CHP):
	@echo "==> configurable-http-proxy, from npm, into $(NODE_PREFIX)"
	npm install --no-audit --no-fund --prefix $(NODE_PREFIX) configurable-http-proxy@^4

$(NB_STAMP): $(DEMO_STAMP)
	@echo "==> the stand-in's notebook image: JupyterLab in $(NB_VENV) (first time: about a minute)"
	rm -rf $(NB_VENV)
	$$(test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON)) -m venv $(NB_VENV)
	$(NB_VENV)/bin/pip install --progress-bar on "jupyterhub==$$($(BIN)/python -c 'import jupyterhub; print(jupyterhub.__version__)')" "jupyterlab>=4" | grep -E '^(Collecting|Successfully)' || true
	@test -x $(NB_VENV)/bin/jupyterhub-singleuser || { echo "the notebook environment failed to install"; exit 1; }
	chmod -R a+rX $(NB_VENV)
	touch $@

$(KC_STAMP): devstack/keycloak/real.py | $(BIN)/python
	$(BIN)/python devstack/keycloak/real.py install

$(KB_STAMP):
	rm -rf $(KB_VENV)
	$$(test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON)) -m venv $(KB_VENV)
	$(KB_VENV)/bin/pip install -q "kbatch==$(KBATCH_VERSION)"
	touch $@

$(KBP_STAMP):
	rm -rf $(KBP_VENV)
	$$(test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON)) -m venv $(KBP_VENV)
	$(KBP_VENV)/bin/pip install -q "kbatch-proxy==$(KBATCH_VERSION)" "kubernetes<36" uvicorn rich
	touch $@

system-deps:
	@missing=""; \
	for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (run as root or install them)"; \
	  fi; \
	fi

demo: $(DEMO_STAMP) $(CHP) $(NB_STAMP)
	$(BIN)/python -m devstack demo

devstack: $(DEMO_STAMP)
	$(BIN)/python -m devstack run

test: $(STAMP) $(CHP) $(NB_STAMP) $(KB_STAMP) $(KBP_STAMP) $(KC_STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) $(CHP) $(NB_STAMP) $(KBP_STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(NB_VENV) $(KB_VENV) $(KBP_VENV) $(NODE_PREFIX) .devstack
