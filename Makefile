# Set-up is part of every command: a fresh clone needs nothing but python3.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install train test lint format bench clean

install: $(STAMP)

# Re-installs only when the project's requirements change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

train: install
	$(PYTHON) train.py $(ARGS)

# Lint first: a style error fails the tests, so every change keeps the style without anyone asking.
test: lint
	$(PYTHON) -m pytest $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Rewrite the code in the house style (what lint checks).
format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The framework against plain PyTorch loops, and sweeps against one run, on this machine (about 15 minutes): bench/results.json.
bench: install
	$(PYTHON) bench/bench.py

clean:
	rm -rf $(VENV) outputs/runs outputs/multirun
