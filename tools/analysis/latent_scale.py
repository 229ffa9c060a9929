"""Deviation of a SANA-SR model's DC-AE latents on HR photos: what its `scaling_factor` should divide by, so that
the latent a flow-matching DiT learns has about unit deviation (configs/linearsr-cpu.model.json takes 0.27 from
sana-sr-compact's 3.67). Encodes one seeded 256x256 crop of each of the first N photos of a pool with diffusers'
AutoencoderDC built from the model file's config and `vae.` weights (tools/reference/requirements.txt).

    .venv/bin/python tools/analysis/latent_scale.py crates/pipeline/models/sana-sr-compact.safetensors data/hr_pool [N]
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderDC
from PIL import Image
from safetensors import safe_open

CROP = 256


def autoencoder(model_file: str) -> AutoencoderDC:
    with safe_open(model_file, "pt") as f:
        config = json.loads(f.metadata()["sana_sr_config"])["vae"]
        weights = {k.removeprefix("vae."): f.get_tensor(k).float() for k in f.keys() if k.startswith("vae.")}
    ae = AutoencoderDC(**{k: v for k, v in config.items() if not k.startswith("_")})
    ae.load_state_dict(weights, strict=True)
    return ae.eval()


def main() -> None:
    model_file, pool = sys.argv[1], Path(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    torch.set_num_threads(2)
    ae = autoencoder(model_file)
    rng = np.random.default_rng(0)
    latents = []
    for path in sorted(pool.glob("*.png"))[:count]:
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        y, x = rng.integers(0, image.shape[0] - CROP), rng.integers(0, image.shape[1] - CROP)
        crop = torch.from_numpy(image[y : y + CROP, x : x + CROP].copy()).permute(2, 0, 1)[None] * 2 - 1
        with torch.no_grad():
            latents.append(ae.encode(crop).latent)
    z = torch.cat(latents)
    print(f"{len(latents)} crops: latent deviation {z.std().item():.3f}, mean {z.mean().item():.3f}; "
          f"scaling_factor about {1 / z.std().item():.3f}")


if __name__ == "__main__":
    main()
