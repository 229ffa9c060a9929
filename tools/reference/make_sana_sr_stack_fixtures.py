"""Fixtures for `sana-sr models assemble`: a SANA-SR model built from a diffusers Sana pipeline folder and a PEFT
LoRA file, checked end to end against a Python forward pass of SANA-SR's one step.

Under crates/pipeline/tests/fixtures/sana_sr_stack/ it writes:
  - pipeline/: a tiny random `SanaPipeline` saved with `save_pretrained`, laid out as the released SANA folders
    are: transformer/ (SanaTransformer2DModel, float32), vae/ (AutoencoderDC, 4x compression here), text_encoder/
    (Gemma2Model in bfloat16, as released), tokenizer/ (the tiny Gemma tokenizer of the Gemma-2 fixtures) and
    scheduler/ (DPMSolverMultistepScheduler with flow sigmas and flow_shift 3, SANA 1024px's).
  - lora/: a PEFT adapter on that transformer as SANA-SR's training code makes one (`get_peft_model` with
    target_modules to_q/to_k/to_v/to_out.0, then `save_pretrained`): adapter_model.safetensors and
    adapter_config.json; rank 4 and alpha 8 (SANA-SR uses 64/64, scale 1: a scale of 2 here shows whether alpha
    is read), its B factors random so that the update is not zero.
  - lr.png: a 16x12 RGB input.
  - reference.safetensors + reference.json: the 4x output in [0, 1] (float32, before 8-bit rounding) of SANA-SR's
    forward on lr.png, the pipeline loaded in float32 with the adapter (PEFT, unmerged): the LR image resized
    bicubically (a = -0.75, as its data pipeline's cv2.INTER_CUBIC) to the output size in [-1, 1], encoded and
    scaled, one Euler step from it at the scheduler's timestep index 900 of 1000 (`set_timesteps(1000)`, the
    DiT seeing the integer timestep, the step using the float32 sigma), decoded and clamped. Cases: `tagged`
    (tags + the quality suffix), `untagged` (the suffix alone) and `guided` (tagged, classifier-free guidance
    2.5 against the empty prompt).
  - schedulers.json: (timestep, sigma) at several indices after `set_timesteps(1000)` for the two scheduler
    classes SANA pipelines ship with, at several shifts, with each scheduler's saved config.

Run from the repository root: .venv/bin/python tools/reference/make_sana_sr_stack_fixtures.py
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderDC,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    SanaPipeline,
    SanaTransformer2DModel,
)
from peft import LoraConfig, PeftModel, get_peft_model
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_gemma2_fixtures import OUT as GEMMA2_FIXTURES  # noqa: E402
from make_gemma2_fixtures import encoder as gemma2_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/pipeline/tests/fixtures/sana_sr_stack"

SUFFIX = "clean, extremely detailed, best quality, sharp, high-resolution"
TAGS = "building, sign, text"
MAX_LENGTH = 300  # SANA-SR's prompt length
INDEX, STEPS = 900, 1000  # SANA-SR's gen_timestep, of set_timesteps(num_train_timesteps)
GUIDANCE = 2.5
LR_SIZE = (12, 16)  # height, width
SCALE = 4

VAE = dict(
    in_channels=3, latent_channels=8, attention_head_dim=4,
    encoder_block_types=["ResBlock", "ResBlock", "EfficientViTBlock"],
    decoder_block_types=["ResBlock", "ResBlock", "EfficientViTBlock"],
    encoder_block_out_channels=[8, 8, 16], decoder_block_out_channels=[8, 8, 16],
    encoder_layers_per_block=[1, 1, 1], decoder_layers_per_block=[1, 1, 1],
    encoder_qkv_multiscales=[[], [], [5]], decoder_qkv_multiscales=[[], [], [5]],
    downsample_block_type="pixel_unshuffle", upsample_block_type="interpolate",
    decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
)
TRANSFORMER = dict(
    in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, num_layers=2,
    num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=32,
    mlp_ratio=2.5, attention_bias=False, sample_size=4, patch_size=1, norm_elementwise_affine=False, norm_eps=1e-6,
    interpolation_scale=None,
)
SCHEDULER = dict(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction", algorithm_type="dpmsolver++")
LORA = dict(r=4, lora_alpha=8, target_modules=["to_q", "to_k", "to_v", "to_out.0"], lora_dropout=0.0)


def randomise(model, gen):
    """Every parameter away from its identity/zero init (norm scales near 1, the AdaLN table and biases small,
    weights of unit-scale activations), so that a wrong wiring cannot go unnoticed."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias") or "scale_shift_table" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def write_pipeline(gen):
    text_encoder, _ = gemma2_encoder("sliding_gqa", gen)
    tokenizer = AutoTokenizer.from_pretrained(GEMMA2_FIXTURES / "tokenizer")
    tokenizer.padding_side = "right"
    transformer = SanaTransformer2DModel(**TRANSFORMER).eval()
    randomise(transformer, gen)
    vae = AutoencoderDC(**VAE).eval()
    randomise(vae, gen)
    scheduler = DPMSolverMultistepScheduler(**SCHEDULER)
    pipe = SanaPipeline(tokenizer, text_encoder.to(torch.bfloat16), vae, transformer, scheduler)
    pipe.save_pretrained(OUT / "pipeline")


