#!/usr/bin/env bash
# Real-ESRGAN x4plus peer: install it, then upscale the LR images of every evaluation set on the CPU into
# out/realesrgan/<set>/<stem>.png with per-image seconds in out/realesrgan/<set>/timings.csv, which
# `sana-sr eval --method folder:realesrgan=out/realesrgan` reads.
#
# Usage: scripts/realesrgan_peer.sh [SET ...]      (no SET = all sets below)
# Env:   DATASETS (default ../shared/datasets), OUT (default out/realesrgan),
#        LIMIT (at most this many new images per set; the run resumes where it stopped),
#        LR_ROOT (default out/lr: the LR inputs `sana-sr eval --export-lr out/lr` writes for the HR-only CBSD68),
#        SKIP_INSTALL=1 to skip apt/pip.
# Runs at the lowest CPU priority: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASETS=${DATASETS:-../shared/datasets}
OUT=${OUT:-out/realesrgan}
LR_ROOT=${LR_ROOT:-out/lr}

if [[ -z "${SKIP_INSTALL:-}" ]]; then
    apt-get update
    apt-get install -y libomp5-14 libvulkan1
    .venv/bin/pip install -r scripts/realesrgan_peer-requirements.txt
fi

# Set name -> folder of its LR x4 inputs. Set5/Set14 use their shipped MATLAB-bicubic LR (identical to ours,
# see docs/benchmarks.md); CBSD68 ships HR only, so its LR comes from the eval harness's export.
declare -A LR_DIR=(
    [Set5]="$DATASETS/Set5/LR_bicubic/X4"
    [Set14]="$DATASETS/Set14/LR_bicubic/X4"
    [CBSD68]="$LR_ROOT/CBSD68"
    [ImageNet-ValSR]="$DATASETS/ImageNet-ValSR/lq"
    [RealSR-LR4]="$DATASETS/RealSR-LR4"
    [RealSet65]="$DATASETS/RealSet65"
    [RealSet80]="$DATASETS/RealSet80"
    [RealSRSet+5images]="$DATASETS/RealSRSet+5images"
)
ORDER=(Set5 Set14 ImageNet-ValSR CBSD68 RealSRSet+5images RealSR-LR4 RealSet65 RealSet80)
SETS=("${@:-${ORDER[@]}}")

ARGS=()
for set in "${SETS[@]}"; do
    dir=${LR_DIR[$set]:?unknown set $set}
    if [[ -d $dir ]]; then ARGS+=("$set=$dir"); else echo "$set: no LR folder $dir, skipped" >&2; fi
done
LIMIT_ARGS=()
[[ -n "${LIMIT:-}" ]] && LIMIT_ARGS=(--limit "$LIMIT")
nice -n 19 .venv/bin/python scripts/realesrgan_peer.py --out "$OUT" "${LIMIT_ARGS[@]}" "${ARGS[@]}"
