#!/usr/bin/env bash
# Runs the numeric suites (parity with diffusers / PyTorch / basicsr, LoRA merging, resizing, tiling) once per
# CPU kernel setting, so that their bounds are seen to hold on more than the kernels libtorch picks for this
# machine: 1 and 2 threads, ATen's default / AVX2 / AVX-512 code paths, and MKL and oneDNN capped at AVX2.
# None of these variables changes what is compiled, so each run reuses the test executables of the README's
# build (seconds each).
#
# Usage: scripts/kernel_matrix.sh [test binary args, e.g. --nocapture]      (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

# Integration suites by target name, and the unit tests of numeric modules by test path. The released-config
# tests build 0.6-1.6 B random parameters and compute nothing: once in the full suite is enough.
INTEGRATION=(dc_ae_parity sana_transformer_parity esrgan_parity lora lpips dists basicsr_reference interpolate
    imresize gemma2_parity assemble)
INTEGRATION_ARGS=(--skip sana_600m --skip sana_1600m)
UNIT_FILTERS=(compare:: layers:: tiling:: resize:: degradations::filter optim::)

# The executables come from the README's own command (`cargo test --workspace`, built already), run directly
# in their package folder as cargo runs them. Naming targets on cargo's command line instead (`--test X`,
# `--lib`) resolves the dependencies' features anew and rebuilds much of the workspace: minutes, and gigabytes
# of disk that a CI machine may not have.
mapfile -t EXECUTABLES < <(cargo test --workspace --no-run --quiet --message-format=json | .venv/bin/python -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["kind"][0], m["target"]["name"], os.path.dirname(m["manifest_path"]), m["executable"])
')

settings=(
    "OMP_NUM_THREADS=1"
    "OMP_NUM_THREADS=2"
    "ATEN_CPU_CAPABILITY=default"
    "ATEN_CPU_CAPABILITY=avx2"
    "MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
    "OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"
)
# AVX-512 only where the CPU has it (ATen falls back silently otherwise, which would test nothing new).
grep -qw avx512f /proc/cpuinfo && settings+=("ATEN_CPU_CAPABILITY=avx512")

# The selection, made once: every named suite must be there (a renamed one must not pass as a green matrix).
SELECTED=()
declare -A found=()
for entry in "${EXECUTABLES[@]}"; do
    read -r kind name _ <<< "$entry"
    if [[ $kind == lib || ($kind == test && " ${INTEGRATION[*]} " == *" $name "*) ]]; then
        SELECTED+=("$entry")
        found[$name]=1
    fi
done
for name in "${INTEGRATION[@]}"; do
    [[ -n ${found[$name]:-} ]] || { echo "kernel matrix: no test executable named $name" >&2; exit 1; }
done

for setting in "${settings[@]}"; do
    echo "kernel matrix: $setting"
    for entry in "${SELECTED[@]}"; do
        read -r kind name dir executable <<< "$entry"
        if [[ $kind == lib ]]; then args=("${UNIT_FILTERS[@]}"); else args=("${INTEGRATION_ARGS[@]}"); fi
        # shellcheck disable=SC2086 # the setting is a word list
        (cd "$dir" && env $setting "$executable" --quiet "${args[@]}" "$@")
    done
done
echo "kernel matrix: ${#settings[@]} settings passed (${#SELECTED[@]} test executables each)"
