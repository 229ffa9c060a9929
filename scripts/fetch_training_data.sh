#!/usr/bin/env bash
# Fetches the training photographs of sana-sr into data/raw (idempotent; no system install, no root needed
# beyond what `apt-get update` wants).
#
#   - Debian wallpaper packages (free licences, see each package's copyright file): downloaded with
#     `apt-get download` and unpacked with `dpkg-deb -x` into data/raw/<package>/;
#   - scripts/training_photos.txt lists which of their files are real photographs (drawings, abstract and
#     rendered art are left out); ../shared/datasets/SunHays80 is added whole by `sana-sr data build-pool`.
#
# Then:  sana-sr data build-pool --out data/hr_pool   (writes data/hr_pool/*.png, downscaled 2x to hide JPEG blocks)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RAW="$ROOT/data/raw"
DEBS="$ROOT/data/debs"
PACKAGES=(lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers)

mkdir -p "$RAW" "$DEBS"
missing=()
for package in "${PACKAGES[@]}"; do
    [[ -f "$RAW/$package/.unpacked" ]] || missing+=("$package")
done

if ((${#missing[@]})); then
    if [[ -z "${SKIP_APT_UPDATE:-}" ]]; then
        apt-get update -qq || echo "warning: apt-get update failed; trying the cached package lists" >&2
    fi
    (cd "$DEBS" && apt-get download "${missing[@]}")
    for package in "${missing[@]}"; do
        deb=$(ls "$DEBS/${package}"_*.deb | head -n 1)
        rm -rf "$RAW/$package"
        dpkg-deb -x "$deb" "$RAW/$package"
        touch "$RAW/$package/.unpacked"
    done
fi

# Every listed photograph must exist: a list out of step with the packages is an error, not a smaller pool.
absent=0
while IFS= read -r line; do
    path="${line%%#*}"
    path="$(echo "$path" | xargs)"
    [[ -z "$path" ]] && continue
    if [[ ! -f "$RAW/$path" ]]; then
        echo "missing: $RAW/$path" >&2
        absent=$((absent + 1))
    fi
done < "$ROOT/scripts/training_photos.txt"
if ((absent)); then
    echo "$absent listed photographs are missing" >&2
    exit 1
fi
echo "data/raw ready: $(grep -cv '^\s*\(#\|$\)' "$ROOT/scripts/training_photos.txt") listed photographs"
