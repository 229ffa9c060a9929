"""Fixtures for the Rust port of transformers' `Gemma2Model` (SANA's text encoder) and of SANA's prompt handling
(crates/model/src/text).

Under crates/model/tests/fixtures/gemma2/ it writes:
  - <name>/ for two tiny random configurations: the transformers `save_pretrained` folder (config.json and
    model.safetensors; `sliding_gqa` sharded with an index, `full_mha_bf16` stored in bfloat16 as the released
    text encoder is), inputs.safetensors (input_ids, attention_mask: right-padded, as SANA pads) and
    outputs.safetensors (hidden_<i>: the input of layer i, i.e. the scaled embedding for i = 0;
    last_hidden_state: after the final norm), computed in float32 by the eager attention (the reference
    for soft-capping, which SDPA cannot do).
  - tokenizer/: a tiny Gemma tokenizer (transformers' `GemmaTokenizer`: byte-fallback BPE, spaces as "▁", <bos>
    added) trained here on tag-like text, saved with `save_pretrained`, and tokens.json: the ids and attention
    masks transformers gives for a list of prompts (unicode, empty, over-long) at a fixed maximum length.
  - prompts.safetensors + prompts.json: prompt embeddings and masks of the `sliding_gqa` encoder with that
    tokenizer, as diffusers' `SanaPipeline.encode_prompt` makes them (lower-cased, with and without the
    complex-human-instruction prefix and its token selection) and as SANA-SR's training code makes them (the
    text as given, padded to the maximum length).
  - real_config.json: the released gemma-2-2b-it config.json as shipped (the legacy layout, `rope_theta` at
    the top), the sorted (name, shape) list and exact parameter count of transformers' `Gemma2Model` for it
    (built on the meta device: nothing is allocated).

Run from the repository root: .venv/bin/python tools/reference/make_gemma2_fixtures.py
"""

import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, Gemma2Config, Gemma2Model, GemmaTokenizer

OUT = Path(__file__).resolve().parents[2] / "crates/model/tests/fixtures/gemma2"

VOCAB = 400
TINY = {
    # Grouped-query attention (4 query heads on 2 key/value heads), head_dim and query_pre_attn_scalar unlike
    # hidden/heads, a 3-token sliding window on layers 0 and 2 (the default alternation), soft-capping at 2 so
    # that tanh bends the logits of these random weights.
    "sliding_gqa": dict(
        config=dict(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=12, query_pre_attn_scalar=20, sliding_window=3,
            attn_logit_softcapping=2.0, rms_norm_eps=1e-6,
        ),
        shard="40KB",
        dtype=torch.float32,
    ),
    # Multi-head attention with biases, no soft-capping, explicit layer types (full first), rope_theta 500.
    "full_mha_bf16": dict(
        config=dict(
            vocab_size=VOCAB, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
            num_key_value_heads=3, head_dim=8, query_pre_attn_scalar=8, sliding_window=2, attention_bias=True,
            attn_logit_softcapping=None, layer_types=["full_attention", "sliding_attention"],
            rope_parameters={"rope_type": "default", "rope_theta": 500.0}, rms_norm_eps=1e-5,
        ),
        shard=None,
        dtype=torch.bfloat16,
    ),
}
SEQ = 10
VALID = (10, 6)

# The released gemma-2-2b-it config.json, as its repository ships it.
REAL_CONFIG = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 30.0,
    "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 2304,
    "initializer_range": 0.02,
    "intermediate_size": 9216,
    "max_position_embeddings": 8192,
    "model_type": "gemma2",
    "num_attention_heads": 8,
    "num_hidden_layers": 26,
    "num_key_value_heads": 4,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "torch_dtype": "float32",
    "transformers_version": "4.42.4",
    "use_cache": True,
    "vocab_size": 256000,
}

CORPUS = [
    "building, sign, text, street, car, tree, sky, cloud, person, dog, cat, flower, grass, water, mountain",
    "clean, extremely detailed, best quality, sharp, high-resolution, natural, high-quality",
    "a photo of a red brick building with a green door and white windows",
    "the quick brown fox jumps over the lazy dog near the river bank",
]
MAX_LENGTH = 16
PROMPTS = [
    "building, sign, text",
    "",
    "  Leading and trailing spaces  ",
    "Mixed CASE Tags, Sky, CLOUD",
    "café, 東京 tower, emoji \U0001f642, tab\there",
    "street, car, tree, sky, cloud, person, dog, cat, flower, grass, water, mountain, river, bank, fox",
]
PROMPT_LENGTH = 12
INSTRUCTION = ["Given a user prompt, generate an enhanced prompt.", "User Prompt: "]


