#!/usr/bin/env bash
# Installs what sana-sr builds and runs against: libtorch from PyPI `torch==2.11.0` (the version tch 0.24
# binds) into a virtualenv inside the repo, and the `.libtorch` link that .cargo/config.toml points at.
# Idempotent: a second run checks the version and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
VENV=.venv
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

installed=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$installed" != "$TORCH_VERSION" ]; then
    echo "setup: installing torch==$TORCH_VERSION into $VENV (about 2.7 GB)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi

torch_dir=$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
ln -sfn "$torch_dir" .libtorch
echo "setup: libtorch $TORCH_VERSION at .libtorch -> $torch_dir"
