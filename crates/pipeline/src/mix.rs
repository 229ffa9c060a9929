//! Weight arithmetic between models of one network, ESRGAN's network interpolation: every weight of the
//! result is `Σ wᵢ · θᵢ` over the parts. Two fine-tunes of one start (a faithful one and a textured one) mixed
//! with weights in [0, 1] give a look between theirs; a weight past 1 (the other part's negative) goes on along
//! their difference, e.g. a stage's end and its start at `1.5` and `-0.5` take its change half as far again.
//! The weights sum to 1 so that a mix of equal models is that model (the biases and norms keep their level).

use sana_sr_core::{nn, no_grad, Kind};

use crate::network::{ModelConfig, Network};

/// How far the weights' sum may be from 1: decimal weights such as 0.1 + 0.2 + 0.7 are not exact in binary.
const SUM_TOLERANCE: f64 = 1e-9;

/// One model of a mix: its network, its weights (float32, as loaded) and its share.
pub struct Part {
    /// What names the part in errors (its built-in name or path).
    pub label: String,
    pub network: Network,
    pub vars: nn::VarStore,
    pub weight: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("a mix needs at least two models, got {0}")]
    TooFew(usize),
    #[error("the weights sum to {0}, not 1 (a mix of equal models would not be that model)")]
    Sum(f64),
    #[error("weight {weight} of {label} is not a finite number")]
    NotFinite { label: String, weight: f64 },
    #[error("{other} is not the same network as {first}: only models that differ in their weights alone mix")]
    Network { first: String, other: String },
}

/// The mix of `parts` into the first part's network (its name and description kept until the caller sets
/// new ones). Each weight is summed in float64 and rounded once to float32.
pub fn mix(parts: Vec<Part>) -> Result<(Network, nn::VarStore), MixError> {
    if parts.len() < 2 {
        return Err(MixError::TooFew(parts.len()));
    }
    if let Some(part) = parts.iter().find(|p| !p.weight.is_finite()) {
        return Err(MixError::NotFinite { label: part.label.clone(), weight: part.weight });
    }
    let sum: f64 = parts.iter().map(|p| p.weight).sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err(MixError::Sum(sum));
    }
    let first = &parts[0];
    let shape = architecture(&first.network);
    if let Some(other) = parts[1..].iter().find(|p| architecture(&p.network) != shape) {
        return Err(MixError::Network { first: first.label.clone(), other: other.label.clone() });
    }
    // Equal configs build equal variable sets, names and shapes alike.
    let tables: Vec<_> = parts.iter().map(|p| p.vars.variables()).collect();
    no_grad(|| {
        for (name, target) in &tables[0] {
            let sum = parts
                .iter()
                .zip(&tables)
                .map(|(part, table)| table[name].to_kind(Kind::Double) * part.weight)
                .reduce(|a, b| a + b)
                .expect("at least two parts");
            target.shallow_clone().copy_(&sum.to_kind(target.kind()));
        }
    });
    let Part { network, vars, .. } = parts.into_iter().next().expect("at least two parts");
    Ok((network, vars))
}

/// A network's config without what only labels it: the name and description.
fn architecture(network: &Network) -> ModelConfig {
    let mut config = network.config();
    match &mut config {
        ModelConfig::Sana(c) => (c.name.clear(), c.description.clear()),
        ModelConfig::Esrgan(c) => (c.name.clear(), c.description.clear()),
    };
    config
}
