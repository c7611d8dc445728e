#!/usr/bin/env bash
# Set everything up (see scripts/setup.sh), then run the test suite on the CPU.
# Extra arguments go to pytest, e.g. scripts/test.sh -k metrics
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
echo "== running the tests"
# tests/test_docs.py builds the documentation site (mkdocs build --strict); here it must not be skipped
export OVERCONF_REQUIRE_DOCS=1
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}" python -m pytest -q "$@"
