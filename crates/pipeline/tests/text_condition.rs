//! A model with a text encoder: the image's tags fill its prompt template, the prompt's Gemma-2 embedding and
//! mask are the DiT's condition, and guidance mixes two velocities. On the built-in model's networks (random
//! weights) with the tiny encoder and tokenizer of the model crate's Gemma-2 fixtures.

use std::path::PathBuf;

use sana_sr_core::{manual_seed, nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::Image;
use sana_sr_model::checkpoint::{self, Pretrained};
use sana_sr_model::text::{Gemma2Model, PromptStyle, PromptTokenizer, TextEncoder};
use sana_sr_pipeline::condition::TextConfig;
use sana_sr_pipeline::upscaler::check_options;
use sana_sr_pipeline::{ModelConfig, ModelSource, Network, SrModel, UpscaleOptions, Upscaler};

const MAX_LENGTH: usize = 12;

fn gemma_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/gemma2")
}

fn built_in() -> SrModel {
    match ModelSource::default_model().load_network(Device::Cpu).unwrap() {
        (Network::Sana(model), _) => model,
        _ => panic!("the built-in model is a SANA-SR model"),
    }
}

/// The fixture's tokenizer and `sliding_gqa` encoder (32 wide) as a model's text side, SANA-SR's way: the
/// tags as given, then a quality suffix.
fn text_config() -> TextConfig {
    let tokenizer = std::fs::read_to_string(gemma_fixtures().join("tokenizer/tokenizer.json")).unwrap();
    TextConfig {
        template: "{tags}, clean, sharp".into(),
        untagged: "clean, sharp".into(),
        max_length: MAX_LENGTH,
        lowercase: false,
        instruction: None,
        pad_token: "<pad>".into(),
        tokenizer: serde_json::from_str(&tokenizer).unwrap(),
        encoder: checkpoint::read_config(&gemma_fixtures().join("sliding_gqa")).unwrap(),
    }
}

/// The built-in model's networks, randomly initialised, reading a 32-wide caption from the fixture's encoder.
fn tagged_model() -> (SrModel, nn::VarStore) {
    let mut config = built_in().config;
    config.name = "tagged".into();
    // A new model with the skip starts as its input resize (its detail zero): without it the output shows the
    // condition.
    config.lr_skip = false;
    config.transformer.caption_channels = 32;
    config.condition_tokens = MAX_LENGTH as i64;
    config.text = Some(text_config());
    manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SrModel::build(vs.root(), &config).unwrap();
    let (_, encoder_vs) = Gemma2Model::from_pretrained(&gemma_fixtures().join("sliding_gqa"), Device::Cpu).unwrap();
    no_grad(|| {
        let variables = vs.variables();
        for (name, value) in encoder_vs.variables() {
            variables[&format!("text_encoder.{name}")].shallow_clone().copy_(&value);
        }
    });
    (model, vs)
}

/// The fixture's encoder behind its tokenizer, outside any model.
fn reference_encoder() -> TextEncoder {
    let (encoder, _) = Gemma2Model::from_pretrained(&gemma_fixtures().join("sliding_gqa"), Device::Cpu).unwrap();
    let tokenizer = PromptTokenizer::from_folder(&gemma_fixtures().join("tokenizer")).unwrap();
    TextEncoder {
        tokenizer,
        encoder,
        style: PromptStyle { max_length: MAX_LENGTH, lowercase: false, instruction: None },
    }
}

fn photo() -> Image {
    let data = (0..40 * 24 * 3).map(|i| 0.1 + 0.8 * ((i * 37 % 101) as f32 / 101.0)).collect();
    Image::new(40, 24, 3, data)
}

