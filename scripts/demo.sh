#!/usr/bin/env bash
# Set everything up (see scripts/setup.sh), then run the default study on Fashion-MNIST.
# Extra arguments go to 'overconf run', e.g. scripts/demo.sh --set recipe.epochs=5
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
STUDY="${STUDY:-experiments/fashion_mnist.yaml}"
echo "== running the study $STUDY"
overconf run "$STUDY" "$@"
