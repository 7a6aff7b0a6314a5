#!/usr/bin/env bash
# Issue 14's GPU check: one table (optimizer ratios, train vs plain loop, packed trials, GPU test counts).
# Needs torch (CUDA, with Triton), Lightning, pandas, numpy and pytest, as a GPU image has them, plus these wheels
# in .whl/ (fetched once where pip can reach PyPI, from the repository root):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 mnist1d==0.0.2.post1
#
# (Ray is not needed: the packed-trials row runs the trials as processes, as Ray's fractional GPUs would. Its 79 MB
# wheel is more than the device machine carries; docs/gpu.md has a stripped Ray, 31 MB, for Ray's own packing.)
# Usage, from the repository root:
#
#   benchmarks/gpu_check.sh             # on the GPU machine, <= 5 minutes on one H200
#   benchmarks/gpu_check.sh --dry-run   # anywhere: every part at toy sizes on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/platform:${PYTHONPATH:-}
exec "$PY" benchmarks/gpu_check.py "$@"
