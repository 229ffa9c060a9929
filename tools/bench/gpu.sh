#!/usr/bin/env bash
# The speed table on a CUDA machine in one go: every `sana-sr bench` case in f32 and in bf16 beside
# diffusers/PyTorch eager in f32 and in bf16 (autocast), then whole `sana-sr upscale` commands of a 300x250
# photo to 1200x1000 per model; then the built-in model's Set5/Set14 scores in f32 and in bf16 on the device
# and a short training run there (its steps/s). On one H200 the first run's tables and scores took about 9
# minutes, most of it outside the timed calls (process starts, the reference's random weights built on the host,
# since built on the device); each phase ends with the seconds since the start.
#
#   tools/bench/gpu.sh prepare   on a machine with Rust and the network: writes data/gpu/ (ignored by git):
#                                a stripped release binary, diffusers, the photo, Set5 and Set14, a few photos
#                                of the training pool (data/hr_pool) and realesr-general-x4v3 if
#                                scripts/fetch_peers.sh imported it; packed as data/gpu.tar.xz (about 30 MB),
#                                the one file to copy to the GPU machine.
#   tools/bench/gpu.sh run       on the GPU machine, from the repo root with data/gpu.tar.xz (or data/gpu/): needs
#                                a Python with torch==2.11.0 for CUDA (the libtorch the binary was built
#                                against) and diffusers' other needs, no network. Prints the tables and writes
#                                them to $OUT/gpu-speed.md (OUT defaults to out/). DEVICE (default cuda), CASES
#                                and REPEATS (default 10), RUNS (default 5) narrow it, e.g. for a check of the
#                                script on a CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
GPU=data/gpu

prepare() {
    [[ -x target/release/sana-sr ]] || cargo build --release -p sana-sr
    mkdir -p "$GPU/models"
    strip -o "$GPU/sana-sr" target/release/sana-sr
    rm -rf "$GPU/python"
    local diffusers
    diffusers=$(grep '^diffusers==' tools/reference/requirements.txt)
    # diffusers alone (and importlib_metadata): a PyTorch machine's Python brings numpy, Pillow, safetensors,
    # huggingface_hub, regex, requests and filelock, and its own builds of them must be the ones imported.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --target "$GPU/python" "$diffusers" \
        importlib_metadata
    find "$GPU/python" -name __pycache__ -prune -exec rm -rf {} +
    .venv/bin/python - "$GPU/photo.png" <<'EOF'
import sys
from PIL import Image
Image.open("../shared/datasets/RealSR-LR4/Canon_001_LR4.png").convert("RGB").crop((0, 0, 300, 250)).save(sys.argv[1])
EOF
    local models=${SANA_SR_MODELS:-data/peers/models}
    # realesrgan-x4plus (33 MB) would double the pack: the GPU table times the fast peer only.
    cp "$models"/realesr-general-x4v3.safetensors "$GPU/models/" 2>/dev/null \
        || echo "gpu: no realesr-general-x4v3 in $models (scripts/fetch_peers.sh)"
    local datasets=${SANA_SR_DATASETS:-../shared/datasets}
    rm -rf "$GPU/datasets" "$GPU/hr"
    mkdir -p "$GPU/datasets" "$GPU/hr"
    cp -r "$datasets/Set5" "$datasets/Set14" "$GPU/datasets/"
    # Eight photos' centres are enough to time training steps (the whole pool is hundreds of MB).
    [[ -d data/hr_pool ]] || { echo "gpu: no data/hr_pool (scripts/fetch_training_data.sh, then sana-sr data build-pool)" >&2; exit 1; }
    .venv/bin/python - "$GPU/hr" $(find data/hr_pool -name '*.png' | sort | head -n 8) <<'EOF'
import sys
from pathlib import Path
from PIL import Image
for path in map(Path, sys.argv[2:]):
    image = Image.open(path)
    side = min(640, *image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image.crop((left, top, left + side, top + side)).save(Path(sys.argv[1]) / path.name)
EOF
    tar -C data -cJf "$GPU.tar.xz" gpu
    du -sh "$GPU.tar.xz"
}

run() {
    local py=${PYTHON:-python3} out=${OUT:-out} device=${DEVICE:-cuda}
    [[ -d $GPU ]] || tar -C data -xJf "$GPU.tar.xz"
    export PYTHONPATH="$PWD/$GPU/python${PYTHONPATH:+:$PYTHONPATH}"
    # The binary finds libtorch through this Python's torch (its own RUNPATH points at the build machine's venv).
    local lib
    lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export SANA_SR_MODELS=$PWD/$GPU/models
    mkdir -p "$out"
    local bin=$GPU/sana-sr report=$out/gpu-speed.md
    {
        echo "## $device: $("$py" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU", "| torch", torch.__version__)')"
        echo
        "$py" tools/bench/compare.py --bin "$bin" --device "$device" --threads "$(nproc)" --repeats "${REPEATS:-10}" \
            --precision f32,bf16 ${CASES:+--cases "$CASES"}
        echo "($SECONDS s)"
        echo
        local models=(sana-sr-compact-pruned-gan-extrapolated sana-sr-compact)
        for peer in realesr-general-x4v3 realesrgan-x4plus; do
            [[ -f $GPU/models/$peer.safetensors ]] && models+=("$peer")
        done
        for precision in f32 bf16; do
            echo "upscale --device $device --precision $precision"
            "$py" tools/bench/upscale_speed.py "${models[@]}" --binary "$bin" --photo "$GPU/photo.png" \
                --device "$device" --precision "$precision" --runs "${RUNS:-5}"
            echo "($SECONDS s)"
            echo
        done
        quality "$bin" "$device" || echo "gpu: the quality check failed"
        train "$bin" "$device" || echo "gpu: the training run failed"
    } 2>&1 | tee "$report"
}

