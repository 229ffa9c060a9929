"""Fixtures for MATLAB-style `imresize` and the PSNR / SSIM / NIQE metrics, from basicsr 1.4.2.

The references are basicsr's own files, loaded by path so that importing basicsr (which drags in torchvision and
compiled ops) is not needed:
  basicsr/utils/matlab_functions.py  imresize, calculate_weights_indices
  basicsr/utils/color_util.py        bgr2ycbcr (the Y channel of the metrics)
  basicsr/metrics/metric_util.py     to_y_channel
  basicsr/metrics/psnr_ssim.py       calculate_psnr, calculate_ssim
  basicsr/metrics/niqe.py            calculate_niqe (+ niqe_pris_params.npz beside it)

Get the sdist (it ships niqe_pris_params.npz):
  .venv/bin/python -m pip install wheel
  .venv/bin/python -m pip download --no-deps --no-build-isolation --no-binary :all: basicsr==1.4.2 -d /tmp/bsr
  tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
Run from the repository root (Set5 is read from ../shared/datasets):
  .venv/bin/python tools/reference/make_metric_fixtures.py [--basicsr /tmp/bsr/basicsr-1.4.2]

Writes
  crates/data/tests/fixtures/imresize/imresize.safetensors   float inputs, basicsr outputs, cases in the metadata
  crates/metrics/tests/fixtures/*.png                       8-bit RGB / gray images (crops of Set5, synthetic)
  crates/metrics/tests/fixtures/reference.json              basicsr PSNR / SSIM / NIQE of them
  crates/metrics/data/niqe_pris_params.safetensors          the pristine NIQE model, converted once (--params)

basicsr's metrics take BGR images (cv2 order); ours are RGB, so every image is flipped to BGR before it is handed
to basicsr.
"""

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[2]
SET5 = REPO.parent / "shared" / "datasets" / "Set5"
IMRESIZE_OUT = REPO / "crates" / "data" / "tests" / "fixtures" / "imresize" / "imresize.safetensors"
METRICS_DIR = REPO / "crates" / "metrics" / "tests" / "fixtures"
PARAMS_OUT = REPO / "crates" / "metrics" / "data" / "niqe_pris_params.safetensors"


def load_by_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_basicsr(root: Path):
    """basicsr's metric modules, with the package `__init__`s (torchvision, compiled ops) replaced by stubs."""
    src = root / "basicsr"
    for package in ("basicsr", "basicsr.metrics"):
        sys.modules[package] = types.ModuleType(package)
    registry = types.ModuleType("basicsr.utils.registry")

    class Registry:
        def register(self):
            return lambda obj: obj

    registry.METRIC_REGISTRY = Registry()
    sys.modules["basicsr.utils.registry"] = registry
    color_util = load_by_path("basicsr.utils.color_util", src / "utils" / "color_util.py")
    utils = types.ModuleType("basicsr.utils")
    utils.bgr2ycbcr = color_util.bgr2ycbcr
    sys.modules["basicsr.utils"] = utils
    matlab = load_by_path("basicsr.utils.matlab_functions", src / "utils" / "matlab_functions.py")
    load_by_path("basicsr.metrics.metric_util", src / "metrics" / "metric_util.py")
    psnr_ssim = load_by_path("basicsr.metrics.psnr_ssim", src / "metrics" / "psnr_ssim.py")
    niqe = load_by_path("basicsr.metrics.niqe", src / "metrics" / "niqe.py")
    return matlab, psnr_ssim, niqe


def imresize_to_size(matlab, img, out_h, out_w):
    """MATLAB `imresize(img, [out_h out_w])`: basicsr only resizes by one scale, so its weights and indices
    (`calculate_weights_indices`, with scale = out / in per dimension as MATLAB uses) are applied here, rows first
    as basicsr does, on the half-sample symmetric extension basicsr builds."""
    out = img.astype(np.float64)
    for axis, out_len in ((0, out_h), (1, out_w)):
        in_len = out.shape[axis]
        weights, indices, sym_s, sym_e = matlab.calculate_weights_indices(
            in_len, out_len, out_len / in_len, "cubic", 4, True)
        pad = [(0, 0)] * out.ndim
        pad[axis] = (sym_s, sym_e)
        padded = np.pad(out, pad, mode="symmetric")
        taps = np.take(padded, indices.numpy().astype(np.int64), axis=axis)  # axis -> (out_len, taps)
        w = weights.numpy().astype(np.float64)
        out = np.einsum("ot...,ot->o...", taps, w) if axis == 0 else np.einsum("hot...,ot->ho...", taps, w)
    return out.astype(np.float32)


