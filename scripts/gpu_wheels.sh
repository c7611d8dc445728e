#!/usr/bin/env bash
# Prepare what a bare GPU machine lacks for scripts/gpu_check.sh (run here, where pip reaches PyPI):
#   .whl/                     wheels (Python 3.12, x86-64) of the packages the device image lacks:
#                             opacus (DP-SGD), laplace-torch and its curvature backends (LLLA),
#                             pytorch-fid (FID); every other dependency is in the image
#   shared-data/fashion-mnist  the 4 Fashion-MNIST .gz files (the image has no Debian dataset)
# Both folders are git-ignored; carry them (device tool: carry [".whl", "shared-data"]).
# scripts/gpu_check.sh installs .whl/*.whl into /tmp/site when the folder is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
mkdir -p .whl shared-data/fashion-mnist
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl \
  opacus==1.6.0 laplace-torch==0.3 asdfghjkl==0.1a4 backpack-for-pytorch==1.7.1 \
  curvlinops-for-pytorch==3.0.1 unfoldNd==0.2.3 einconv==0.1.0 pytorch-fid==0.3.0
cp -n /usr/share/datasets/fashion-mnist/*.gz shared-data/fashion-mnist/
du -sh .whl shared-data