# The built-in model's scores on the device in f32 and in bf16: bf16 should cost at most a few hundredths of
# a dB, as on a CPU (crates/eval/tests/precision.rs).
quality() {
    local bin=$1 device=$2 precision
    for precision in f32 bf16; do
        "$bin" eval --datasets "$GPU/datasets" --sets Set5,Set14 --method model --device "$device" \
            --precision "$precision" --out "$GPU/eval-$precision" --overwrite --panel-images 0
    done
    echo "eval --device $device --sets Set5,Set14 --method model, f32 then bf16:"
    cat "$GPU/eval-f32/quality.csv"
    tail -n +2 "$GPU/eval-bf16/quality.csv"
    echo "($SECONDS s)"
    echo
}

# A short run of the stage whose checkpoint the default's config continues (clean pairs, teacher, adversarial
# term) on the device, stopped halfway and resumed: that the CUDA trainer works end to end, and its steps/s.
train() {
    local bin=$1 device=$2 run=$GPU/train-run config=$GPU/train.toml
    rm -rf "$run"
    sed -e "s|\"data/hr_pool\"|\"$GPU/hr\"|" \
        -e 's|^val_images = .*|val_images = 2|' -e 's|^val_pairs = .*|val_pairs = 4|' -e 's|^workers = .*|workers = 8|' \
        -e 's|^steps = .*|steps = 200|' -e 's|^total_steps = .*|total_steps = 200|' \
        configs/sana-sr-compact-pruned-clean-adversarial-long.toml > "$config"
    "$bin" train --config "$config" --run "$run" --device "$device" --stop-after 100
    "$bin" train --config "$config" --run "$run" --device "$device" --resume
    echo "train --device $device (configs/sana-sr-compact-pruned-clean-adversarial-long.toml for 200 steps on 8 photos, resumed at 100), its log's last rows:"
    head -n 1 "$run/log.csv"
    tail -n 3 "$run/log.csv"
    echo "($SECONDS s)"
}

case ${1:-} in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run (see the comment at the top)" >&2; exit 2 ;;
esac
