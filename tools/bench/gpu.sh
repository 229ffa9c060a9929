#!/usr/bin/env bash
# The speed table on a CUDA machine in one go: every `sana-sr bench` case in f32 and in bf16 beside
# diffusers/PyTorch eager in f32 and in bf16 (autocast), then whole `sana-sr upscale` commands of a 300x250
# photo to 1200x1000 per model. Sized to finish in under 5 minutes on one recent GPU.
#
#   tools/bench/gpu.sh prepare   on a machine with Rust and the network: writes data/gpu/ (ignored by git):
#                                a stripped release binary, diffusers and the pure-Python packages it needs
#                                (not torch, numpy or Pillow, which the GPU machine's PyTorch brings), the
#                                photo, and the peers if scripts/fetch_peers.sh imported them; packed as
#                                data/gpu.tar.xz (about 50 MB), the one file to copy to the GPU machine.
#   tools/bench/gpu.sh run       on the GPU machine, from the repo root with data/gpu.tar.xz (or data/gpu/): needs
#                                a Python with torch==2.11.0 for CUDA (the libtorch the binary was built
#                                against), no network. Prints the tables and writes them to $OUT/gpu-speed.md
#                                (OUT defaults to out/). DEVICE (default cuda), CASES and REPEATS (default
#                                10), RUNS (default 5) narrow it, e.g. for a check of the script on a CPU.
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
    .venv/bin/pip install --quiet --disable-pip-version-check --target "$GPU/python" "$diffusers"
    # The GPU machine's own numpy and Pillow must be the ones imported (diffusers does not ask for torch).
    # hf_xet (11 MB) serves hub downloads only.
    (cd "$GPU/python" && rm -rf numpy numpy-* numpy.libs PIL pillow-* pillow.libs hf_xet hf_xet-* bin)
    find "$GPU/python" -name __pycache__ -prune -exec rm -rf {} +
    .venv/bin/python - "$GPU/photo.png" <<'EOF'
import sys
from PIL import Image
Image.open("../shared/datasets/RealSR-LR4/Canon_001_LR4.png").convert("RGB").crop((0, 0, 300, 250)).save(sys.argv[1])
EOF
    local models=${SANA_SR_MODELS:-data/peers/models}
    cp "$models"/realesr*.safetensors "$GPU/models/" 2>/dev/null || echo "gpu: no peers in $models (scripts/fetch_peers.sh)"
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
        echo
        local models=(sana-sr-compact-pruned-clean sana-sr-compact-pruned sana-sr-compact sana-sr-tiny)
        for peer in realesr-general-x4v3 realesrgan-x4plus; do
            [[ -f $GPU/models/$peer.safetensors ]] && models+=("$peer")
        done
        for precision in f32 bf16; do
            echo "upscale --device $device --precision $precision"
            "$py" tools/bench/upscale_speed.py "${models[@]}" --binary "$bin" --photo "$GPU/photo.png" \
                --device "$device" --precision "$precision" --runs "${RUNS:-5}"
            echo
        done
    } 2>&1 | tee "$report"
}

case ${1:-} in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run (see the comment at the top)" >&2; exit 2 ;;
esac
