# The course's commands. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pytest-xdist workers for `make test`: one per core of the two-core CI machine
JOBS   ?= 2

.PHONY: help setup demo test test-unit test-notebooks reproduce check bench lint clean

help:
	@echo "make demo       run every notebook on the offline smoke profile -> reports/smoke/index.html"
	@echo "make test       unit tests, then every notebook under nbval (smoke profile)"
	@echo "make reproduce  check what the full profile needs, then run it (GPU and real data)"
	@echo "make check      only print what the full profile needs and whether it is here"
	@echo "make bench      speed measurements -> reports/bench/*.json"
	@echo "make lint       ruff (notebooks too), removed Keras APIs, notebooks without outputs"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	COURSE_OFFLINE=1 $(PY) -m helpers.run --profile smoke

test: test-unit test-notebooks

test-unit: $(STAMP)
	COURSE_OFFLINE=1 $(PY) -m pytest -n $(JOBS) --dist load tests

test-notebooks: $(STAMP)
	COURSE_OFFLINE=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax notebooks

reproduce: $(STAMP)
	$(PY) -m helpers.run --profile full

check: $(STAMP)
	$(PY) -m helpers.run --profile full --check-only

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(PY) -m ruff check helpers tests benchmarks notebooks
	$(PY) -m pytest -q tests/test_lint.py

clean:
	rm -rf reports .pytest_cache .ruff_cache