#[test]
fn tags_fill_the_template_and_the_condition_is_the_prompts_embedding() {
    let (model, _vs) = tagged_model();
    let reference = reference_encoder();
    for (tags, prompt) in
        [(Some("building, sign"), "building, sign, clean, sharp"), (None, "clean, sharp"), (Some("  "), "clean, sharp")]
    {
        let conditioning = model.conditioning(tags, 1.0).unwrap();
        let (tokens, mask) = no_grad(|| reference.encode(&[prompt])).unwrap();
        assert!(conditioning.condition.tokens.equal(&tokens), "{tags:?}");
        assert!(conditioning.condition.mask.as_ref().unwrap().equal(&mask), "{tags:?}");
        assert!(conditioning.guidance.is_none());
    }
}

#[test]
fn a_model_file_keeps_its_text_encoder_and_tokenizer() {
    let (model, vs) = tagged_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagged.safetensors");
    model.save(&vs, &path, Kind::Float).unwrap();
    let (loaded, _vs) = SrModel::load(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.config, model.config);
    assert!(loaded.condition.is_none(), "a text model stores no fixed condition");
    let want = model.conditioning(Some("tree"), 1.0).unwrap().condition.tokens;
    assert!(loaded.conditioning(Some("tree"), 1.0).unwrap().condition.tokens.equal(&want));
}

#[test]
fn guidance_mixes_the_tags_velocity_with_the_empty_prompts() {
    let (model, _vs) = tagged_model();
    let latent = Tensor::randn([1, model.config.transformer.in_channels, 2, 3], (Kind::Float, Device::Cpu));
    let (t, sigma) = (model.config.timestep, model.config.timestep / 1000.0);
    let velocity = |tags: Option<&str>, s: f64| {
        no_grad(|| model.velocity_with(&latent, t, sigma, &model.conditioning(tags, s).unwrap())).unwrap()
    };
    let tagged = velocity(Some("building"), 1.0);
    let empty = no_grad(|| {
        let condition = model.text.as_ref().unwrap().condition("").unwrap();
        let conditioning = sana_sr_pipeline::condition::Conditioning { condition, guidance: None };
        model.velocity_with(&latent, t, sigma, &conditioning)
    })
    .unwrap();
    assert!(!tagged.equal(&empty), "the prompt reaches the DiT");
    let guided = velocity(Some("building"), 4.5);
    assert!(guided.equal(&(&empty + (&tagged - &empty) * 4.5)));
}

#[test]
fn tags_change_the_upscale() {
    let (model, vs) = tagged_model();
    let upscaler = Upscaler::new(model, vs);
    let run = |tags: Option<&str>| {
        let options = UpscaleOptions { tags: tags.map(str::to_string), tile: None, ..Default::default() };
        upscaler.upscale(&photo(), &options).unwrap().data
    };
    let (plain, building, tree) = (run(None), run(Some("building")), run(Some("tree")));
    assert!(plain != building && building != tree, "the tags reach the image");
    assert!(building == run(Some("building")), "the cached condition gives the same image");
}

#[test]
fn tags_and_guidance_need_a_text_encoder() {
    let config = ModelConfig::Sana(built_in().config);
    for options in [
        UpscaleOptions { tags: Some("tree".into()), ..Default::default() },
        UpscaleOptions { guidance: 3.0, ..Default::default() },
    ] {
        let err = check_options(&config, &options).unwrap_err().to_string();
        assert!(err.contains("has no text encoder"), "{err}");
    }
    let text = ModelConfig::Sana(tagged_model().0.config);
    for bad in [0.5, f64::NAN, f64::INFINITY] {
        let err =
            check_options(&text, &UpscaleOptions { guidance: bad, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("guidance scale"), "{bad}: {err}");
    }
    assert!(check_options(&text, &UpscaleOptions { tags: Some("tree".into()), guidance: 2.0, ..Default::default() })
        .is_ok());
    let err = built_in().conditioning(Some("tree"), 1.0).unwrap_err().to_string();
    assert!(err.contains("model `sana-sr-compact-pruned-gan-extrapolated` has no text encoder"), "{err}");
}
