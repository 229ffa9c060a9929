"""Reference values for the data crate's torch-style interpolation and Real-ESRGAN blur kernels.

Writes crates/data/tests/fixtures/{interpolate,kernels}.safetensors, read by crates/data/tests/.

- interpolate: torch.nn.functional.interpolate (align_corners=False, no antialias) of a fixed random NCHW
  tensor, for every mode the degradation pipeline uses, with both `size=` and `scale_factor=` targets.
- kernels: the blur kernels of basicsr/data/degradations.py (bivariate_Gaussian,
  bivariate_generalized_Gaussian, bivariate_plateau, circular_lowpass_kernel), re-derived here in numpy in
  float64 from those formulas (mesh grid centred on 0, covariance R diag(sx^2, sy^2) R^T, normalised to sum 1;
  the sinc is cutoff * J1(cutoff r) / (2 pi r) with cutoff^2 / (4 pi) at the centre) for fixed parameters.

Run: .venv/bin/python tools/reference/make_degradation_fixtures.py
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from scipy import special

OUT = Path(__file__).resolve().parents[2] / "crates/data/tests/fixtures"


def interpolate_fixtures():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 17, 23, generator=gen, dtype=torch.float32)
    tensors = {"input": x}
    cases = []
    for mode in ["nearest", "bilinear", "bicubic", "area"]:
        for size in [(9, 11), (40, 31), (17, 23)]:
            name = f"{mode}_size_{size[0]}x{size[1]}"
            kwargs = {} if mode in ("nearest", "area") else {"align_corners": False}
            tensors[name] = F.interpolate(x, size=size, mode=mode, **kwargs).contiguous()
            cases.append({"name": name, "mode": mode, "height": size[0], "width": size[1]})
        # Scales whose floor(size * scale) differs from the size ratio, to pin the scale-factor semantics.
        for scale in [0.37, 1.43, 0.15, 2.0]:
            name = f"{mode}_scale_{scale}"
            kwargs = {} if mode in ("nearest", "area") else {"align_corners": False}
            tensors[name] = F.interpolate(x, scale_factor=scale, mode=mode, **kwargs).contiguous()
            cases.append({"name": name, "mode": mode, "scale": scale})
    return tensors, cases


def mesh(size):
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)  # xx varies along columns, yy along rows
    return np.stack([xx, yy], axis=-1)


def quadratic_form(size, sig_x, sig_y, theta, isotropic):
    """x^T Sigma^-1 x on the kernel grid."""
    if isotropic:
        cov = np.diag([sig_x**2, sig_x**2])
    else:
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        cov = rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T
    grid = mesh(size)
    return np.einsum("hwi,ij,hwj->hw", grid, np.linalg.inv(cov), grid)


def normalise(k):
    return k / k.sum()


def kernel(kind, size, sig_x, sig_y, theta, beta):
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    q = quadratic_form(size, sig_x, sig_y, theta, isotropic)
    if kind in ("iso", "aniso"):
        return normalise(np.exp(-0.5 * q))
    if kind.startswith("generalized"):
        return normalise(np.exp(-0.5 * q**beta))
    if kind.startswith("plateau"):
        return normalise(1.0 / (q**beta + 1.0))
    raise ValueError(kind)


def circular_lowpass(cutoff, size, pad_to):
    grid = mesh(size)
    r = np.hypot(grid[..., 0], grid[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[(size - 1) // 2, (size - 1) // 2] = cutoff**2 / (4 * np.pi)
    k = normalise(k)
    if pad_to > size:
        p = (pad_to - size) // 2
        k = np.pad(k, ((p, p), (p, p)))
    return k


def kernel_fixtures():
    tensors, cases = {}, []
    params = [
        ("iso", 7, 0.2, 0.2, 0.0, 1.0),
        ("iso", 21, 3.0, 3.0, 0.0, 1.0),
        ("aniso", 13, 0.7, 2.6, 0.9, 1.0),
        ("aniso", 21, 2.9, 0.3, -2.4, 1.0),
        ("generalized_iso", 11, 1.3, 1.3, 0.0, 0.6),
        ("generalized_iso", 21, 2.2, 2.2, 0.0, 3.7),
        ("generalized_aniso", 15, 0.5, 1.9, 2.8, 0.8),
        ("generalized_aniso", 9, 1.7, 0.9, -0.3, 2.5),
        ("plateau_iso", 17, 1.1, 1.1, 0.0, 1.0),
        ("plateau_iso", 21, 2.5, 2.5, 0.0, 1.8),
        ("plateau_aniso", 19, 0.4, 2.8, 1.2, 1.3),
        ("plateau_aniso", 7, 1.5, 0.6, -1.9, 1.95),
    ]
    for i, (kind, size, sx, sy, theta, beta) in enumerate(params):
        name = f"{kind}_{i}"
        tensors[name] = torch.from_numpy(kernel(kind, size, sx, sy, theta, beta))
        cases.append({"name": name, "kind": kind, "size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta, "beta": beta})
    for i, (cutoff, size, pad_to) in enumerate([(math.pi / 3, 7, 21), (2.1, 13, 21), (math.pi / 5, 21, 21), (math.pi, 9, 0)]):
        name = f"sinc_{i}"
        tensors[name] = torch.from_numpy(circular_lowpass(cutoff, size, pad_to))
        cases.append({"name": name, "kind": "sinc", "size": size, "cutoff": cutoff, "pad_to": pad_to})
    return tensors, cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, cases = interpolate_fixtures()
    save_file(tensors, OUT / "interpolate.safetensors", metadata={"cases": json.dumps(cases)})
    tensors, cases = kernel_fixtures()
    save_file(tensors, OUT / "kernels.safetensors", metadata={"cases": json.dumps(cases)})
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    main()
