"""Fixtures for the Rust DC-AE (`crates/model/src/autoencoders`), made with diffusers' `AutoencoderDC`.

For each tiny random config below this writes `crates/model/tests/fixtures/dc_ae/<name>/`:
  config.json + diffusion_pytorch_model.safetensors  the model, exactly as diffusers' `save_pretrained` writes it
  io.safetensors             `image` (input, NCHW in [-1, 1]), `latent` (`encode(image).latent`, unscaled) and
                             `reconstruction` (`decode(latent).sample`)
  intermediates.safetensors  the output of every sub-module of interest, keyed by its diffusers module path
                             (`encoder.conv_in`, `encoder.down_blocks.1.0`, `...1.0.attn`, `decoder.norm_out`, ...)
                             from the same two calls; hooked, so diffusers' own forward is what is recorded.
Together the configs exercise every block type and option of `AutoencoderDC` (listed per config below).

It also writes `real_configs.json`: for dc-ae-f32c32-sana-1.0 and -1.1, the full config, the parameter count and
the sorted (name, shape) list of the state dict, from a model built on the meta device (no download, no memory),
and under "defaults" the config of `AutoencoderDC()`.

Run: .venv/bin/python tools/reference/make_dc_ae_fixtures.py  (CPU, float32, deterministic.)
"""

import json
import re
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderDC
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[2] / "crates/model/tests/fixtures/dc_ae"

# Every option of AutoencoderDC appears in at least one of these:
# - "unshuffle": pixel_unshuffle down / pixel_shuffle up blocks, ResBlock + EfficientViT stages, multi-scale
#   attention with two kernel sizes (3, 5), per-stage decoder norms (batch_norm on a ResBlock and on an
#   EfficientViT block's attention) and act fns, both shortcuts, non-default conv act, linear attention.
# - "lpb0_conv": layers_per_block[0] == 0 (conv_in / conv_out are a stride-2 conv DCDownBlock2d and an
#   interpolate-nearest DCUpBlock2d), conv down / interpolate up blocks, block types and decoder norm / act fn
#   given as single strings, batch_norm everywhere in the decoder, no shortcuts, and a deepest stage small
#   enough (H*W <= attention_head_dim) for the quadratic attention branch beside linear attention above it.
# - "lpb0_unshuffle": layers_per_block[0] == 0 with pixel_unshuffle conv_in / pixel_shuffle conv_out, only
#   EfficientViT blocks, a scale list (3,) and one with three kernel sizes, two stages only.
CONFIGS = {
    "unshuffle": dict(
        image_size=(12, 20),
        seed=1,
        config=dict(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=4,
            encoder_block_types=["ResBlock", "EfficientViTBlock", "EfficientViTBlock"],
            decoder_block_types=["ResBlock", "EfficientViTBlock", "EfficientViTBlock"],
            encoder_block_out_channels=[4, 8, 16],
            decoder_block_out_channels=[4, 8, 16],
            encoder_layers_per_block=[1, 1, 2],
            decoder_layers_per_block=[2, 1, 1],
            encoder_qkv_multiscales=[[], [3, 5], [5]],
            decoder_qkv_multiscales=[[], [5], [3, 5]],
            downsample_block_type="pixel_unshuffle",
            upsample_block_type="pixel_shuffle",
            decoder_norm_types=["batch_norm", "rms_norm", "batch_norm"],
            decoder_act_fns=["relu", "silu", "gelu"],
            encoder_out_shortcut=True,
            decoder_in_shortcut=True,
            decoder_conv_act_fn="silu",
            scaling_factor=0.5,
        ),
    ),
    "lpb0_conv": dict(
        image_size=(16, 24),
        seed=2,
        config=dict(
            in_channels=3,
            latent_channels=8,
            attention_head_dim=8,
            encoder_block_types=["ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock"],
            decoder_block_types="ResBlock",
            encoder_block_out_channels=[4, 8, 8, 16],
            decoder_block_out_channels=[4, 8, 16, 16],
            encoder_layers_per_block=[0, 1, 1, 1],
            decoder_layers_per_block=[0, 1, 1, 1],
            encoder_qkv_multiscales=[[], [], [3], [5]],
            decoder_qkv_multiscales=[[], [], [], []],
            downsample_block_type="conv",
            upsample_block_type="interpolate",
            decoder_norm_types="batch_norm",
            decoder_act_fns="mish",
            encoder_out_shortcut=False,
            decoder_in_shortcut=False,
            decoder_conv_act_fn="relu",
            scaling_factor=1.0,
        ),
    ),
    "lpb0_unshuffle": dict(
        image_size=(10, 14),
        seed=3,
        config=dict(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=4,
            encoder_block_types="EfficientViTBlock",
            decoder_block_types=["ResBlock", "EfficientViTBlock"],
            encoder_block_out_channels=[4, 8],
            decoder_block_out_channels=[4, 8],
            encoder_layers_per_block=[0, 2],
            decoder_layers_per_block=[0, 2],
            encoder_qkv_multiscales=[[], [3]],
            decoder_qkv_multiscales=[[], [3, 5, 7]],
            downsample_block_type="pixel_unshuffle",
            upsample_block_type="pixel_shuffle",
            decoder_norm_types=["rms_norm", "rms_norm"],
            decoder_act_fns=["silu", "silu"],
            encoder_out_shortcut=True,
            decoder_in_shortcut=True,
            decoder_conv_act_fn="relu",
            scaling_factor=0.41407,
        ),
    ),
}

