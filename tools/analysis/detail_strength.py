"""Would a weaker or stronger decoder detail help? Rescales what an `lr_skip` model adds to its bicubic base.

An `lr_skip` model outputs bicubic(LR) + detail, bicubic being PyTorch's (Keys a = -0.75, as the pipeline
resizes). This writes clamp(bicubic + a * (SR - bicubic)) for every strength a, as folders `sana-sr eval`
scores (a = 0 is the pipeline's bicubic base, a = 1 the model itself):

    sana-sr upscale ../shared/datasets/ImageNet-ValSR/lq -o out/sr/ImageNet-ValSR
    .venv/bin/python tools/analysis/detail_strength.py out/sr/ImageNet-ValSR ../shared/datasets/ImageNet-ValSR/lq \
        out/strength --set ImageNet-ValSR --strengths 0,0.5,1,1.5
    sana-sr eval --sets ImageNet-ValSR --method bicubic --method folder:a0.5=out/strength/a0.5 ...

The SR folder holds <stem>_x4.png (as `sana-sr upscale DIR -o OUT` writes them), the LR folder <stem>.<ext>.
Needs numpy, Pillow and torch (the project's .venv).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def bicubic_base(lr, scale):
    """The pipeline's resize: PyTorch bicubic, clamped to [0, 1]."""
    x = torch.from_numpy(lr).permute(2, 0, 1)[None]
    up = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return up[0].permute(1, 2, 0).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sr", type=Path, help="folder of <stem>_x4.png")
    parser.add_argument("lr", type=Path, help="folder of the LR inputs")
    parser.add_argument("out", type=Path, help="writes OUT/a<strength>/<set>/<stem>.png")
    parser.add_argument("--set", required=True, help="the set's name, as `sana-sr eval --sets` knows it")
    parser.add_argument("--strengths", default="0,0.5,0.75,1,1.5,2")
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    strengths = [float(a) for a in args.strengths.split(",")]
    lr_files = {p.stem: p for p in args.lr.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"}}
    suffix = f"_x{args.scale}"
    for sr_path in sorted(args.sr.glob(f"*{suffix}.png")):
        stem = sr_path.stem[: -len(suffix)]
        base = bicubic_base(load(lr_files[stem]), args.scale)
        detail = load(sr_path) - base
        for a in strengths:
            folder = args.out / f"a{a}" / args.set
            folder.mkdir(parents=True, exist_ok=True)
            out = np.clip(base + a * detail, 0.0, 1.0)
            Image.fromarray((out * 255.0 + 0.5).astype(np.uint8)).save(folder / f"{stem}.png")


if __name__ == "__main__":
    main()
