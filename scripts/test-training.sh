#!/usr/bin/env bash
# The training scripts' tests (models/training/tests) in a venv of their own with PyTorch's CPU
# build (torch 2.13.0 lies on this machine's disk; an unpinned torch would pull a CUDA build of
# several GB). The runtime venv stays free of training dependencies. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${TRAIN_TEST_VENV:-$ROOT/.venv-train-test}
PYTHON=${PYTHON:-python3}
reqs=(torch==2.13.0 "numpy>=2,<3" opencv-python-headless==4.14.0.94 pytest)
want=$(printf '%s\n' "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.moodstream-deps" 2>/dev/null)" != "$want" ]; then
  echo "[test-training] installing PyTorch (CPU) into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  log=$(mktemp)
  rc=0
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${reqs[@]}" > "$log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  [ $rc -eq 0 ] || exit $rc
  echo "$want" > "$VENV/.moodstream-deps"
fi
cd "$ROOT/models/training"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
