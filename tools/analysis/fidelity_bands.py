"""Where an SR method gains or loses PSNR against bicubic on a paired set, image by image and by frequency band.

Usage (the SR folder holds <stem>_x4.png, as `sana-sr upscale DIR -o OUT` writes them):
    sana-sr upscale ../shared/datasets/ImageNet-ValSR/lq -o out/sr-imagenet
    .venv/bin/python tools/analysis/fidelity_bands.py out/sr-imagenet [--set ../shared/datasets/ImageNet-ValSR]

Prints, against bicubic (PIL's, which scores 24.131 dB on ImageNet-ValSR where MATLAB's scores 24.13):
- the PSNR-Y difference per image and how many images gain;
- the difference of the low-pass part (Gaussian sigma in output pixels) and of the rest, and the gain left when
  the SR image's low-pass part is replaced by bicubic's (StableSR's wavelet colour fix, with a Gaussian);
- the low-pass change the method makes (SR - bicubic) beside the one the ground truth has (GT - bicubic), by
  brightness of the bicubic image: a method that stretches contrast more than the ground truth shows it here;
- the sub-pixel shift between SR and bicubic (phase correlation), which would cost PSNR everywhere.
Needs numpy, scipy, scikit-image and Pillow (tools/reference/requirements.txt).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.registration import phase_cross_correlation


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def luma(rgb):
    """Y of MATLAB's YCbCr in [0, 1], as basicsr's PSNR-Y."""
    return (16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr_y(a, b, border=4):
    d = (luma(a) - luma(b))[border:-border, border:-border]
    return 10.0 * np.log10(1.0 / np.mean(d**2))


def low_pass(rgb, sigma):
    return np.stack([gaussian_filter(rgb[..., c], sigma) for c in range(3)], -1)


def pairs(dataset, sr_dir):
    """(ground truth, PIL's bicubic of the LR image, SR image cropped to the ground truth) per image of a set."""
    for gt_path in sorted((dataset / "gt").iterdir()):
        gt = load(gt_path)
        lq = Image.open(next((dataset / "lq").glob(gt_path.stem + ".*"))).convert("RGB")
        bicubic = np.asarray(lq.resize(gt.shape[1::-1], Image.BICUBIC), dtype=np.float64) / 255.0
        yield gt, bicubic, load(sr_dir / f"{gt_path.stem}_x4.png")[: gt.shape[0], : gt.shape[1]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sr", type=Path)
    parser.add_argument("--set", type=Path, default=Path("../shared/datasets/ImageNet-ValSR"))
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    args = parser.parse_args()

    gains, bands, shifts = [], {s: ([], [], []) for s in args.sigmas}, []
    bins = np.linspace(0.0, 1.0, 11)
    stretch = [[[], []] for _ in range(10)]
    for gt, bicubic, sr in pairs(args.set, args.sr):
        gains.append(psnr_y(sr, gt) - psnr_y(bicubic, gt))
        for sigma, (low, high, fixed) in bands.items():
            lp = {name: low_pass(x, sigma) for name, x in (("sr", sr), ("bic", bicubic), ("gt", gt))}
            colour_fixed = np.clip(np.round((sr - lp["sr"] + lp["bic"]) * 255.0) / 255.0, 0.0, 1.0)
            fixed.append(psnr_y(colour_fixed, gt) - psnr_y(bicubic, gt))
            err = lambda a, b: np.mean((luma(a) - luma(b))[8:-8, 8:-8] ** 2)
            low.append(10 * np.log10(err(lp["bic"], lp["gt"]) / err(lp["sr"], lp["gt"])))
            high.append(
                10 * np.log10(err(bicubic - lp["bic"], gt - lp["gt"]) / err(sr - lp["sr"], gt - lp["gt"]))
            )
        lp4 = {name: low_pass(x, 4.0)[8:-8:8, 8:-8:8] for name, x in (("sr", sr), ("bic", bicubic), ("gt", gt))}
        level = np.clip(np.digitize(luma(lp4["bic"]), bins) - 1, 0, 9)
        for b in range(10):
            stretch[b][0].extend(luma(lp4["sr"])[level == b] - luma(lp4["bic"])[level == b])
            stretch[b][1].extend(luma(lp4["gt"])[level == b] - luma(lp4["bic"])[level == b])
        shifts.append(phase_cross_correlation(luma(bicubic), luma(sr), upsample_factor=50)[0])

    gains = np.array(gains)
    print(f"PSNR-Y gain over bicubic: mean {gains.mean():+.3f} dB, {np.sum(gains > 0)} of {len(gains)} images gain")
    print("per image:", " ".join(f"{g:+.2f}" for g in gains))
    for sigma, (low, high, fixed) in bands.items():
        print(
            f"sigma {sigma:g}: low-pass gain {np.mean(low):+.3f} dB, the rest {np.mean(high):+.3f} dB; "
            f"with bicubic's low-pass part {np.mean(fixed):+.3f} dB"
        )
    print("low-pass Y change by bicubic brightness (SR - bicubic | GT - bicubic):")
    for b in range(10):
        if len(stretch[b][0]) > 20:
            print(f"  {bins[b]:.1f}-{bins[b + 1]:.1f}: {np.mean(stretch[b][0]):+.4f} | {np.mean(stretch[b][1]):+.4f}")
    print(f"shift SR vs bicubic: {np.mean(shifts, 0).round(3)} px (std {np.std(shifts, 0).round(3)})")


if __name__ == "__main__":
    main()