def imresize_cases(matlab, rng):
    """(name, input HWC float32 in [0,1], target) where target is {"scale": s} or {"height": h, "width": w}."""
    smooth = lambda h, w, c: np.clip(
        0.5 + 0.4 * np.sin(np.arange(h)[:, None, None] / 3.1 + np.arange(c)) * np.cos(np.arange(w)[None, :, None] / 4.7)
        + 0.1 * rng.standard_normal((h, w, c)), 0, 1).astype(np.float32)
    noise = lambda h, w, c: rng.random((h, w, c), dtype=np.float32)
    return [
        ("x4_down_rgb", smooth(64, 48, 3), {"scale": 0.25}),
        ("x2_down_gray_odd", noise(33, 27, 1), {"scale": 0.5}),
        ("x0_3_down_rgb", smooth(50, 41, 3), {"scale": 0.3}),
        ("x0_75_down_gray", noise(29, 35, 1), {"scale": 0.75}),
        ("x4_up_rgb", smooth(12, 10, 3), {"scale": 4.0}),
        ("x1_7_up_gray_odd", noise(13, 11, 1), {"scale": 1.7}),
        ("size_down_rgb", smooth(40, 30, 3), {"height": 17, "width": 23}),
        ("size_mixed_gray", noise(21, 16, 1), {"height": 9, "width": 37}),
    ]


def make_imresize(matlab, rng):
    tensors, meta = {}, {}
    for name, img, target in imresize_cases(matlab, rng):
        if "scale" in target:
            out = matlab.imresize(img, target["scale"])  # HWC numpy in, HWC numpy out (float32)
        else:
            out = imresize_to_size(matlab, img, target["height"], target["width"])
        tensors[f"{name}.input"] = np.ascontiguousarray(img)
        tensors[f"{name}.output"] = np.ascontiguousarray(out.reshape(out.shape[0], out.shape[1], -1))
        meta[name] = json.dumps(target)
        print(f"imresize {name}: {img.shape} -> {out.shape}")
    IMRESIZE_OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(IMRESIZE_OUT), metadata=meta)


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def save_png(name, img):
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(METRICS_DIR / name, optimize=True)


def to_uint8(img01):
    return np.clip(np.round(img01 * 255.0), 0, 255).astype(np.uint8)


