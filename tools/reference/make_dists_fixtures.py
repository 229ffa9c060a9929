"""Weights, images and reference distances for the DISTS parity test (crates/metrics/tests/dists.rs).

The reference is the PyPI package `DISTS_pytorch` 0.1 (Ding et al. 2020, `DISTS_pytorch/DISTS_pt.py`). Its VGG16
trunk is torchvision's ImageNet download, which is not available here, so the trunk is *random* (torchvision's own
VGG16 initialisation, seeded, plus random biases so that they are exercised too); `alpha`/`beta` are the learned
ones shipped inside the DISTS_pytorch wheel (`weights.pt`). The distances therefore mean nothing perceptually: they
only prove that the Rust computation matches the reference given the same weights.

Every weight is rounded to float16 (the file is saved in f16) and the reference distances are computed with those
rounded weights cast back to f32, which is exactly what Rust gets when it loads the file.

The f16 trunk is ~29 MB, too big to commit, so this writes to a folder outside the repository (default
/tmp/dists_fixture) and the Rust test reads it only when SANA_SR_DISTS_FIXTURE points at that folder:
  weights.safetensors  the model's `state_dict()` in f16 (keys as `DISTS_pytorch.DISTS().state_dict()`)
  images.safetensors   image pairs `<name>.a` / `<name>.b`, [1, 3, H, W] f32 in [0, 1]
  reference.json       {"<name>": distance} from `model(a, b)`

Run: .venv/bin/python tools/reference/make_dists_fixtures.py [OUT_DIR]   (needs DISTS_pytorch and torchvision, see
requirements.txt), then SANA_SR_DISTS_FIXTURE=OUT_DIR cargo test -p sana-sr-metrics --test dists -- --nocapture
"""

import json
import pathlib
import sys

import torch
import torchvision
from safetensors.torch import save_file

OUT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dists_fixture")
# (name, height, width): odd sizes exercise the padding of the stride-2 L2 pooling.
PAIRS = [("square_64", 64, 64), ("wide_48x80", 48, 80), ("odd_37x29", 37, 29)]


UNTRAINED_VGG16 = torchvision.models.vgg16


def random_vgg16(pretrained):
    """Stands in for `torchvision.models.vgg16(pretrained=True)`, which would download the ImageNet weights."""
    del pretrained
    return UNTRAINED_VGG16(weights=None)


def smooth_image(generator, height, width):
    """A random image with some spatial structure (a bilinear upsampling of coarse noise), in [0, 1]."""
    coarse = torch.rand(1, 3, height // 8 + 2, width // 8 + 2, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def main():
    torchvision.models.vgg16 = random_vgg16
    from DISTS_pytorch import DISTS  # after the patch: DISTS_pt looks up `models.vgg16` when it builds the model

    torch.manual_seed(0)
    model = DISTS().eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.normal_(0.0, 0.05)
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())

    OUT.mkdir(parents=True, exist_ok=True)
    state = {key: value.half().contiguous() for key, value in model.state_dict().items()}
    save_file(state, OUT / "weights.safetensors")

    generator = torch.Generator().manual_seed(1)
    images, reference = {}, {}
    for name, height, width in PAIRS:
        a = smooth_image(generator, height, width)
        b = (a + 0.15 * torch.randn(a.shape, generator=generator)).clamp(0, 1)
        images[f"{name}.a"], images[f"{name}.b"] = a.contiguous(), b.contiguous()
        reference[name] = model(a, b).item()
    save_file(images, OUT / "images.safetensors")
    (OUT / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(json.dumps(reference, indent=2))


if __name__ == "__main__":
    main()
