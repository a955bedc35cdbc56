# `make test` works from nothing: it creates .venv, installs the package with the pinned test
# dependencies (constraints.txt; torch==2.13.0 first so pip never pulls a CUDA build), then runs pytest on
# one pytest-xdist worker per core (TEST_WORKERS=0 runs it in one process; tests/conftest.py gives each worker
# its own Hugging Face home and its share of the threads). `make docs` builds the documentation site into site/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

TEST_WORKERS ?= auto

.PHONY: test install clean demo docs

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -n $(TEST_WORKERS)

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

# The embedded demo model (src/act/demo_model/, pre-trained by examples/pretrain_demo.py with `act pretrain`) runs
# offline: how many updates each token of a sentence gets, then the paper's table on the held-out text.
DEMO_SENTENCE := a lump in the middle of the monkeys stirred and then fell quiet .
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/act inspect "$(DEMO_SENTENCE)" --png demo.png
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/act stats src/act/demo_model/heldout.txt --no-progress

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache
