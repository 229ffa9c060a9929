"""Fixtures for the Rust port of diffusers' `SanaTransformer2DModel` (crates/model/src/transformers).

For a few tiny random configurations this saves, under crates/model/tests/fixtures/sana_transformer/<name>/:
  - config.json + diffusion_pytorch_model.safetensors (diffusers `save_pretrained` layout),
  - inputs.safetensors: hidden_states (NCHW latent), encoder_hidden_states, timestep, encoder_attention_mask
    (1 = keep, 0 = padding; a different number of valid tokens per sample) and guidance where the config has it,
  - outputs.safetensors: the intermediate results the Rust test compares block by block:
      patch_embed        output of `patch_embed` (tokens [B, N, D], positional embedding included if any)
      timestep           modulation vector from `time_embed` ([B, 6D])
      embedded_timestep  the conditioning before the final SiLU + linear ([B, D]), used by `norm_out`
      caption            caption projection followed by `caption_norm` ([B, L, D])
      block_<i>          output of transformer block i ([B, N, D])
      output             the model's output (NCHW).
For the real Sana 600M and 1600M 1024px configurations (built on the meta device: nothing is downloaded nor
allocated), and for the reference's default arguments, it writes real_configs.json: the config, exact parameter count and the sorted (name, shape) list.

Run from the repository root: .venv/bin/python tools/reference/make_sana_transformer_fixtures.py
"""

import json
from pathlib import Path

import torch
from diffusers import SanaTransformer2DModel
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[2] / "crates/model/tests/fixtures/sana_transformer"

BATCH = 2
TEXT_TOKENS = 8
VALID_TOKENS = (6, 3)

# Tiny configurations that together reach every branch of the reference forward. The cross-attention inner
# width (heads x head_dim) and caption_channels differ from the hidden width. `cross_attention_dim` itself must
# equal the hidden width: the caption projection outputs the hidden width and feeds attn2's to_k/to_v.
TINY = {
    # patch 1, no positional embedding (as the real 1024px models), attention bias, affine norm2.
    "p1_plain": dict(
        config=dict(
            in_channels=4, out_channels=6, num_attention_heads=3, attention_head_dim=8, num_layers=3,
            num_cross_attention_heads=4, cross_attention_head_dim=5, cross_attention_dim=24, caption_channels=20,
            mlp_ratio=2.5, attention_bias=True, sample_size=4, patch_size=1, norm_elementwise_affine=True,
            interpolation_scale=None,
        ),
        latent=(5, 7),
        timestep=[917.5, 23.25],
    ),
    # patch 2 on an odd latent (the reference floors, so the output is 6x10), sin-cos positional embedding
    # (the 2K/4K models' `interpolation_scale`), q/k RMS norm (SANA 1.5).
    "p2_qknorm_posembed": dict(
        config=dict(
            in_channels=4, out_channels=None, num_attention_heads=2, attention_head_dim=8, num_layers=2,
            num_cross_attention_heads=3, cross_attention_head_dim=4, cross_attention_dim=16, caption_channels=12,
            mlp_ratio=2.0, attention_bias=False, sample_size=8, patch_size=2, norm_elementwise_affine=False,
            interpolation_scale=1.5, qk_norm="rms_norm_across_heads",
        ),
        latent=(7, 11),
        timestep=[500.0, 1.5],
    ),
    # SANA-Sprint: guidance embedding, q/k norm; timestep_scale / guidance_embeds_scale are pipeline-side.
    "sprint": dict(
        config=dict(
            in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=2,
            num_cross_attention_heads=2, cross_attention_head_dim=6, cross_attention_dim=16, caption_channels=10,
            mlp_ratio=2.5, attention_bias=False, sample_size=4, patch_size=1, norm_elementwise_affine=False,
            interpolation_scale=None, qk_norm="rms_norm_across_heads", guidance_embeds=True,
            guidance_embeds_scale=0.1, timestep_scale=1000.0,
        ),
        latent=(5, 7),
        timestep=[0.83, 0.21],
        guidance=[0.45, 0.3],
    ),
}

