//! A model file of a model config with the weights it starts training from (random, as built): what a
//! candidate architecture costs can be timed as a whole upscale (`tools/bench/upscale_speed.py`) or block by
//! block (`dcae_block_times`) before any training.
//!
//!     cargo run --release -p sana-sr-pipeline --example random_model -- CONFIG.model.json OUT.safetensors

use anyhow::{Context, Result};
use sana_sr_core::{nn, Device, Kind};
use sana_sr_pipeline::{SrModel, SrModelConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, out] = args.as_slice() else {
        anyhow::bail!("usage: random_model CONFIG.model.json OUT.safetensors");
    };
    let text = std::fs::read_to_string(config).with_context(|| format!("cannot read {config}"))?;
    let config: SrModelConfig = serde_json::from_str(&text).with_context(|| format!("model config {config}"))?;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SrModel::build(vs.root(), &config)?;
    model.save(&vs, std::path::Path::new(out), Kind::Half)?;
    println!("{out}: {} parameters", SrModel::parameter_count(&vs));
    Ok(())
}
