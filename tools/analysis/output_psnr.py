"""PSNR (RGB, 8-bit, whole image) of the images in each folder against the same-named images of a reference
folder, averaged per folder: how far a changed model (pruned, quantised, tiled) moves the output.

    .venv/bin/python tools/analysis/output_psnr.py REFERENCE_DIR DIR...
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reference = Path(sys.argv[1])
    names = sorted(p.name for p in reference.iterdir() if p.is_file())
    if not names:
        sys.exit(f"{reference}: no images")
    for folder in map(Path, sys.argv[2:]):
        values = []
        for name in names:
            ours = np.asarray(Image.open(folder / name).convert("RGB"))
            theirs = np.asarray(Image.open(reference / name).convert("RGB"))
            if ours.shape != theirs.shape:
                sys.exit(f"{folder / name}: {ours.shape} against the reference's {theirs.shape}")
            values.append(psnr(ours, theirs))
        print(f"{folder}: {np.mean(values):.1f} dB over {len(values)} images")


if __name__ == "__main__":
    main()
