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

# The installer: uv (PyPI's, put into $(VENV) by its pip) when it can be had, else pip.
# uv resolves and downloads in parallel and keeps what it unpacked in its cache, so the
# notebook environment (jupyterhub, jupyterlab and their dependencies again) is made
# from that cache in seconds; pip caches downloads only when the index sends cache
# headers, and repeats all of them otherwise. Bytecode is compiled at install either way
# (notebook processes, running as people's uids, cannot write it into the environment).
UV := $(BIN)/uv
TEST_EXTRAS := '.[test,demo]'
INSTALLER = $$(test -x $(UV) && echo uv || echo pip)
# $(call install,VENV,ARGS): uv into VENV, else VENV's own pip; only the summary lines
install = if test -x $(UV); then $(UV) pip install --compile-bytecode --python $(1)/bin/python $(2); \
	else $(1)/bin/pip install --progress-bar on $(2); fi 2>&1 \
	| grep -E '^(Collecting|Successfully|Resolved|Prepared|Installed|Uninstalled|Audited|ERROR|error|  ×)' || true
# $(call venv,DIR): a virtualenv of the system Python (notebook, job and client processes
# run as other uids, and the development Python may live under /root); uv's has no pip
venv = rm -rf $(1); py=$$(test -x /usr/bin/python3 && echo /usr/bin/python3 || echo $(PYTHON)); \
	if test -x $(UV); then $(UV) venv -q --python "$$py" $(1); else "$$py" -m venv $(1); fi

# Debian packages the test suite drives (a real PostgreSQL server, headless Chromium).
TEST_DEBS := postgresql chromium

.PHONY: all demo test lint bench system-deps devstack clean

all: test

# The virtualenv is made without pip (ensurepip costs seconds): the base Python's pip puts
# uv into it, and uv pip with the rest. Without that pip, or without uv on the index, it
# is made with pip, which then installs everything.
# ($(BIN) is first on PATH: the base Python is found before the virtualenv exists.)
$(BIN)/python:
	@echo "==> a virtualenv in $(VENV), and the uv installer into it from PyPI"
	rm -rf $(VENV); py="$$(command -v $(PYTHON))"; \
	"$$py" -m venv --without-pip $(VENV) \
	  && "$$py" -m pip --python $(BIN)/python install -q uv 2>/dev/null \
	  || { rm -rf $(VENV) && "$$py" -m venv $(VENV) && { $(BIN)/pip install -q uv \
	       || { echo "uv cannot be had: pip installs everything (slower)"; \
	            $(BIN)/pip install -q --upgrade pip; }; }; }

# What the demo needs (the product and JupyterLab), apart from the test tools: `make demo`
# installs only this, and says what it is doing while it does.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> valeria-hub and the demo's Python packages, into $(VENV), with $(INSTALLER) (first time: $$(test -x $(UV) && echo 'about half a minute' || echo 'about a minute'))"
	@$(call install,$(VENV),-e '.[demo]' pip)
	@test -x $(BIN)/jupyterhub || { echo "the install failed (its errors are above): run make again"; exit 1; }
	@# devstack/, tests/ and benchmarks/ are not part of the product's wheel: the checkout
	@# itself goes on the virtualenv's path so that `python -m devstack` works anywhere.
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/valeria-hub-checkout.pth"
	touch $@

$(STAMP): pyproject.toml $(DEMO_STAMP)
	@echo "==> the test tools, into $(VENV), with $(INSTALLER)"
	@$(call install,$(VENV),-e $(TEST_EXTRAS))
	@test -x $(BIN)/pytest || { echo "the install failed (its errors are above): run make again"; exit 1; }
	touch $@

$(CHP):
	@echo "==> configurable-http-proxy, from npm, into $(NODE_PREFIX)"
	npm install --no-audit --no-fund --prefix $(NODE_PREFIX) configurable-http-proxy@^4

# The notebook image: the hub's very jupyterhub (for jupyterhub-singleuser), JupyterLab,
# and valeria-hub itself without its dependencies, for `valeria-hub token` in notebooks
# (it needs only httpx, which JupyterLab's server has too).
$(NB_STAMP): $(DEMO_STAMP) devstack/notebook_image/jupyter_server_config.py
	@echo "==> the stand-in's notebook image: JupyterLab and \`valeria-hub token\` in $(NB_VENV), with $(INSTALLER) ($$(test -x $(UV) && echo 'about 10 s, from the cache' || echo 'first time: about a minute'))"
	@$(call venv,$(NB_VENV))
	@$(call install,$(NB_VENV),"jupyterhub==$$($(BIN)/python -c 'import jupyterhub; print(jupyterhub.__version__)')" "jupyterlab>=4" httpx)
	@$(call install,$(NB_VENV),--no-deps -e .)
	install -D -m 644 devstack/notebook_image/jupyter_server_config.py $(NB_VENV)/etc/jupyter/jupyter_server_config.py
	@test -x $(NB_VENV)/bin/jupyterhub-singleuser || { echo "the notebook environment failed to install"; exit 1; }
	@test -x $(NB_VENV)/bin/valeria-hub || { echo "valeria-hub failed to install into the notebook environment"; exit 1; }
	chmod -R a+rX $(NB_VENV)
	touch $@

$(KC_STAMP): devstack/keycloak/real.py | $(BIN)/python
	$(BIN)/python devstack/keycloak/real.py install

$(KB_STAMP): | $(BIN)/python
	@echo "==> the kbatch client $(KBATCH_VERSION), into $(KB_VENV), with $(INSTALLER)"
	@$(call venv,$(KB_VENV))
	@$(call install,$(KB_VENV),"kbatch==$(KBATCH_VERSION)")
	@test -x $(KB_VENV)/bin/kbatch || { echo "kbatch failed to install"; exit 1; }
	touch $@

$(KBP_STAMP): | $(BIN)/python
	@echo "==> kbatch-proxy $(KBATCH_VERSION), into $(KBP_VENV), with $(INSTALLER)"
	@$(call venv,$(KBP_VENV))
	@$(call install,$(KBP_VENV),"kbatch-proxy==$(KBATCH_VERSION)" "kubernetes<36" uvicorn rich)
	@$(KBP_VENV)/bin/python -c "import kbatch_proxy, rich, uvicorn" || { echo "kbatch-proxy failed to install"; exit 1; }
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

# npm's download of the proxy runs beside the Python installs (-j; whole lines, -Oline)
demo:
	@$(MAKE) --no-print-directory -j3 -Oline $(DEMO_STAMP) $(CHP) $(NB_STAMP)
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