# lpb0_conv's quadratic branch: its 16x24 images reach the last encoder stage at 16x24 / 8 = 2x3 = 6 pixels,
# not more than attention_head_dim 8 (SanaMultiscaleAttnProcessor2_0 takes the linear form only above it);
# its third stage runs at 4x6 = 24 pixels, linear.

# Modules whose outputs are recorded: top-level convs / norms of encoder and decoder, every block of every
# stage, and the two halves (attention, GLUMBConv) of every EfficientViT block.
RECORDED = re.compile(
    r"^(encoder|decoder)\.(conv_in|conv_out|norm_out|conv_act)$"
    r"|^(encoder\.down_blocks|decoder\.up_blocks)\.\d+\.\d+(\.attn|\.conv_out)?$"
)

# dc-ae-f32c32-sana-1.0, from diffusers' scripts/convert_dcae_to_diffusers.py (`get_ae_config`). The
# efficientvit configs that SANA ships (NVlabs/Sana diffusion/model/dc_ae/efficientvit/models/efficientvit/dc_ae.py,
# `dc_ae_f32c32`) give "dc-ae-f32c32-sana-1.0" and "dc-ae-f32c32-sana-1.1" one and the same architecture and
# scaling_factor 0.41407; 1.1 only retrains the decoder (efficientvit assets/docs/dc_ae_sana_1.1.md).
SANA_F32C32 = dict(
    latent_channels=32,
    encoder_block_types=["ResBlock"] * 3 + ["EfficientViTBlock"] * 3,
    decoder_block_types=["ResBlock"] * 3 + ["EfficientViTBlock"] * 3,
    encoder_block_out_channels=[128, 256, 512, 512, 1024, 1024],
    decoder_block_out_channels=[128, 256, 512, 512, 1024, 1024],
    encoder_qkv_multiscales=[[], [], [], [5], [5], [5]],
    decoder_qkv_multiscales=[[], [], [], [5], [5], [5]],
    encoder_layers_per_block=[2, 2, 2, 3, 3, 3],
    decoder_layers_per_block=[3, 3, 3, 3, 3, 3],
    downsample_block_type="conv",
    upsample_block_type="interpolate",
    decoder_norm_types="rms_norm",
    decoder_act_fns="silu",
    scaling_factor=0.41407,
)
REAL_CONFIGS = {"dc-ae-f32c32-sana-1.0": SANA_F32C32, "dc-ae-f32c32-sana-1.1": SANA_F32C32}


def randomise_norms(model: AutoencoderDC, gen: torch.Generator) -> None:
    """Moves every norm away from identity so that a wrong or skipped norm shows in the outputs."""

    def noise(t, scale):
        return torch.randn(t.shape, generator=gen) * scale

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(1 + noise(module.weight, 0.2))
                module.bias.copy_(noise(module.bias, 0.1))
                module.running_mean.copy_(noise(module.running_mean, 0.2))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
                module.num_batches_tracked.fill_(7)
            elif type(module).__name__ == "RMSNorm":
                module.weight.copy_(1 + noise(module.weight, 0.2))
                if module.bias is not None:
                    module.bias.copy_(noise(module.bias, 0.1))
        # Convolutions and linears keep torch's default (seeded) init; the few biases that start at zero do not
        # exist here (every AutoencoderDC conv bias is initialised uniformly by torch).


def record(model: AutoencoderDC, image: torch.Tensor):
    outputs = {}

    def hook(name):
        def store(module, args, output):
            # The decoder's norm_out runs on channels-last activations; store it as NCHW like the rest.
            outputs[name] = (output.movedim(-1, 1) if name == "decoder.norm_out" else output).detach().clone()

        return store

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if RECORDED.match(n)]
    with torch.no_grad():
        latent = model.encode(image).latent
        reconstruction = model.decode(latent).sample
    for h in handles:
        h.remove()
    return latent, reconstruction, outputs


def make_fixture(name: str, spec: dict) -> None:
    torch.manual_seed(spec["seed"])
    model = AutoencoderDC(**spec["config"]).eval()
    gen = torch.Generator().manual_seed(spec["seed"] + 100)
    randomise_norms(model, gen)
    h, w = spec["image_size"]
    image = torch.rand(2, spec["config"]["in_channels"], h, w, generator=gen) * 2 - 1
    latent, reconstruction, outputs = record(model, image)

    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(folder)
    io = {"image": image, "latent": latent, "reconstruction": reconstruction}
    save_file({k: v.contiguous() for k, v in io.items()}, folder / "io.safetensors")
    save_file({k: v.contiguous() for k, v in outputs.items()}, folder / "intermediates.safetensors")
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params} parameters, image {tuple(image.shape)} -> latent {tuple(latent.shape)}, "
          f"{len(outputs)} recorded modules, max |reconstruction| {reconstruction.abs().max():.3f}")


def full_config(model: AutoencoderDC) -> dict:
    """The config as `save_pretrained` writes it, less diffusers' private keys (`_use_default_values`, ...)."""
    return json.loads(json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")}))


def describe_real(config: dict) -> dict:
    with torch.device("meta"):
        model = AutoencoderDC(**config)
    tensors = sorted((k, list(v.shape)) for k, v in model.state_dict().items())
    return {
        "config": full_config(model),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "tensors": tensors,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in CONFIGS.items():
        make_fixture(name, spec)
    real = {name: describe_real(cfg) for name, cfg in REAL_CONFIGS.items()}
    for name, r in real.items():
        print(f"{name}: {r['num_parameters']} parameters in {len(r['tensors'])} tensors")
    with torch.device("meta"):
        real["defaults"] = {"config": full_config(AutoencoderDC())}
    (OUT / "real_configs.json").write_text(json.dumps(real, indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"fixtures: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