def randomise(model, generator):
    """Weights of unit-scale activations: linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), and the
    RMSNorm weights (zero at init, the norm multiplies by 1 + w) uniform in [-0.5, 0.5]."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.rand(p.shape, generator=generator) - 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
            elif p.dim() == 2 and "embed" not in name:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[1] ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator))


def encoder(name, generator):
    spec = TINY[name]
    config = Gemma2Config(**spec["config"], pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma2Model(config).eval()
    randomise(model, generator)
    return model, spec


def write_encoder(name, generator):
    model, spec = encoder(name, generator)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    model.to(spec["dtype"]).save_pretrained(folder, **kwargs)
    # The reference is the saved folder loaded in float32, as a user would run it.
    model = Gemma2Model.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()

    ids = torch.randint(5, VOCAB, (len(VALID), SEQ), generator=generator)
    ids[:, 0] = 2
    mask = torch.zeros(len(VALID), SEQ, dtype=torch.int64)
    for row, valid in enumerate(VALID):
        mask[row, :valid] = 1
        ids[row, valid:] = 0
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    outputs = {f"hidden_{i}": h.contiguous() for i, h in enumerate(out.hidden_states[:-1])}
    outputs["last_hidden_state"] = out.last_hidden_state.contiguous()
    save_file({"input_ids": ids, "attention_mask": mask}, folder / "inputs.safetensors")
    save_file(outputs, folder / "outputs.safetensors")
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {len(outputs)} outputs")
    return model


def write_tokenizer():
    """A Gemma tokenizer with a vocabulary of its own: the 5 special tokens at Gemma's ids, the 256 byte
    tokens of the fallback, then BPE merges learnt on CORPUS."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials + byte_tokens, show_progress=False)
    bpe.train_from_iterator(CORPUS, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    GemmaTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=True).save_pretrained(OUT / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(OUT / "tokenizer")
    tokenizer.padding_side = "right"  # as SANA sets it
    encoded = tokenizer(PROMPTS, padding="max_length", max_length=MAX_LENGTH, truncation=True, add_special_tokens=True)
    cases = [
        {"text": text, "ids": ids, "mask": mask}
        for text, ids, mask in zip(PROMPTS, encoded["input_ids"], encoded["attention_mask"])
    ]
    with open(OUT / "tokenizer/tokens.json", "w") as f:
        json.dump({"max_length": MAX_LENGTH, "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"tokenizer: {len(tokenizer)} tokens, {len(cases)} prompts")
    return tokenizer


def tiny_pipeline(text_encoder, tokenizer):
    """The pipeline only to call its `encode_prompt`: the transformer and autoencoder are the smallest valid."""
    hidden = text_encoder.config.hidden_size
    transformer = SanaTransformer2DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=4, num_layers=1,
        num_cross_attention_heads=2, cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=hidden,
        sample_size=4, patch_size=1,
    )
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=4, encoder_block_types="ResBlock",
        decoder_block_types="ResBlock", encoder_block_out_channels=(8,), decoder_block_out_channels=(8,),
        encoder_layers_per_block=(1,), decoder_layers_per_block=(1,), encoder_qkv_multiscales=((),),
        decoder_qkv_multiscales=((),), upsample_block_type="interpolate", downsample_block_type="Conv",
        decoder_norm_types="rms_norm", decoder_act_fns="silu",
    )
    return SanaPipeline(tokenizer, text_encoder, vae, transformer, FlowMatchEulerDiscreteScheduler(shift=3.0))


def write_prompts(text_encoder, tokenizer):
    pipe = tiny_pipeline(text_encoder, tokenizer)
    tensors, cases = {}, []

    def add(name, embeds, mask, **how):
        tensors[f"{name}.embeds"] = embeds.float().contiguous()
        tensors[f"{name}.mask"] = mask.to(torch.int64).contiguous()
        cases.append({"name": name, **how})

    with torch.no_grad():
        for name, instruction in (("pipeline", None), ("pipeline_instruction", INSTRUCTION)):
            embeds, mask, _, _ = pipe.encode_prompt(
                PROMPTS, do_classifier_free_guidance=False, max_sequence_length=PROMPT_LENGTH,
                complex_human_instruction=instruction, clean_caption=False, device=torch.device("cpu"),
            )
            add(name, embeds, mask, lowercase=True, instruction=instruction)
        # SANA-SR's training code: no lower-casing, no instruction.
        tokens = tokenizer(
            PROMPTS, padding="max_length", max_length=PROMPT_LENGTH, truncation=True, add_special_tokens=True,
            return_tensors="pt",
        )
        embeds = text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0]
        add("as_given", embeds, tokens.attention_mask, lowercase=False, instruction=None)
    save_file(tensors, OUT / "prompts.safetensors")
    with open(OUT / "prompts.json", "w") as f:
        json.dump({"prompts": PROMPTS, "max_length": PROMPT_LENGTH, "cases": cases}, f, ensure_ascii=False, indent=1)


def write_real_config():
    config = Gemma2Config(**REAL_CONFIG)
    with torch.device("meta"):
        model = Gemma2Model(config)
    parameters = sorted((name, list(p.shape)) for name, p in model.named_parameters())
    count = sum(p.numel() for p in model.parameters())
    with open(OUT / "real_config.json", "w") as f:
        json.dump({"config": REAL_CONFIG, "num_parameters": count, "parameters": parameters}, f, indent=1)
    print(f"gemma-2-2b-it: {count} parameters in {len(parameters)} tensors")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(20261202)
    models_by_name = {name: write_encoder(name, generator) for name in TINY}
    tokenizer = write_tokenizer()
    write_prompts(models_by_name["sliding_gqa"], tokenizer)
    write_real_config()


if __name__ == "__main__":
    main()
