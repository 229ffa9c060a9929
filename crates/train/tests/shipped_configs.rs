//! The training and model configs the repository ships (`configs/`) read and validate: a config that no
//! longer parses after a change to the config types fails here, not at the start of an hours-long run.

use std::path::{Path, PathBuf};

use sana_sr_core::{nn, Device};
use sana_sr_model::layers::variables;
use sana_sr_pipeline::{SrModel, SrModelConfig};
use sana_sr_train::config::TrainConfig;

fn shipped(suffix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_training_config_reads_and_validates() {
    let configs = shipped(".toml");
    assert!(configs.len() >= 10, "{configs:?}");
    for path in configs {
        TrainConfig::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_model_config_builds() {
    let configs = shipped(".model.json");
    assert!(configs.iter().any(|p| p.ends_with("linearsr-cpu.model.json")), "{configs:?}");
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap();
        let config: SrModelConfig = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Counted, not allocated: the build checks the config and the shapes it makes.
        variables::check_parameter_limit(u64::MAX, || SrModel::build(nn::VarStore::new(Device::Cpu).root(), &config))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
