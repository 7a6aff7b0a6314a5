# The two README commands: `make demo` (setup + main job) and `make test` (setup + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
LB := $(VENV)/bin/largebatch

.PHONY: setup demo test bench browser

setup:
	bash scripts/setup.sh

# Main job: does LAMB keep a good learning rate to larger batches than SGD? An lr x batch-size x optimizer grid
# (80 trials, Ray Tune, ~2 min on 2 CPU cores), its trials table, then the offline dashboard (open
# dashboard_out/index.html), whose first page and last printed line give the answer. The browser is only for the
# PNG export: without it the demo still succeeds, with a warning.
demo: browser
	LARGEBATCH_EXTRAS= bash scripts/setup.sh
	$(LB) sweep sweeps/quickstart.yaml --runs-root runs || $(LB) sweep sweeps/quickstart.yaml --runs-root runs --resume
	$(LB) sweep status quickstart --root runs
	$(LB) dashboard runs/quickstart --out dashboard_out

browser:
	bash scripts/install_browser.sh || echo "warning: Debian chromium unavailable: the browser test and the dashboard's PNG export will be skipped"

test: setup browser
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/telemetry_overhead.py
