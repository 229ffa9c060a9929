"""Fixtures for sana-sr's cost count (`crates/model/src/cost`, `sana-sr inspect`): parameters and MACs of the
reference modules as PyTorch's `torch.utils.flop_counter.FlopCounterMode` counts them (MACs = FLOPs / 2).

Every module is built and run on the meta device: shapes only, nothing allocated, nothing computed, so the
real configs cost a fraction of a second. The cases:
  - dc-ae-f32c32-sana-1.0 (diffusers `AutoencoderDC`): encode at 512² and 1024², decode of a 16² and a 32²
    latent: SANA-SR's 128→512 and 256→1024 upscales;
  - Sana 600M and 1600M 1024px (diffusers `SanaTransformer2DModel`) on a 16² and a 32² latent with 300 caption
    tokens (SANA's text length), timestep batch of 1;
  - the tiny DC-AE and DiT configs of the parity fixtures (every branch: pixel (un)shuffle, batch norms,
    empty first stages, the quadratic attention on tiny maps, patch 2, q/k norms, guidance embeddings);
  - Real-ESRGAN x4plus (RRDBNet) and realesr-general-x4v3 (SRVGGNetCompact) on a 128² LR image (the
    architectures of make_esrgan_fixtures.py);
  - Gemma-2 (transformers `Gemma2Model`, eager attention), SANA's text encoder: gemma-2-2b-it on one prompt of
    300 tokens, and the tiny configs of make_gemma2_fixtures.py on 10.

Writes crates/model/tests/fixtures/cost/cost_fixtures.json: per case the config, the input, the total
parameters and MACs, and per module (the network's own module names, e.g. `down_blocks.1.0`,
`transformer_blocks.3`, `body.7`) the MACs counted inside it and its parameters.

Run from the repository root: .venv/bin/python tools/reference/make_cost_fixtures.py
"""

import json
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderDC, SanaTransformer2DModel
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "crates/model/tests/fixtures/cost"
sys.path.insert(0, str(HERE))
from make_dc_ae_fixtures import CONFIGS as DC_AE_TINY, SANA_F32C32  # noqa: E402
from make_esrgan_fixtures import RRDBNet, SRVGGNetCompact  # noqa: E402
from make_gemma2_fixtures import REAL_CONFIG as GEMMA2_REAL, TINY as GEMMA2_TINY  # noqa: E402
from make_sana_transformer_fixtures import REAL_COMMON, TINY as DIT_TINY  # noqa: E402

CAPTION_TOKENS = 300
SANA_600M = dict(REAL_COMMON, num_attention_heads=36, num_layers=28, num_cross_attention_heads=16,
                 cross_attention_head_dim=72, cross_attention_dim=1152)
SANA_1600M = dict(REAL_COMMON, num_attention_heads=70, num_layers=20, num_cross_attention_heads=20,
                  cross_attention_head_dim=112, cross_attention_dim=2240)


def counted(run, modules):
    """MACs of `run()` in total and per module path (the root's class name dropped)."""
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    per_module = {}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".", 1)
        if len(parts) == 2 and parts[1] in modules:
            per_module[parts[1]] = sum(ops.values()) // 2
    return counter.get_total_flops() // 2, per_module


def param_counts(model, prefix, modules):
    """Parameters of `model` in total and inside each module path (relative to `prefix`)."""
    named = [(n[len(prefix):], p.numel()) for n, p in model.named_parameters() if n.startswith(prefix)]
    per_module = {m: sum(c for n, c in named if n.startswith(m + ".")) for m in modules}
    return sum(c for _, c in named), per_module


def dc_ae_modules(model, side):
    """`conv_in`, every stage block (`down_blocks.i.j` / `up_blocks.i.j`), `norm_out`, `conv_out`."""
    net = getattr(model, side)
    stages = "down_blocks" if side == "encoder" else "up_blocks"
    names = ["conv_in", "conv_out"] + (["norm_out"] if side == "decoder" else [])
    for i, stage in enumerate(getattr(net, stages)):
        names += [f"{stages}.{i}.{j}" for j in range(len(stage))]
    return names


def dc_ae_case(name, config, op, size):
    with torch.device("meta"):
        model = AutoencoderDC(**config).eval()
        side = "encoder" if op == "encode" else "decoder"
        modules = dc_ae_modules(model, side)
        if op == "encode":
            x = torch.empty(1, model.config.in_channels, *size)
            run = lambda: model.encode(x)  # noqa: E731
        else:
            x = torch.empty(1, model.config.latent_channels, *size)
            run = lambda: model.decode(x)  # noqa: E731
        macs, macs_per = counted(run, modules)
    params, params_per = param_counts(model, side + ".", modules)
    return dict(name=name, network="dc_ae", op=op, config=dict(model.config), input=list(size), params=params,
                macs=macs, modules={m: dict(params=params_per[m], macs=macs_per.get(m, 0)) for m in modules})


