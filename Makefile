# `make run`: set up .venv and start the app.  `make test`: set up .venv (+ test extras) and run the suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
TEST_ENV = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False

.PHONY: run test bench setup setup-dev browser

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

run: setup
	GRADIO_ANALYTICS_ENABLED=False $(PY) app.py

# Debian's Chromium for the browser tests (they skip, saying why, where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: browser tests will be skipped"; }

test: setup-dev browser
	$(TEST_ENV) $(PY) -m pytest -q -rs tests

bench: setup
	$(PY) benchmarks/model_speed.py
