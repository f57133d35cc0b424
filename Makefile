# The targets CI and the README use. Everything runs from the project's .venv.

PYTHON ?= python3
VENV := .venv
# Touched after a successful install, so the venv is rebuilt only when
# pyproject.toml changes.
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "relay needs Python 3.11 or newer; '$(PYTHON)' is" \
			"$$($(PYTHON) -V 2>&1). Run: make venv PYTHON=python3.11" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/relay demo

# Every figure with its baseline from the same run; the table on stdout, the
# figures in bench-results.json. Takes under 10 minutes on 2 cores.
bench: $(STAMP)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) bench-results.json build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
