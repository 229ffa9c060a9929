"""Fixtures for the LPIPS parity test (crates/metrics/tests/lpips.rs).

The reference is the PyPI package `lpips` 0.1.4 (Zhang et al. 2018), AlexNet trunk, v0.1. Its ImageNet AlexNet
weights come from a torchvision download, which is not available here, so the trunk is *random* (`pnet_rand=True`,
seeded); the `lin` layers are the calibrated ones shipped inside the lpips wheel. The distances therefore mean
nothing perceptually: they only prove that the Rust computation matches the reference given the same weights.

Every weight is rounded to float16 (the file is saved in f16 to stay small) and the reference distances are
computed with those rounded weights cast back to f32, which is exactly what Rust gets when it loads the file.

Writes crates/metrics/tests/fixtures/lpips/:
  random_backbone.safetensors  the model's `state_dict()` in f16 (keys as `lpips.LPIPS(net='alex').state_dict()`)
  images.safetensors           image pairs `<name>.a` / `<name>.b`, [1, 3, H, W] f32 in [0, 1]
  reference.json               {"<name>": distance} from `model(a, b, normalize=True)`

Run: .venv/bin/python tools/reference/make_lpips_fixtures.py   (needs lpips and torchvision, see requirements.txt)
"""

import json
import pathlib
import warnings

import lpips
import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/metrics/tests/fixtures/lpips"
# (name, height, width); LPIPS-Alex needs at least 31 pixels per side.
PAIRS = [("square_64", 64, 64), ("wide_48x80", 48, 80), ("minimal_31", 31, 31)]


def smooth_image(generator, height, width):
    """A random image with some spatial structure (a bilinear upsampling of coarse noise), in [0, 1]."""
    coarse = torch.rand(1, 3, height // 8 + 2, width // 8 + 2, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def main():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation warnings about `pretrained`
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())

    OUT.mkdir(parents=True, exist_ok=True)
    state = {key: value.half().contiguous() for key, value in model.state_dict().items()}
    save_file(state, OUT / "random_backbone.safetensors")

    generator = torch.Generator().manual_seed(1)
    images, reference = {}, {}
    for name, height, width in PAIRS:
        a = smooth_image(generator, height, width)
        b = (a + 0.15 * torch.randn(a.shape, generator=generator)).clamp(0, 1)
        images[f"{name}.a"], images[f"{name}.b"] = a.contiguous(), b.contiguous()
        with torch.no_grad():
            reference[name] = model(a, b, normalize=True).item()
    save_file(images, OUT / "images.safetensors")
    (OUT / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(json.dumps(reference, indent=2))


if __name__ == "__main__":
    main()
