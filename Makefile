# Two commands do everything, each with its own set-up:
#   make demo   the lecture's experiment (simple RNN vs LSTM vs GRU on a long-range task)
#   make test   the whole test suite (library, notebooks, doctests, lint)
# The virtual environment is (re)built when it is missing or older than
# pyproject.toml / constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# PyTorch is only a test oracle. A CPU build is installed when one is at hand
# (pip's find-links); otherwise the live comparisons skip and the committed
# golden fixtures still check equivalence.
TORCH  ?= torch==2.13.0+cpu
PYTEST_ARGS ?= -n auto --dist worksteal  # a worker per core (pytest-xdist), idle ones take queued tests

.PHONY: demo test lint bench fixtures clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	-$(PY) -m pip install --quiet -c constraints.txt "$(TORCH)" \
	  || echo "note: $(TORCH) not installable here; torch comparisons will use the committed fixtures"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gatedcells demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)
	$(VENV)/bin/gatedcells bench

# Regenerate the PyTorch golden outputs in tests/fixtures (needs torch).
fixtures: $(STAMP)
	$(PY) tests/fixtures/make_torch_golden.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
