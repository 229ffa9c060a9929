"""How much fine detail the photos of a folder hold: the high-pass share of their luma.

For the centre 256 x 256 crop of every image: std(Y - Gaussian(Y, sigma 1.5)) / std(Y), averaged over the
folder, with the mean absolute horizontal luma step beside it. Compares a training pool with the test sets'
ground truth, e.g.:

    .venv/bin/python tools/analysis/detail_share.py data/hr_pool ../shared/datasets/ImageNet-ValSR/gt \
        ../shared/datasets/CBSD68 ../shared/datasets/Set14/HR

Needs numpy, scipy and Pillow.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def luma(path, crop):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    h, w = rgb.shape[:2]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    return rgb[top : top + crop, left : left + crop] @ [0.299, 0.587, 0.114]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--crop", type=int, default=256)
    args = parser.parse_args()
    for folder in args.folders:
        shares, steps = [], []
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            y = luma(path, args.crop)
            shares.append((y - gaussian_filter(y, 1.5)).std() / max(y.std(), 1e-6))
            steps.append(np.abs(np.diff(y, axis=1)).mean())
        print(f"{str(folder):45s} {len(shares):4d} images  high-pass share {np.mean(shares):.3f}  mean |dY/dx| {np.mean(steps):.4f}")


if __name__ == "__main__":
    main()