def write_lora(gen):
    transformer = SanaTransformer2DModel.from_pretrained(OUT / "pipeline/transformer")
    peft = get_peft_model(transformer, LoraConfig(**LORA))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
    peft.save_pretrained(OUT / "lora")
    (OUT / "lora/README.md").unlink()  # PEFT's model card template: nothing of the adapter
    count = sum(1 for name, _ in peft.named_parameters() if "lora_A" in name)
    print(f"lora: {count} adapted layers")


def write_lr(gen):
    # Smooth structure plus noise: a photo's spread of values, not one flat level.
    h, w = LR_SIZE
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, 1 - x * y]) * 200 + 20
    image = (base + 30 * torch.randn((3, h, w), generator=gen)).clamp(0, 255).round().to(torch.uint8)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(OUT / "lr.png")


def sana_sr_forward(pipe, transformer, lr01, prompt, guidance=1.0):
    """SANA-SR's one step on an LR batch in [0, 1]: its `encode`, `generate_fake_latent` and `decode`."""
    h, w = lr01.shape[-2:]
    image = F.interpolate(lr01, size=(h * SCALE, w * SCALE), mode="bicubic", align_corners=False).clamp(0, 1)
    scaling = pipe.vae.config.scaling_factor
    z_lq = pipe.vae.encode(image * 2 - 1).latent * scaling
    pipe.scheduler.set_timesteps(STEPS)
    t = pipe.scheduler.timesteps[INDEX].float().expand(1) * transformer.config.timestep_scale
    sigma = pipe.scheduler.sigmas[INDEX]

    def velocity(text):
        tokens = pipe.tokenizer(
            [text], padding="max_length", max_length=MAX_LENGTH, truncation=True, add_special_tokens=True,
            return_tensors="pt",
        )
        embeds = pipe.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0]
        return transformer(
            hidden_states=z_lq, timestep=t, encoder_hidden_states=embeds,
            encoder_attention_mask=tokens.attention_mask,
        ).sample

    v = velocity(prompt)
    if guidance > 1:
        empty = velocity("")
        v = empty + guidance * (v - empty)
    z = z_lq - sigma * v
    return (pipe.vae.decode(z / scaling).sample.clamp(-1, 1) + 1) / 2


def write_reference():
    pipe = SanaPipeline.from_pretrained(OUT / "pipeline", torch_dtype=torch.float32)
    transformer = PeftModel.from_pretrained(pipe.transformer, OUT / "lora").eval()
    lr = torch.from_numpy(np.array(Image.open(OUT / "lr.png").convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    cases = {
        "tagged": dict(tags=TAGS, prompt=f"{TAGS}, {SUFFIX}", guidance=1.0),
        "untagged": dict(tags=None, prompt=SUFFIX, guidance=1.0),
        "guided": dict(tags=TAGS, prompt=f"{TAGS}, {SUFFIX}", guidance=GUIDANCE),
    }
    outputs = {}
    with torch.no_grad():
        for name, case in cases.items():
            outputs[name] = sana_sr_forward(pipe, transformer, lr, case["prompt"], case["guidance"]).contiguous()
    save_file(outputs, OUT / "reference.safetensors")
    pipe.scheduler.set_timesteps(STEPS)
    meta = dict(
        suffix=SUFFIX, max_length=MAX_LENGTH, index=INDEX, steps=STEPS,
        timestep=int(pipe.scheduler.timesteps[INDEX]), sigma=float(pipe.scheduler.sigmas[INDEX]), cases=cases,
    )
    with open(OUT / "reference.json", "w") as f:
        json.dump(meta, f, indent=1)
    print(f"reference: timestep {meta['timestep']}, sigma {meta['sigma']:.6f}, output {list(outputs['tagged'].shape)}")


def write_schedulers():
    schedulers = [DPMSolverMultistepScheduler(**dict(SCHEDULER, flow_shift=s)) for s in (1.0, 3.0, 4.5)]
    schedulers += [FlowMatchEulerDiscreteScheduler(shift=s) for s in (1.0, 3.0)]
    cases = []
    for scheduler in schedulers:
        scheduler.set_timesteps(STEPS)
        points = [[i, float(scheduler.timesteps[i]), float(scheduler.sigmas[i])] for i in (0, 1, 450, 899, 900, 999)]
        cases.append({"config": json.loads(scheduler.to_json_string()), "steps": STEPS, "points": points})
    with open(OUT / "schedulers.json", "w") as f:
        json.dump(cases, f, indent=1)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    gen = torch.Generator().manual_seed(20261202)
    write_pipeline(gen)
    write_lora(gen)
    write_lr(gen)
    write_reference()
    write_schedulers()


if __name__ == "__main__":
    main()
