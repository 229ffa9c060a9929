#!/usr/bin/env bash
# Runs the numeric suites (parity with diffusers / PyTorch / basicsr, LoRA merging, resizing, tiling) once per
# CPU kernel setting, so that their bounds are seen to hold on more than the kernels libtorch picks for this
# machine: 1 and 2 threads, ATen's default / AVX2 / AVX-512 code paths, and MKL and oneDNN capped at AVX2.
# None of these variables changes what is compiled, so each run reuses the test binaries (seconds each).
#
# Usage: scripts/kernel_matrix.sh [test binary args, e.g. --nocapture]      (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

# Integration suites by target name, and the unit tests of numeric modules by path; `--workspace` keeps the
# README's feature set, so nothing is rebuilt. The released-config tests build 0.6-1.6 B random parameters
# and compute nothing: once in the full suite is enough.
SUITES=(
    "--test dc_ae_parity --test sana_transformer_parity --test esrgan_parity --test lora --test lpips --test dists
     --test basicsr_reference --test interpolate --test imresize --test gemma2_parity --test assemble
     -- --skip sana_600m --skip sana_1600m"
    "--lib -- compare:: layers:: tiling:: resize:: degradations::filter optim::"
)

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

for setting in "${settings[@]}"; do
    echo "kernel matrix: $setting"
    for suite in "${SUITES[@]}"; do
        # shellcheck disable=SC2086 # the setting and the suite are word lists
        env $setting cargo test --quiet --workspace $suite "$@"
    done
done
echo "kernel matrix: ${#settings[@]} settings passed"
