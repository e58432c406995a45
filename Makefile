# dlc: `make demo` and `make test` each set up everything from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

# torch is installed first and pinned: any other version pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all]"
	@# graphviz's `dot` renders `dlc viz` pictures; without it dlc writes .dot files.
	-@command -v dot >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get install -y -qq graphviz >/dev/null 2>&1) || \
		echo "note: graphviz 'dot' not installed; dlc viz will write .dot files"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m dlc.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Default tier: under 10 minutes on 2 cores.
test-fast: $(STAMP)
	$(VENV)/bin/pytest -n $(JOBS) -m "not slow and not bench" --durations=15

# Default and slow tiers (never the benchmarks): under 45 minutes on 2 cores.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(JOBS) -m "not bench" --durations=15

# The compiler comparison at bench size (never part of the tests): survey_bench/results/
bench: $(STAMP)
	$(PY) -m survey_bench --size bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
