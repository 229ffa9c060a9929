"""How much PSNR-Y over bicubic is there to take on a paired set, and where an SR method loses it.

Usage (the SR folder holds <stem>_x4.png, as `sana-sr upscale DIR -o OUT` writes them):
    sana-sr upscale ../shared/datasets/ImageNet-ValSR/lq -o out/sr-imagenet
    .venv/bin/python tools/analysis/fidelity_headroom.py out/sr-imagenet [--ensemble target/release/sana-sr]
        [--model NAME|PATH]

Prints, against PIL's bicubic (24.1305 dB on ImageNet-ValSR; MATLAB's, the benchmarks' row, 24.130):
- the gain of the best linear filter on bicubic's luma (least squares, 7x7 taps), fitted on every other image
  and scored on the rest, both ways: an upper bound on what sharpening alone can give;
- the PSNR-Y of bicubic + a * (SR - bicubic) for detail strengths a;
- SR's error over bicubic's in rings by distance from the border (is it the padding or the tiling?);
- with --ensemble BINARY: the x8 self-ensemble (the 8 flips and rotations of each LR image upscaled by
  BINARY with --model, default its built-in one, undone and averaged).
Needs numpy, scipy, scikit-image and Pillow; imports fidelity_bands.py's pairs and conventions (basicsr's Y, 4-pixel border).
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fidelity_bands import luma, pairs, psnr_y

RADIUS = 3
STRENGTHS = [0.0, 0.25, 0.4, 0.5, 0.75, 1.0]
RINGS = [(4, 8), (8, 16), (16, 32), (32, 64), (64, 128)]
TRANSFORMS = [(turns, flip) for turns in range(4) for flip in (False, True)]


def linear_filter_gains(data):
    def features(bic):
        y = luma(bic)
        h, w = y.shape
        p = np.pad(y, RADIUS, mode="reflect")
        taps = range(-RADIUS, RADIUS + 1)
        shifted = [p[RADIUS + dy : RADIUS + dy + h, RADIUS + dx : RADIUS + dx + w] for dy in taps for dx in taps]
        f = np.stack(shifted, -1)
        return np.concatenate([f, np.ones((h, w, 1))], -1)[4:-4, 4:-4].reshape(-1, f.shape[-1] + 1)

    gains = []
    for half in (0, 1):
        fit = [d for i, d in enumerate(data) if i % 2 == half]
        x = np.concatenate([features(bic) for gt, bic, _ in fit])
        y = np.concatenate([luma(gt)[4:-4, 4:-4].ravel() for gt, _, _ in fit])
        w = np.linalg.lstsq(x, y, rcond=None)[0]
        scored = [d for i, d in enumerate(data) if i % 2 != half]
        gains.append(
            np.mean(
                [
                    -10 * np.log10(np.mean((features(bic) @ w - luma(gt)[4:-4, 4:-4].ravel()) ** 2))
                    - psnr_y(bic, gt)
                    for gt, bic, _ in scored
                ]
            )
        )
    return gains


def ensemble(binary, model, dataset, out):
    def turn(a, turns, flip):
        a = np.rot90(a, turns)
        return a[:, ::-1] if flip else a

    def undo(a, turns, flip):
        return np.rot90(a[:, ::-1] if flip else a, -turns)

    runs = []
    for k, (turns, flip) in enumerate(TRANSFORMS):
        lq_dir, sr_dir = out / f"lq{k}", out / f"sr{k}"
        lq_dir.mkdir()
        for path in sorted((dataset / "lq").iterdir()):
            lq = np.asarray(Image.open(path).convert("RGB"))
            Image.fromarray(np.ascontiguousarray(turn(lq, turns, flip))).save(lq_dir / f"{path.stem}.png")
        model_args = ["--model", model] if model else []
        command = [binary, "upscale", str(lq_dir), "-o", str(sr_dir), *model_args]
        subprocess.run(command, check=True, capture_output=True)
        runs.append((sr_dir, turns, flip))
    averaged = out / "ensemble"
    averaged.mkdir()
    for path in sorted((dataset / "lq").iterdir()):
        images = [np.asarray(Image.open(d / f"{path.stem}_x4.png"), dtype=np.float64) for d, _, _ in runs]
        mean = sum(undo(a, t, f) for a, (_, t, f) in zip(images, runs)) / len(runs)
        Image.fromarray(np.clip(np.round(mean), 0, 255).astype(np.uint8)).save(averaged / f"{path.stem}_x4.png")
    return averaged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sr", type=Path)
    parser.add_argument("--set", type=Path, default=Path("../shared/datasets/ImageNet-ValSR"))
    parser.add_argument("--ensemble", metavar="BINARY", help="also score the x8 self-ensemble of BINARY's model")
    parser.add_argument("--model", help="the model the ensemble runs (default: BINARY's built-in one)")
    args = parser.parse_args()

    data = list(pairs(args.set, args.sr))
    print(f"bicubic {np.mean([psnr_y(bic, gt) for gt, bic, _ in data]):.4f} dB")
    gains = " / ".join(f"{g:+.3f}" for g in linear_filter_gains(data))
    print(f"best linear filter on bicubic, cross-validated gain: {gains} dB")
    for a in STRENGTHS:
        mixed = [np.clip(np.round((bic + a * (sr - bic)) * 255) / 255, 0, 1) for _, bic, sr in data]
        print(f"detail strength {a:g}: {np.mean([psnr_y(m, gt) for m, (gt, _, _) in zip(mixed, data)]):.4f} dB")
    for low, high in RINGS:
        sr_err = bic_err = 0.0
        for gt, bic, sr in data:
            h, w = gt.shape[:2]
            yy, xx = np.mgrid[0:h, 0:w]
            distance = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))
            ring = (distance >= low) & (distance < high)
            sr_err += np.sum((luma(sr) - luma(gt))[ring] ** 2)
            bic_err += np.sum((luma(bic) - luma(gt))[ring] ** 2)
        print(f"pixels {low}-{high} from the border: SR vs bicubic {10 * np.log10(bic_err / sr_err):+.3f} dB")
    if args.ensemble:
        with tempfile.TemporaryDirectory() as tmp:
            averaged = ensemble(args.ensemble, args.model, args.set, Path(tmp))
            scores = [psnr_y(sr, gt) for gt, _, sr in pairs(args.set, averaged)]
            print(f"x8 self-ensemble: {np.mean(scores):.4f} dB")


if __name__ == "__main__":
    main()
