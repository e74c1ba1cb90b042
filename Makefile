# Two entry points: `make demo` and `make test`. Both create .venv and install everything from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# torchattacks pins an old requests; its real needs come with the `cls` extra.
	$(PY) -m pip install --quiet --no-deps torchattacks
	touch $(STAMP)

# CE vs HEM+ on synthetic scenes (offline, CPU, a few minutes). OpenMP threads sleep instead of spinning
# while they wait, which keeps two-core machines fast when other processes share them.
demo: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/segloss demo

test: $(STAMP)
	$(PY) -m ruff check .
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/bench_losses.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