def dit_case(name, config, latent, caption_tokens):
    with torch.device("meta"):
        model = SanaTransformer2DModel(**config).eval()
        c = model.config
        modules = ["patch_embed", "time_embed", "caption_projection", "caption_norm", "proj_out"]
        modules += [f"transformer_blocks.{i}" for i in range(c.num_layers)]
        x = torch.empty(1, c.in_channels, *latent)
        text = torch.empty(1, caption_tokens, c.caption_channels)
        mask = torch.ones(1, caption_tokens)
        t = torch.empty(1)
        guidance = torch.empty(1) if c.guidance_embeds else None
        run = lambda: model(x, text, t, guidance=guidance, encoder_attention_mask=mask)  # noqa: E731
        macs, macs_per = counted(run, modules)
    params, params_per = param_counts(model, "", modules)
    return dict(name=name, network="sana_transformer", config=dict(model.config), input=list(latent),
                caption_tokens=caption_tokens, params=params, macs=macs,
                modules={m: dict(params=params_per[m], macs=macs_per.get(m, 0)) for m in modules})


def esrgan_case(name, architecture, kwargs, size):
    with torch.device("meta"):
        model = (RRDBNet if architecture == "rrdbnet" else SRVGGNetCompact)(**kwargs).eval()
        if architecture == "rrdbnet":
            modules = ["conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
            modules += [f"body.{i}" for i in range(kwargs["num_block"])]
        else:
            modules = [f"body.{i}" for i in range(len(model.body))]
        x = torch.empty(1, kwargs["num_in_ch"], *size)
        macs, macs_per = counted(lambda: model(x), modules)
    params, params_per = param_counts(model, "", modules)
    return dict(name=name, network="esrgan", config=dict(architecture=architecture, **kwargs), input=list(size),
                params=params, macs=macs,
                modules={m: dict(params=params_per[m], macs=macs_per.get(m, 0)) for m in modules})


def gemma2_case(name, config, tokens):
    from transformers import Gemma2Config, Gemma2Model

    with torch.device("meta"):
        model = Gemma2Model(Gemma2Config(**config)).eval()
        model.config._attn_implementation = "eager"  # the reference of soft-capping; SDPA would count the same
        modules = ["embed_tokens", "norm"] + [f"layers.{i}" for i in range(model.config.num_hidden_layers)]
        ids = torch.zeros(1, tokens, dtype=torch.long)
        mask = torch.ones(1, tokens, dtype=torch.long)
        macs, macs_per = counted(lambda: model(input_ids=ids, attention_mask=mask), modules)
    params, params_per = param_counts(model, "", modules)
    return dict(name=name, network="gemma2", config=config, input=[tokens, 1], params=params, macs=macs,
                modules={m: dict(params=params_per[m], macs=macs_per.get(m, 0)) for m in modules})


def main():
    cases = []
    for side, sizes in (("encode", [(512, 512), (1024, 1024)]), ("decode", [(16, 16), (32, 32)])):
        for size in sizes:
            cases.append(dc_ae_case(f"dc-ae-f32c32 {side} {size[0]}", SANA_F32C32, side, size))
    for label, config in (("sana-600m", SANA_600M), ("sana-1600m", SANA_1600M)):
        for side in (16, 32):
            cases.append(dit_case(f"{label} latent {side}", config, (side, side), CAPTION_TOKENS))
    for name, spec in DC_AE_TINY.items():
        cases.append(dc_ae_case(f"tiny dc-ae {name} encode", spec["config"], "encode", spec["image_size"]))
        f = 2 ** (len(spec["config"]["encoder_block_out_channels"]) - 1)
        latent = tuple(s // f for s in spec["image_size"])
        cases.append(dc_ae_case(f"tiny dc-ae {name} decode", spec["config"], "decode", latent))
    for name, spec in DIT_TINY.items():
        cases.append(dit_case(f"tiny dit {name}", spec["config"], spec["latent"], 8))
    x4plus = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    general = dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    cases.append(esrgan_case("realesrgan-x4plus 128", "rrdbnet", x4plus, (128, 128)))
    cases.append(esrgan_case("realesr-general-x4v3 128", "srvggnet_compact", general, (128, 128)))
    cases.append(gemma2_case("gemma-2-2b-it 300 tokens", GEMMA2_REAL, CAPTION_TOKENS))
    for name, spec in GEMMA2_TINY.items():
        cases.append(gemma2_case(f"tiny gemma-2 {name}", spec["config"], 10))

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "cost_fixtures.json"
    path.write_text(json.dumps(dict(torch=torch.__version__, cases=cases), indent=1) + "\n")
    for c in cases:
        print(f"{c['name']:32s} {c['params'] / 1e6:10.3f} M params {c['macs'] / 1e9:10.3f} G MACs")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
