#!/usr/bin/env bash
# One-time set-up on a fresh machine: Python dependencies (CPU PyTorch 2.13.0), fixflow itself (editable),
# and Debian's MLIR 22 tools (interop tests) and chromium (the HTML report's browser test). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==2.13.0"
fi
"$PY" -m pip install --quiet -e ".[torch,test,ray]"   # ray: an 80 MB wheel, ~10 s (scale-out tests)
# torchvision (model coverage tests): 0.29.1 declares torch>=2.14, so it goes in without its dependencies and
# cannot replace torch 2.13.0; its model definitions are pure Python (its compiled ops do not load and are not
# used, see tests/_lib/torchvision_lib.py); Pillow, which it imports, comes with the test extra
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('torchvision') != '0.29.1')" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-deps "torchvision==0.29.1"
fi

if [ "${FIXFLOW_SKIP_APT:-0}" != "1" ] && { ! command -v mlir-opt-22 >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; }; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq mlir-22-tools chromium >/dev/null) \
      || echo "warning: could not install mlir-22-tools and chromium; the mlir-opt interop tests and the HTML report's browser test will be skipped" >&2
  fi
fi
