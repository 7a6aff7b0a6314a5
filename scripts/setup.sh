#!/usr/bin/env bash
# Create (or refresh) the project virtualenv in .venv: torch first, then largebatch with its extras.
# Idempotent: a second run only checks a stamp and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LARGEBATCH_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${LARGEBATCH_TORCH:-torch==2.13.0}   # a CPU wheel on these machines; GPU users set their own
EXTRAS=${LARGEBATCH_EXTRAS-dev}   # `make demo` sets it empty: the main job needs none of the test tools

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"largebatch needs Python >= 3.10, found {sys.version.split()[0]}")
PYCHECK

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

stamp="$VENV/.largebatch-setup"
base="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
want="$base $EXTRAS"
have=$(cat "$stamp" 2>/dev/null || true)
# up to date: the same files and torch, with the extras asked for (or more: a venv set up for the tests runs the demo)
if { [ "$have" = "$want" ] || { [ -z "$EXTRAS" ] && [ "${have% *}" = "$base" ]; }; } \
    && "$VENV/bin/python" -c "import largebatch, torch" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi

# torch first, so that no dependency pulls a multi-GB CUDA build; keep a torch the user already has.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  "${pip[@]}" install "$TORCH_SPEC"
fi
echo "setup: installing largebatch${EXTRAS:+[$EXTRAS]} (editable)"
"${pip[@]}" install -e ".${EXTRAS:+[$EXTRAS]}"
if [[ ",$EXTRAS," == *",dev,"* ]]; then
  # test/benchmark peer only: timm requires torchvision, which would replace this torch, so no deps
  "${pip[@]}" install --no-deps "timm==1.0.31"
fi
echo "$want" > "$stamp"
echo "setup: done ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