def make_metrics(matlab, psnr_ssim, niqe, rng):
    """PSNR / SSIM pairs: an HR crop and the bicubic x4 upscale of the matching crop of the MATLAB-made LR image
    (what a bicubic baseline scores), plus synthetic 8-bit pairs (RGB and gray). NIQE: real-size Set5 images and
    the blurrier bicubic upscale."""
    images = {}
    pairs = []

    def bicubic_sr(stem, y, x, h, w):
        hr = read_rgb(SET5 / "HR" / f"{stem}.png")[y:y + h, x:x + w]
        lr = read_rgb(SET5 / "LR_bicubic" / "X4" / f"{stem}x4.png")[y // 4:(y + h) // 4, x // 4:(x + w) // 4]
        sr = to_uint8(matlab.imresize(lr.astype(np.float32) / 255.0, 4.0))
        return hr, sr

    for stem, (y, x, h, w) in {"baby": (200, 160, 120, 100), "butterfly": (64, 96, 96, 128)}.items():
        hr, sr = bicubic_sr(stem, y, x, h, w)
        images[f"{stem}_hr.png"], images[f"{stem}_sr.png"] = hr, sr
        pairs.append((f"{stem}_sr.png", f"{stem}_hr.png"))

    base = rng.integers(0, 256, (36, 40, 3)).astype(np.float64)
    images["synthetic_a.png"] = base.astype(np.uint8)
    images["synthetic_b.png"] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).round().astype(np.uint8)
    pairs.append(("synthetic_a.png", "synthetic_b.png"))
    gray = np.clip(128 + 60 * np.sin(np.arange(45)[None, :] / 5.0) + rng.normal(0, 20, (33, 45)), 0, 255)
    images["gray_a.png"] = gray.round().astype(np.uint8)[..., None]
    images["gray_b.png"] = np.clip(gray + rng.normal(0, 8, gray.shape), 0, 255).round().astype(np.uint8)[..., None]
    pairs.append(("gray_a.png", "gray_b.png"))

    # NIQE: whole images whose sides are not multiples of 96 (woman: 344 x 228) and crops; bicubic SR of baby.
    images["woman.png"] = read_rgb(SET5 / "HR" / "woman.png")
    images["bird_crop.png"] = read_rgb(SET5 / "HR" / "bird.png")[0:200, 0:288]
    baby_hr, baby_sr = bicubic_sr("baby", 0, 0, 200, 200)
    images["baby_sr_niqe.png"] = baby_sr
    images["head_gray.png"] = np.asarray(Image.open(SET5 / "HR" / "head.png").convert("L"))[:200, :]
    images["head_gray.png"] = images["head_gray.png"][..., None]

    bgr = lambda img: img[..., ::-1].astype(np.float64) if img.shape[2] == 3 else img.astype(np.float64)
    records = {"psnr_ssim": [], "niqe": []}
    for a, b in pairs:
        for crop_border in (0, 4):
            for y in (False, True):
                ia, ib = bgr(images[a]), bgr(images[b])
                records["psnr_ssim"].append({
                    "a": a, "b": b, "crop_border": crop_border, "test_y_channel": y,
                    "psnr": float(psnr_ssim.calculate_psnr(ia, ib, crop_border, test_y_channel=y)),
                    "ssim": float(psnr_ssim.calculate_ssim(ia, ib, crop_border, test_y_channel=y)),
                })
    for name, crop_border in (("woman.png", 0), ("bird_crop.png", 0), ("bird_crop.png", 4),
                              ("baby_sr_niqe.png", 0), ("head_gray.png", 0)):
        img = images[name]
        # basicsr takes a gray image as 'HW' (no colour conversion); colour as BGR 'HWC' -> Y.
        value = (niqe.calculate_niqe(img[..., 0].astype(np.float64), crop_border, input_order="HW")
                 if img.shape[2] == 1 else niqe.calculate_niqe(bgr(img), crop_border))
        records["niqe"].append({"image": name, "crop_border": crop_border, "niqe": float(value)})

    for name, img in images.items():
        save_png(name, img)
    (METRICS_DIR / "reference.json").write_text(json.dumps(records, indent=1) + "\n")
    for r in records["psnr_ssim"]:
        print(f"{r['a']} vs {r['b']} crop={r['crop_border']} y={r['test_y_channel']}: "
              f"psnr {r['psnr']:.6f} ssim {r['ssim']:.8f}")
    for r in records["niqe"]:
        print(f"niqe {r['image']} crop={r['crop_border']}: {r['niqe']:.6f}")


def convert_pristine_params(root: Path):
    params = np.load(root / "basicsr" / "metrics" / "niqe_pris_params.npz")
    PARAMS_OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(params[k], dtype=np.float64) for k in
               ("mu_pris_param", "cov_pris_param", "gaussian_window")}, str(PARAMS_OUT),
              metadata={"source": "basicsr 1.4.2 sdist, basicsr/metrics/niqe_pris_params.npz"})
    print(f"wrote {PARAMS_OUT}")


def matlab_lr_agreement(matlab):
    """How close basicsr's imresize (on the 8-bit HR, rounded) comes to the MATLAB-made Set5 LR x4 files."""
    for stem in ("baby", "bird", "butterfly", "head", "woman"):
        hr = read_rgb(SET5 / "HR" / f"{stem}.png").astype(np.float32) / 255.0
        lr = read_rgb(SET5 / "LR_bicubic" / "X4" / f"{stem}x4.png").astype(np.int64)
        ours = to_uint8(matlab.imresize(hr, 0.25)).astype(np.int64)
        diff = np.abs(ours - lr)
        print(f"Set5 {stem}: LR x4 vs basicsr imresize: max |diff| {diff.max()}, exact {np.mean(diff == 0):.4%}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--basicsr", type=Path, default=Path("/tmp/bsr/basicsr-1.4.2"))
    parser.add_argument("--params", action="store_true", help="also (re)convert niqe_pris_params.npz")
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    matlab, psnr_ssim, niqe = load_basicsr(args.basicsr)
    make_imresize(matlab, rng)
    make_metrics(matlab, psnr_ssim, niqe, rng)
    if args.params:
        convert_pristine_params(args.basicsr)
    matlab_lr_agreement(matlab)


if __name__ == "__main__":
    main()
