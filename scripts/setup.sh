#!/usr/bin/env bash
# Install s2gate and everything its gate and tests need into ./.venv (idempotent).
#
# Order matters: torch==2.13.0 (the CPU build) first, then everything else under a
# constraint that keeps it; norse, sinabs and rockpool last with --no-deps (norse's torchvision dependency
# has no working build beside this torch, sinabs' samna is not needed; all run without them).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "s2gate setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "s2gate setup: installing torch==2.13.0 (CPU)"
  $PIP install torch==2.13.0
fi
echo "s2gate setup: installing s2gate[all]"
$PIP install -c constraints.txt -e ".[all]"
if ! .venv/bin/python -c "import norse" 2>/dev/null; then
  $PIP install -c constraints.txt --no-deps norse==1.1.0
fi
# peers for harness.intake's tests (real exports): sinabs declares samna (a chip driver its NIR path never
# imports) and rockpool 3.1.0 is an sdist; both run on the dependencies installed above
if ! .venv/bin/python -c "import sinabs" 2>/dev/null; then
  $PIP install -c constraints.txt --no-deps sinabs==3.1.3
fi
if ! .venv/bin/python -c "import rockpool" 2>/dev/null; then
  $PIP install -c constraints.txt --no-deps rockpool==3.1.0
fi
echo "s2gate setup: ready ($(.venv/bin/python -c 'import torch, nir; print(f"torch {torch.__version__}, nir {nir.__version__}")'))"
