# Quick start: `make demo` and `make test` work on a fresh machine (they set up the venv first).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck samples bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dask]'
	touch $(STAMP)

setup: $(STAMP)

# The samples contain violations on purpose: exit 1 (findings) is the expected outcome here.
demo: $(STAMP)
	$(BIN)/helix-audit audit sample_pcaps/ --site sample_pcaps/site.yaml --out reports/demo; \
	  rc=$$?; [ $$rc -le 1 ] || exit $$rc
	@echo "report: reports/demo/report.html (and report.json)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check helix_audit tests benchmarks sample_pcaps
	$(BIN)/ruff format --check helix_audit tests benchmarks sample_pcaps

typecheck: $(STAMP)
	$(BIN)/mypy helix_audit

samples: $(STAMP)
	$(BIN)/python sample_pcaps/make_samples.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) reports/demo build *.egg-info
