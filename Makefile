# The two README commands: `make demo` (setup + main job) and `make test` (setup + tests).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) benchmarks/optimizer_step.py --sets small,resnet18 --repeats 10

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/optimizer_step.py
