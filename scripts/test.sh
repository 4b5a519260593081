#!/usr/bin/env bash
# Set up everything and run the whole test suite (slow end-to-end cases included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
exec "$PY" -m pytest -q -p no:cacheprovider tests "$@"
