//! The model-file loader under a mutation fuzzer ([`sana_sr_core::fuzz`]): the safetensors header, the config
//! in its metadata and the weights of tiny SANA-SR and peer model files (`tests/fuzz/model_file/`), mutated
//! as bytes and as JSON (a number of the header or of the config replaced by one that breaks size
//! arithmetic, a field dropped). Each input is read for its info, loaded, and when it loads, run on a small
//! image; any panic or hang is a finding, saved beside the seeds and replayed by every run after.
//! `SANA_SR_FUZZ_SECONDS=1800 cargo test -p sana-sr-pipeline --test fuzz_model_file -- --nocapture` is a long
//! run (docs/fuzzing.md).

use std::path::{Path, PathBuf};

use sana_sr_core::fuzz::{self, Options, Rng, INTERESTING};
use sana_sr_core::{nn, Device, Kind};
use sana_sr_data::Image;
use sana_sr_model::esrgan::{EsrganConfig, RrdbNetConfig, SrVggNetCompactConfig};
use sana_sr_pipeline::sr_model::{ModelInfo, CONFIG_METADATA_KEY};
use sana_sr_pipeline::{EsrganModel, EsrganModelConfig, Network, SrModel, SrModelConfig, UpscaleOptions, Upscaler};
use serde_json::Value;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/model_file")
}

fn load_and_run(input: &[u8]) -> String {
    let origin = Path::new("fuzz.safetensors");
    let info = ModelInfo::read(input, origin).map(|i| i.parameters);
    let (network, weights) = match Network::from_bytes(input, origin, Device::Cpu) {
        Ok(loaded) => loaded,
        Err(err) => return format!("{err} (info {info:?})"),
    };
    let image = Image::new(5, 4, 3, (0..60).map(|i| i as f32 / 60.0).collect());
    match Upscaler::new(network, weights)
        .upscale(&image, &UpscaleOptions { scale: None, tile: None, ..Default::default() })
    {
        Ok(sr) => format!("ran to {}x{}", sr.width, sr.height),
        Err(err) => format!("loaded, then {err}"),
    }
}

#[test]
fn the_model_loader_survives_mutated_files() {
    let report = fuzz::run(&folder(), &Options::default(), mutate_json, load_and_run);
    println!("{}", report.summary("model_file"));
    assert!(report.crashes.is_empty() && report.replay_failures.is_empty(), "{}", report.summary("model_file"));
}

/// The header of safetensors bytes and the data after it; `None` when there is no JSON header.
fn split(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = serde_json::from_slice(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    Some((header, &bytes[8 + len..]))
}

/// Every number in `value`, as a mutable reference.
fn numbers(value: &mut Value) -> Vec<&mut Value> {
    match value {
        Value::Number(_) => vec![value],
        Value::Array(items) => items.iter_mut().flat_map(numbers).collect(),
        Value::Object(map) => map.values_mut().flat_map(numbers).collect(),
        _ => Vec::new(),
    }
}

/// A replacement for a number: an interesting integer, possibly negative, or a scaled float.
fn new_number(rng: &mut Rng, old: &Value) -> Value {
    match rng.below(4) {
        0 => Value::from(-(*rng.pick(INTERESTING) as i128).clamp(i64::MIN as i128, 0) as i64),
        1 => Value::from(old.as_f64().unwrap_or(1.0) * *rng.pick(&[0.0, -1.0, 0.5, 2.0, 1e6, 1e300])),
        _ => Value::from(*rng.pick(INTERESTING)),
    }
}

/// Structure-aware mutation: a number of the header (shapes, offsets) or of the model config replaced, or a
/// config field or a tensor dropped, and the file put back together.
fn mutate_json(rng: &mut Rng, input: &[u8]) -> Option<Vec<u8>> {
    let (mut header, data) = split(input)?;
    let in_config = rng.chance(2);
    let mut config: Option<Value> = header
        .get("__metadata__")
        .and_then(|m| m.get(CONFIG_METADATA_KEY))
        .and_then(Value::as_str)
        .and_then(|json| serde_json::from_str(json).ok());
    let target = match (&mut config, in_config) {
        (Some(config), true) => config,
        _ => &mut header,
    };
    if rng.chance(8) {
        let Value::Object(map) = target else { return None };
        let key = map.keys().nth(rng.below(map.len().max(1)))?.clone();
        map.remove(&key);
    } else {
        let mut found = numbers(target);
        if found.is_empty() {
            return None;
        }
        let i = rng.below(found.len());
        let replacement = new_number(rng, found[i]);
        *found[i] = replacement;
    }
    if let Some(config) = config {
        header["__metadata__"][CONFIG_METADATA_KEY] = Value::String(config.to_string());
    }
    let json = serde_json::to_vec(&header).ok()?;
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend_from_slice(data);
    Some(out)
}

/// Writes the seeds (run once with `--ignored`; the files are committed): a tiny SANA-SR model in float16 and
/// tiny peers of both architectures in float32.
#[test]
#[ignore]
fn write_seeds() {
    sana_sr_core::manual_seed(0);
    let json = r#"{"name": "seed", "scale": 4, "scales": [2, 4], "timestep": 500.0, "lr_skip": true, "condition_tokens": 2,
      "vae": {"latent_channels": 4, "attention_head_dim": 4,
              "encoder_block_types": ["ResBlock", "EfficientViTBlock"], "decoder_block_types": ["ResBlock", "EfficientViTBlock"],
              "encoder_block_out_channels": [4, 8], "decoder_block_out_channels": [4, 8],
              "encoder_layers_per_block": [1, 1], "decoder_layers_per_block": [1, 1],
              "encoder_qkv_multiscales": [[], [3]], "decoder_qkv_multiscales": [[], [3]]},
      "transformer": {"in_channels": 4, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 4,
                      "num_layers": 1, "num_cross_attention_heads": 2, "cross_attention_head_dim": 4,
                      "cross_attention_dim": 8, "caption_channels": 8}}"#;
    let config: SrModelConfig = serde_json::from_str(json).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SrModel::build(vs.root(), &config).unwrap();
    model.save(&vs, &folder().join("seed-sana.safetensors"), Kind::Half).unwrap();
    let peers = [
        (
            "seed-rrdbnet.safetensors",
            EsrganConfig::Rrdbnet(RrdbNetConfig { num_feat: 4, num_block: 1, num_grow_ch: 2, ..Default::default() }),
        ),
        (
            "seed-srvgg.safetensors",
            EsrganConfig::SrvggnetCompact(SrVggNetCompactConfig { num_feat: 4, num_conv: 1, ..Default::default() }),
        ),
    ];
    for (name, network) in peers {
        let config = EsrganModelConfig { name: "seed".into(), description: String::new(), network };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Network::Esrgan(EsrganModel::build(vs.root(), &config).unwrap());
        model.save(&vs, &folder().join(name), Kind::Float).unwrap();
    }
}
