# The course's commands. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# notebooks at once in `make demo`, pytest-xdist workers in `make test`: one per core of the two-core CI machine
JOBS   ?= 2
# where the notebook tests keep the records 06 and 07 read (git-ignored)
NBVAL  := reports/nbval
export COURSE_HEADLESS := 1

.PHONY: help setup demo laptop test test-unit test-notebooks test-oldest reproduce check bench bench-laptop lint clean

help:
	@echo "make demo          run every notebook on the offline smoke profile -> reports/smoke/index.html"
	@echo "make test          unit tests, then every notebook under nbval (smoke profile)"
	@echo "make laptop        every notebook on the laptop profile (real data, sized for a CPU)"
	@echo "make reproduce     check what the full profile needs, then run it (GPU and real data)"
	@echo "make check         only print what the full and laptop profiles need, with times for this machine"
	@echo "make test-oldest   the unit tests on the oldest TensorFlow/Keras the package supports"
	@echo "make bench         speed measurements -> reports/bench/*.json"
	@echo "make bench-laptop  each notebook's laptop profile timed on generated real-size data"
	@echo "make lint          ruff (notebooks too), removed Keras APIs, notebooks without outputs"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	COURSE_OFFLINE=1 $(PY) -m course.run --profile smoke --jobs $(JOBS)

laptop: $(STAMP)
	$(PY) -m course.run --profile laptop

test: test-unit test-notebooks

test-unit: $(STAMP)
	COURSE_OFFLINE=1 $(PY) -m pytest -n $(JOBS) --dist worksteal tests

# 01-05 train and record, the longest first so that no worker ends long after the other;
# then 07 converts their light models and 06 sums everything up
test-notebooks: $(STAMP)
	rm -rf $(NBVAL)
	COURSE_OFFLINE=1 NB_SCRATCH=$(NBVAL) $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax \
		notebooks/04_*.ipynb notebooks/03_*.ipynb notebooks/05_*.ipynb notebooks/02_*.ipynb notebooks/01_*.ipynb
	COURSE_OFFLINE=1 NB_SCRATCH=$(NBVAL) $(PY) -m pytest --nbval-lax notebooks/07_*.ipynb
	COURSE_OFFLINE=1 NB_SCRATCH=$(NBVAL) $(PY) -m pytest --nbval-lax notebooks/06_*.ipynb

test-oldest:
	.ci/test-oldest

reproduce: $(STAMP)
	$(PY) -m course.run --profile full

# both checklists; the exit status says whether the full profile has what it needs
check: $(STAMP)
	$(PY) -m course.run --profile full --check-only; full=$$?; \
	$(PY) -m course.run --profile laptop --check-only && exit $$full

bench: $(STAMP)
	$(PY) -m benchmarks

bench-laptop: $(STAMP)
	$(PY) -m benchmarks.laptop

lint: $(STAMP)
	$(PY) -m ruff check helpers course tests benchmarks notebooks
	$(PY) -m pytest -q tests/test_lint.py

clean:
	rm -rf reports .pytest_cache .ruff_cache
