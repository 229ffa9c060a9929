"""Loads a depth-pruned SANA-SR model's diffusers folders (written by `sana-sr prune --depth-only --diffusers
DIR`) in diffusers and runs SANA-SR's one step with diffusers' modules: the proof that pruning by whole blocks
leaves networks diffusers builds from their own config.json, and the reference `crates/pipeline/tests/
prune.rs` compares sana-sr's output with.

DIR holds vae/ (AutoencoderDC) and transformer/ (SanaTransformer2DModel), each config.json +
diffusion_pytorch_model.safetensors, sana_sr.json (scale, timestep, lr_skip, ...) and condition.safetensors.
On a seeded random image x in [-1, 1] (whole latent tokens):
    z = vae.encode(x).latent * scaling_factor
    v = transformer(z, condition, timestep * timestep_scale).sample
    out = vae.decode((z - sigma * v) / scaling_factor).sample (+ x when lr_skip), sigma = timestep / 1000
and writes DIR/reference.safetensors: `image` (x) and `output` (out), float32.

The committed fixture was made with (from the repository root):
    sana-sr prune --model crates/pipeline/tests/fixtures/pruned_depth/source.model.json --seed 3 \
        --depth-only --target-macs 65% --input 32 --calibration ../shared/datasets/Set14/HR --pairs 4 --crop 64 \
        --importance removal --half -o /tmp/pruned_depth.safetensors --diffusers crates/pipeline/tests/fixtures/pruned_depth
    .venv/bin/python tools/reference/check_pruned_diffusers.py crates/pipeline/tests/fixtures/pruned_depth
"""

import json
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderDC, SanaTransformer2DModel
from safetensors.torch import load_file, save_file


def main(folder: str) -> None:
    d = Path(folder)
    cfg = json.loads((d / "sana_sr.json").read_text())
    vae = AutoencoderDC.from_pretrained(d / "vae").float().eval()
    dit = SanaTransformer2DModel.from_pretrained(d / "transformer").float().eval()
    condition = load_file(d / "condition.safetensors")["condition"].float()
    per_token = 2 ** (len(vae.config.encoder_block_out_channels) - 1) * dit.config.patch_size
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 6 * per_token, 8 * per_token, generator=generator) * 2 - 1
    sf = vae.config.scaling_factor
    t = torch.tensor([cfg["timestep"] * cfg["transformer"].get("timestep_scale", 1.0)])
    guidance = torch.zeros(1) if dit.config.guidance_embeds else None
    with torch.no_grad():
        z = vae.encode(x).latent * sf
        v = dit(z, condition, t, guidance=guidance).sample
        out = vae.decode((z - cfg["timestep"] / 1000.0 * v) / sf).sample
        if cfg.get("lr_skip"):
            out = out + x
    blocks = lambda c, k: c[k]  # noqa: E731
    print(f"diffusers built {d}: DiT blocks {blocks(dit.config, 'num_layers')}, encoder blocks "
          f"{vae.config.encoder_layers_per_block}, decoder blocks {vae.config.decoder_layers_per_block}")
    save_file({"image": x.contiguous(), "output": out.contiguous()}, d / "reference.safetensors")
    print(f"wrote {d / 'reference.safetensors'}: output {tuple(out.shape)}")


if __name__ == "__main__":
    main(sys.argv[1])
