# Sourced by demo.sh and test.sh: a virtual environment with overconf installed, and the
# Fashion-MNIST Debian package when it is missing and installing it is allowed.
#   OVERCONF_VENV  where the virtual environment lives (default: .venv in the repository)
#   OVERCONF_NO_APT=1  never call apt-get
set -euo pipefail
VENV="${OVERCONF_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import overconf, torch, laplace, opacus, pytorch_fid, pytest, mkdocs, material, mkdocstrings" 2>/dev/null \
   || [ setup.cfg -nt "$VENV/.overconf-installed" ]; then
  echo "== installing overconf and its dependencies (torch==2.14.1, torchvision==0.29.1, ...)"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[dev]" >"$VENV/pip-install.log" 2>&1; then
    grep -v "is ignored" "$VENV/pip-install.log" | tail -40 >&2
    echo "pip install failed; the full log is $VENV/pip-install.log" >&2
    exit 1
  fi
  touch "$VENV/.overconf-installed"
fi
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FMNIST" ] && [ -z "${OVERCONF_NO_APT:-}" ]; then
  echo "== Fashion-MNIST missing: installing the Debian package dataset-fashion-mnist"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" = none ]; then
    echo "   cannot install packages as this user: run 'sudo apt-get install dataset-fashion-mnist'" >&2
  else
    $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
      || echo "   apt-get failed: run 'sudo apt-get install dataset-fashion-mnist'" >&2
  fi
fi
case "$VENV" in
  /*) export PATH="$VENV/bin:$PATH" ;;
  *) export PATH="$PWD/$VENV/bin:$PATH" ;;
esac
