#!/usr/bin/env bash
# The GPU path in one command (issue 16): the cuda-marked tests, a tiny study on the GPU and every
# scripts/bench.py entry, within 8 minutes on one GPU; all figures in one JSON file plus a readable
# summary (Markdown next to it, and printed). Runs the package from this tree (PYTHONPATH=.),
# installs nothing; Fashion-MNIST from --data-root (default: shared-data/fashion-mnist when present,
# a git-ignored folder holding the 4 .gz files, carried to the device machine).
#
#   scripts/gpu_check.sh                         # on a GPU: figures in $OUT/gpu_check.json (or ./gpu_check.json)
#   scripts/gpu_check.sh --cpu                   # dry run of the same steps at tiny sizes on the CPU
#   scripts/gpu_check.sh out.json --data-root DIR --cifar-root DIR --budget 450
#
# Python: $PYTHON, else python3 (set PYTHON=.venv/bin/python to use the repository's venv).
# A bare device image: first run scripts/gpu_wheels.sh here, then carry .whl and shared-data.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # wheels from scripts/gpu_wheels.sh (a bare device image)
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
