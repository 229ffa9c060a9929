#!/usr/bin/env bash
# Start-up of the sana-sr binary: seconds and peak resident memory of `sana-sr --version`, as built (libtorch's
# CUDA backend loaded only where an NVIDIA driver is) and with libtorch_cuda.so preloaded, which is what
# linking it did before; RUNS (default 7) interleaved runs each, the median printed.
#
#   tools/bench/startup.sh [target/release/sana-sr]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/sana-sr}
cuda=$(readlink -f .libtorch/lib/libtorch_cuda.so)
runs=${RUNS:-7}
measure() { { /usr/bin/time -f "%e %M" "$@" --version > /dev/null; } 2>&1 | tail -1; }
lazy=() linked=()
for _ in $(seq "$runs"); do
    lazy+=("$(measure "$bin")")
    linked+=("$(LD_PRELOAD=$cuda measure "$bin")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
row() {
    local name=$1; shift
    local seconds=() kb=()
    for m in "$@"; do seconds+=("${m% *}"); kb+=("${m#* }"); done
    echo "| $name | $(median "${seconds[@]}") | $(( $(median "${kb[@]}") / 1024 )) |"
}
echo "| \`sana-sr --version\`, median of $runs | seconds | peak resident MB |"
echo "|---|---|---|"
row "as built (CUDA backend not loaded without a driver)" "${lazy[@]}"
row "libtorch_cuda.so loaded at start (as when it was linked)" "${linked[@]}"
