# The two README commands: `make demo` (setup + main job) and `make test` (setup + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
LB := $(VENV)/bin/largebatch

.PHONY: setup demo test bench browser

setup:
	bash scripts/setup.sh

# Main job: a small batch-size x optimizer sweep end to end (Ray Tune + Optuna, ~3 min on 2 CPU cores),
# its trials table, then the offline dashboard (open dashboard_out/index.html).
demo: setup
	$(LB) sweep sweeps/quickstart.yaml --runs-root runs || $(LB) sweep sweeps/quickstart.yaml --runs-root runs --resume
	$(LB) sweep status quickstart --root runs
	$(LB) dashboard runs/quickstart --out dashboard_out

browser:
	bash scripts/install_browser.sh || echo "warning: Debian chromium unavailable: the browser test will be skipped"

test: setup browser
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/telemetry_overhead.py