# The released 1024px models as converted by diffusers' scripts/convert_sana_to_diffusers.py
# (`model_kwargs["SanaMS_600M_P1_D28"]` / `["SanaMS_1600M_P1_D20"]`, `transformer_kwargs`, interpolation_scale
# None at 1024px).
REAL_COMMON = dict(in_channels=32, out_channels=32, attention_head_dim=32, caption_channels=2304, mlp_ratio=2.5,
                   attention_bias=False, sample_size=32, patch_size=1, norm_elementwise_affine=False, norm_eps=1e-6,
                   interpolation_scale=None)
REAL = {
    "sana_600m_1024px": dict(REAL_COMMON, num_attention_heads=36, num_cross_attention_heads=16,
                             cross_attention_head_dim=72, cross_attention_dim=1152, num_layers=28),
    "sana_1600m_1024px": dict(REAL_COMMON, num_attention_heads=70, num_cross_attention_heads=20,
                              cross_attention_head_dim=112, cross_attention_dim=2240, num_layers=20),
    # No arguments at all: the reference's defaults, which the Rust config's serde defaults must equal.
    "defaults": dict(),
}


def randomise(model: SanaTransformer2DModel, gen: torch.Generator) -> None:
    """Moves every parameter away from its identity/zero init so that a wrong wiring cannot go unnoticed."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif "norm" in name and name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "scale_shift_table" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def capture(model: SanaTransformer2DModel) -> tuple[dict, list]:
    """Forward hooks recording the intermediate results named in the module docstring."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name, pick=lambda out: out):
        return lambda _module, _args, out: seen.__setitem__(name, pick(out).detach().clone())

    handles = [
        model.patch_embed.register_forward_hook(keep("patch_embed")),
        model.time_embed.register_forward_hook(keep("timestep", lambda out: out[0])),
        model.time_embed.register_forward_hook(keep("embedded_timestep", lambda out: out[1])),
        model.caption_norm.register_forward_hook(keep("caption")),
    ]
    for i, block in enumerate(model.transformer_blocks):
        handles.append(block.register_forward_hook(keep(f"block_{i}")))
    return seen, handles


def make_tiny(name: str, spec: dict, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SanaTransformer2DModel(**spec["config"]).eval()
    randomise(model, gen)
    cfg = model.config
    h, w = spec["latent"]
    mask = torch.zeros(BATCH, TEXT_TOKENS)
    for b, valid in enumerate(VALID_TOKENS):
        mask[b, :valid] = 1.0
    inputs = {
        "hidden_states": torch.randn(BATCH, cfg.in_channels, h, w, generator=gen),
        "encoder_hidden_states": torch.randn(BATCH, TEXT_TOKENS, cfg.caption_channels, generator=gen),
        "timestep": torch.tensor(spec["timestep"], dtype=torch.float32),
        "encoder_attention_mask": mask,
    }
    if "guidance" in spec:
        inputs["guidance"] = torch.tensor(spec["guidance"], dtype=torch.float32)

    seen, handles = capture(model)
    with torch.no_grad():
        output = model(
            hidden_states=inputs["hidden_states"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
            timestep=inputs["timestep"],
            guidance=inputs.get("guidance"),
            encoder_attention_mask=inputs["encoder_attention_mask"],
            return_dict=False,
        )[0]
    for handle in handles:
        handle.remove()
    seen["output"] = output

    folder = OUT / name
    model.save_pretrained(folder, safe_serialization=True)
    save_file({k: v.contiguous() for k, v in inputs.items()}, folder / "inputs.safetensors")
    save_file({k: v.contiguous() for k, v in seen.items()}, folder / "outputs.safetensors")
    print(f"{name}: output {tuple(output.shape)}, |output| max {output.abs().max():.3f}")


def describe_real(name: str, kwargs: dict) -> dict:
    with torch.device("meta"):
        model = SanaTransformer2DModel(**kwargs)
    params = sorted((n, list(p.shape)) for n, p in model.named_parameters())
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    count = sum(p.numel() for p in model.parameters())
    print(f"{name}: {count} parameters in {len(params)} tensors")
    return {"config": config, "num_parameters": count, "parameters": params}


def main() -> None:
    torch.use_deterministic_algorithms(True)
    for seed, (name, spec) in enumerate(TINY.items()):
        make_tiny(name, spec, seed)
    real = {name: describe_real(name, kwargs) for name, kwargs in REAL.items()}
    (OUT / "real_configs.json").write_text(json.dumps(real, indent=1) + "\n")


if __name__ == "__main__":
    main()
