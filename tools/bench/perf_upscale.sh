#!/usr/bin/env bash
# Where a whole `sana-sr upscale` spends its CPU time, by library and by function: `perf record` (Debian's
# linux-perf) sampling RUNS upscales of PHOTO, then the share of each library, with the convolution kernels
# oneDNN generates at run time (perf's `[JIT]` samples) summed into one line, and the top functions.
#
#   tools/bench/perf_upscale.sh PHOTO [RUNS] [-- upscale options, e.g. --precision f32 --model NAME]
#
# Run it on a quiet machine: idle OpenMP threads spinning for a busy core show up as libgomp.
set -euo pipefail
photo=$1
shift
runs=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then runs=$1; shift; fi
if [ "${1:-}" = "--" ]; then shift; fi
bin=${BIN:-target/release/sana-sr}
command -v perf > /dev/null || { echo "perf is missing (apt install linux-perf)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
perf record -q -F 2000 -o "$work/perf.data" -- bash -c '
    for i in $(seq "$1"); do "$2" upscale "$3" -o "$4/out.png" --overwrite --quiet "${@:5}"; done
' _ "$runs" "$bin" "$photo" "$work" "$@" > /dev/null 2>&1
echo "share of samples by library ([JIT]: oneDNN's generated kernels, the convolutions):"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2> /dev/null | awk '
    /^ +[0-9.]+%/ { gsub("%", "", $1); if ($2 == "[JIT]") jit += $1; else printf "%7.2f%%  %s\n", $1, $2 }
    END { printf "%7.2f%%  [JIT]\n", jit }' | sort -rn | head -12
echo "top functions:"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2> /dev/null | grep -E '^ +[0-9.]+%' \
    | sed -E 's/\(anonymous namespace\):://g' | cut -c1-160 | head -"${TOP:-25}"
