# Two commands do everything, each with its own set-up:
#   make demo   the lecture's experiment (simple RNN vs LSTM vs GRU on a long-range task);
#               installs the package with the `train` extra only (no PyTorch, no test tools)
#   make test   the whole test suite (library, notebooks, doctests, docs, wheel, lint);
#               installs the `dev` extra and a CPU build of PyTorch on top
#   make test-fast  the same without the tests marked slow (notebooks, site, wheel, long runs)
#   make docs   the documentation site, into docs/_build/html (warnings are errors)
# The virtual environment is (re)built when it is missing or older than
# pyproject.toml / constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# PYTHONWARNINGS: setuptools warns about editable installs in general, not about ours
PIP    := PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
DEMO_STAMP := $(VENV)/.installed-demo
STAMP  := $(VENV)/.installed
# PyTorch is only a test oracle. A CPU build is installed when one is at hand
# (pip's find-links); otherwise the live comparisons skip and the committed
# golden fixtures still check equivalence.
TORCH  ?= torch==2.13.0+cpu
PYTEST_ARGS ?= -n auto --dist loadgroup  # a worker per core (pytest-xdist); a registry cell's tests on one worker
SPHINX_ARGS ?= -W -n --keep-going -q      # warnings are errors, every reference checked
# XLA's compilation cache, kept between runs of the suite: a run compiles only the programs
# an edit changed (a key holds the program, jax's version and XLA_FLAGS). A fresh clone (CI)
# starts empty; `make clean` removes it; XLA_CACHE= runs with a temporary one. It keeps every
# program (most of the suite's compile in under 50 ms; one is read back in ~3 ms).
XLA_CACHE ?= $(abspath $(VENV))/xla-cache
PYTEST := $(if $(XLA_CACHE),JAX_COMPILATION_CACHE_DIR=$(XLA_CACHE) \
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 )$(PY) -m pytest

.PHONY: demo test test-fast docs lint bench fixtures clean venv

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip

# what the demo imports: jax, optax, orbax, tqdm, matplotlib (the train extra)
$(DEMO_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e ".[train]"
	@touch $(DEMO_STAMP)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e ".[dev]"
	@$(PIP) "$(TORCH)" 2>/dev/null \
	  || echo "note: $(TORCH) is not installable here; the torch comparisons use the committed fixtures"
	@touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/gatedcells demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PYTEST) $(PYTEST_ARGS)

# the edit-test loop: everything but what is marked slow (docs/development.md)
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PYTEST) $(PYTEST_ARGS) -m "not slow"

docs: $(STAMP)
	$(PY) -m sphinx -b html $(SPHINX_ARGS) docs docs/_build/html
	@echo "the site: docs/_build/html/index.html"

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)
	$(VENV)/bin/gatedcells bench

# Regenerate the PyTorch golden outputs in tests/fixtures (needs torch).
fixtures: $(STAMP)
	$(PY) tests/fixtures/make_torch_golden.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info docs/_build docs/jupyter_execute
