//! Structured pruning of a SANA-SR model to a budget of parameters and MACs (`sana-sr prune`).
//!
//! The units are the DiT's blocks, attention heads and Mix-FFN channel groups and the DC-AE's blocks and
//! hidden channel groups (`sana_sr_model::prune`). Each is ranked by its importance on calibration pairs per
//! unit of cost it saves, and the least important per cost go first until the budget is met (one shot: the
//! importances are measured once, on the unpruned model). Two importances:
//! - [`Importance::Removal`]: how much the SR output moves (mean absolute difference, images in [-1, 1])
//!   when the unit alone is removed; one forward pass per unit (the stages before the unit's reused);
//! - [`Importance::Taylor`]: the first-order estimate of how much the L1 loss against the HR images changes
//!   when the unit is removed, `|Σ g·w|` over the weights that read the unit (Molchanov et al. 2019,
//!   "Importance Estimation for Neural Network Pruning", CVPR), from one backward pass per calibration batch.
//!
//! The cost saved is a unit's share of the cut each target asks for: `ΔMACs / (MACs − target)` plus the same
//! for parameters, each term only while its target is not yet met, counted by [`crate::cost`] at the budget's
//! input size.

use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::resize::matlab::imresize_tensor;
use sana_sr_data::tensor::to_tensor;
use sana_sr_model::prune::{ae_units, dit_units, Plan, Unit};
use serde::{Deserialize, Serialize};

use crate::cost::CostReport;
use crate::network::ModelConfig;
use crate::sr_model::{ModelError, SrModel, SrModelConfig};

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("no target: give a number of parameters, of MACs, or both")]
    NoTarget,
    #[error("the model already meets the target ({params} parameters, {macs} MACs)")]
    AlreadyMet { params: u64, macs: u64 },
    #[error("cannot reach the target: with every removable unit gone the model still has {params} parameters and {macs} MACs")]
    Unreachable { params: u64, macs: u64 },
    #[error("calibration: {0}")]
    Calibration(String),
    #[error("model `{model}` has {what}: pruning covers the autoencoder and a single DiT")]
    Unsupported { model: String, what: &'static str },
    #[error(transparent)]
    Model(#[from] ModelError),
}

type Result<T> = std::result::Result<T, PruneError>;

/// How a unit's importance is measured (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    Taylor,
    Removal,
}

/// What to prune to, and how.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// At most this many parameters.
    pub target_params: Option<u64>,
    /// At most this many MACs for one upscale of an `input`-sized image.
    pub target_macs: Option<u64>,
    /// LR size (height, width) at which MACs are counted.
    pub input: (i64, i64),
    pub scale: u32,
    pub importance: Importance,
    /// Whole blocks only (the pruned networks stay diffusers configs).
    pub depth_only: bool,
    /// Channel groups per layer: hidden channels are removed a group at a time.
    pub channel_groups: i64,
}

/// LR/HR pairs the importances are measured on: `[N, 3, h, w]` and `[N, 3, scale·h, scale·w]` in [0, 1].
#[derive(Debug)]
pub struct Calibration {
    pub lr: Tensor,
    pub hr: Tensor,
}

impl Calibration {
    /// Centre crops of `hr_side` pixels of up to `count` images of `dir` (by name), their LR the crops
    /// downscaled by `scale` with MATLAB's bicubic. Images smaller than the crop are skipped.
    pub fn from_folder(dir: &Path, count: usize, hr_side: i64, scale: u32) -> Result<Self> {
        let bad = |m: String| PruneError::Calibration(m);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| bad(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && sana_sr_data::io::has_image_extension(p))
            .collect();
        files.sort();
        let side = hr_side as usize;
        let mut hr = Vec::new();
        for file in files {
            if hr.len() == count {
                break;
            }
            let image = sana_sr_data::io::read_image(&file).map_err(|e| bad(e.to_string()))?.to_rgb();
            if image.width < side || image.height < side {
                continue;
            }
            let crop = image.crop((image.width - side) / 2, (image.height - side) / 2, side, side).expect("inside");
            hr.push(to_tensor(&crop, Device::Cpu));
        }
        if hr.is_empty() {
            return Err(bad(format!("{} has no image of at least {side}x{side} pixels", dir.display())));
        }
        let hr = Tensor::cat(&hr, 0);
        let lr_side = (hr_side / scale as i64) as usize;
        let lr = imresize_tensor(&hr, lr_side, lr_side).map_err(|e| bad(e.to_string()))?.clamp(0.0, 1.0);
        Ok(Self { lr, hr })
    }

    pub fn len(&self) -> i64 {
        self.lr.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The path of a unit's network inside the model file.
fn network_prefix(unit: &Unit) -> &'static str {
    match unit {
        Unit::DitBlock(_) | Unit::DitHead(..) | Unit::DitCrossHead(..) | Unit::DitFf(..) => "transformer",
        Unit::AeBlock(..) | Unit::AeHidden(..) => "vae",
    }
}

/// The model's variables that read `unit`, with their slices.
fn readers(model: &SrModel, vars: &HashMap<String, Tensor>, unit: &Unit) -> Vec<Tensor> {
    let prefix = network_prefix(unit);
    unit.readers(&model.config.transformer, &model.config.vae)
        .iter()
        .map(|slice| slice.of(&vars[&format!("{prefix}.{}", slice.var)]))
        .collect()
}

/// Every unit of the model (only blocks when `depth_only`).
pub fn units(config: &SrModelConfig, options: &PruneOptions) -> Vec<Unit> {
    let mut units = dit_units(&config.transformer, options.channel_groups);
    units.extend(ae_units(&config.vae, options.channel_groups));
    if options.depth_only {
        units.retain(Unit::is_block);
    }
    units
}

/// The model's input for HR-sized output: the LR resized its way, in [-1, 1]; the crops are whole tokens.
fn model_input(model: &SrModel, lr: &Tensor, hr_size: (i64, i64)) -> Tensor {
    model.resize_input(lr, hr_size.0, hr_size.1) * 2.0 - 1.0
}

/// Calibration batches of at most `batch` pairs.
fn batches(calibration: &Calibration, batch: i64) -> Vec<(Tensor, Tensor)> {
    let n = calibration.len();
    (0..n)
        .step_by(batch as usize)
        .map(|start| {
            let len = batch.min(n - start);
            (calibration.lr.narrow(0, start, len), calibration.hr.narrow(0, start, len))
        })
        .collect()
}

/// Refuses a model whose parts pruning does not cover: LinearSR's LR stem and experts.
pub fn check_prunable(config: &SrModelConfig) -> Result<()> {
    let what = match (&config.lr_stem, &config.experts) {
        (_, Some(_)) => "SNR-based experts",
        (Some(_), None) => "an LR stem",
        (None, None) => return Ok(()),
    };
    Err(PruneError::Unsupported { model: config.name.clone(), what })
}

/// The importance of every unit (same order), measured on `calibration` with `vs` the model's store.
pub fn importance(
    model: &SrModel,
    vs: &nn::VarStore,
    units: &[Unit],
    calibration: &Calibration,
    measure: Importance,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<f64>> {
    check_prunable(&model.config)?;
    let vars = vs.variables();
    let hr_size = (calibration.hr.size()[2], calibration.hr.size()[3]);
    match measure {
        Importance::Taylor => {
            // Only the readers need gradients.
            let trainable: Vec<Tensor> = vs.trainable_variables();
            let was: Vec<bool> = trainable.iter().map(Tensor::requires_grad).collect();
            for t in &trainable {
                let _ = t.shallow_clone().set_requires_grad(false);
            }
            let mut reader_names: Vec<String> = units
                .iter()
                .flat_map(|u| {
                    let prefix = network_prefix(u);
                    u.readers(&model.config.transformer, &model.config.vae)
                        .into_iter()
                        .map(move |s| format!("{prefix}.{}", s.var))
                })
                .collect();
            reader_names.sort();
            reader_names.dedup();
            for name in &reader_names {
                let _ = vars[name].shallow_clone().set_requires_grad(true);
            }
            let all = batches(calibration, 1);
            let measured = (|| -> Result<Vec<f64>> {
                let mut scores = vec![0.0; units.len()];
                for (b, (lr, hr)) in all.iter().enumerate() {
                    let sr = model.forward(&model_input(model, lr, hr_size))?;
                    let loss = (sr - (hr * 2.0 - 1.0)).abs().mean(Kind::Float);
                    loss.backward();
                    no_grad(|| {
                        for (score, unit) in scores.iter_mut().zip(units) {
                            let prefix = network_prefix(unit);
                            let s: f64 = unit
                                .readers(&model.config.transformer, &model.config.vae)
                                .iter()
                                .map(|slice| {
                                    let w = &vars[&format!("{prefix}.{}", slice.var)];
                                    let g = w.grad();
                                    // A reader the loss does not reach has no gradient: no first-order change.
                                    if !g.defined() {
                                        return 0.0;
                                    }
                                    (slice.of(&g) * slice.of(w)).sum(Kind::Double).double_value(&[])
                                })
                                .sum();
                            *score += s.abs() / all.len() as f64;
                        }
                        for name in &reader_names {
                            let mut grad = vars[name].grad();
                            if grad.defined() {
                                let _ = grad.zero_();
                            }
                        }
                    });
                    progress(b + 1, all.len());
                }
                Ok(scores)
            })();
            // The store as it was, whether or not the measurement went through.
            for name in &reader_names {
                let _ = vars[name].shallow_clone().set_requires_grad(false);
            }
            for (t, was) in trainable.iter().zip(was) {
                let _ = t.shallow_clone().set_requires_grad(was);
            }
            measured
        }
        Importance::Removal => no_grad(|| {
            // Per batch: the encoder's latent, the restored latent and the output of the whole model, so that
            // a unit reruns only its own network and what follows it.
            let cached: Vec<(Tensor, Tensor, Tensor, Tensor)> = batches(calibration, 4)
                .into_iter()
                .map(|(lr, _)| {
                    let x = model_input(model, &lr, hr_size);
                    let z = model.encode(&x)?;
                    let r = model.restore(&z)?;
                    let out = model.add_skip(model.decode(&r)?, &x);
                    Ok((x, z, r, out))
                })
                .collect::<std::result::Result<_, ModelError>>()?;
            let mut scores = Vec::with_capacity(units.len());
            for (n, unit) in units.iter().enumerate() {
                let slices = readers(model, &vars, unit);
                let saved: Vec<Tensor> = slices.iter().map(Tensor::copy).collect();
                for s in &slices {
                    let _ = s.shallow_clone().zero_();
                }
                let mut change = 0.0;
                for (x, z, r, out) in &cached {
                    let decoded = match unit {
                        Unit::AeBlock(side, ..) | Unit::AeHidden(side, ..)
                            if *side == sana_sr_model::autoencoders::Side::Encoder =>
                        {
                            model.decode(&model.restore(&model.encode(x)?)?)?
                        }
                        Unit::AeBlock(..) | Unit::AeHidden(..) => model.decode(r)?,
                        _ => model.decode(&model.restore(z)?)?,
                    };
                    let moved = (model.add_skip(decoded, x) - out).abs().mean(Kind::Double).double_value(&[]);
                    change += moved * x.size()[0] as f64 / calibration.len() as f64;
                }
                for (s, v) in slices.iter().zip(&saved) {
                    s.shallow_clone().copy_(v);
                }
                scores.push(change);
                progress(n + 1, units.len());
            }
            Ok(scores)
        }),
    }
}

/// The importances of a run, written beside the pruned model (`NAME.importance.json`) and readable back
/// (`sana-sr prune --importance-from`), so that several budgets reuse one measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    pub importance: Importance,
    /// Calibration pairs and their HR side.
    pub pairs: i64,
    pub crop: i64,
    pub units: Vec<Scored>,
}

/// One unit's importance, and whether this run removed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    pub unit: String,
    pub importance: f64,
    #[serde(default)]
    pub removed: bool,
}

impl Scores {
    /// The importance of every unit of `units` (same order), by name; every one must be there.
    pub fn of(&self, config: &SrModelConfig, units: &[Unit]) -> Result<Vec<f64>> {
        let by_name: HashMap<&str, f64> = self.units.iter().map(|s| (s.unit.as_str(), s.importance)).collect();
        units
            .iter()
            .map(|u| {
                let name = u.name(&config.vae);
                by_name.get(name.as_str()).copied().ok_or_else(|| {
                    PruneError::Calibration(format!(
                        "the importances read hold no unit `{name}` (another model or --groups?)"
                    ))
                })
            })
            .collect()
    }
}

/// The model config a plan leaves.
pub fn pruned_config(config: &SrModelConfig, plan: &Plan) -> SrModelConfig {
    SrModelConfig {
        vae: plan.ae_config(&config.vae),
        transformer: plan.dit_config(&config.transformer),
        ..config.clone()
    }
}

/// A candidate in the greedy selection: importance per cost saved, lowest first.
struct Candidate {
    ratio: f64,
    unit: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.ratio == other.ratio && self.unit == other.unit
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    // A max-heap of the reverse: the lowest ratio on top, ties by unit order.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.ratio.total_cmp(&self.ratio).then(other.unit.cmp(&self.unit))
    }
}

/// Whether removing `unit` from `plan` leaves a model that still runs: at least one DiT block, one block in
/// every autoencoder stage that had one, one head, cross-attention head and channel group in every block.
fn removable(plan: &Plan, unit: &Unit) -> bool {
    if !plan.keeps(unit) {
        return false;
    }
    match unit {
        Unit::DitBlock(_) => plan.dit.iter().flatten().count() > 1,
        Unit::DitHead(i, _) => plan.dit[*i].as_ref().is_some_and(|k| k.heads.len() > 1),
        Unit::DitCrossHead(i, _) => plan.dit[*i].as_ref().is_some_and(|k| k.cross_heads.len() > 1),
        Unit::DitFf(i, r) => plan.dit[*i].as_ref().is_some_and(|k| k.ff.iter().any(|c| !r.contains(c))),
        Unit::AeBlock(side, s, _) => {
            let stage = &plan.ae[usize::from(*side == sana_sr_model::autoencoders::Side::Decoder)][*s];
            stage.iter().flatten().count() > 1
        }
        Unit::AeHidden(side, s, j, r) => plan.ae_block(*side, *s, *j).is_some_and(|k| k.iter().any(|c| !r.contains(c))),
    }
}

/// Chooses what to remove: repeatedly the unit of the lowest importance per budget share saved, until both
/// targets hold. Returns the plan and the units removed, in order.
pub fn select(
    config: &SrModelConfig,
    units: &[Unit],
    scores: &[f64],
    options: &PruneOptions,
) -> Result<(Plan, Vec<Unit>)> {
    if options.target_params.is_none() && options.target_macs.is_none() {
        return Err(PruneError::NoTarget);
    }
    let count = |plan: &Plan| {
        let report = CostReport::new(&ModelConfig::Sana(pruned_config(config, plan)), options.input, options.scale);
        (report.params, report.macs)
    };
    let mut plan = Plan::full(&config.transformer, &config.vae);
    let (params0, macs0) = count(&plan);
    let met = |(params, macs): (u64, u64)| {
        options.target_params.is_none_or(|t| params <= t) && options.target_macs.is_none_or(|t| macs <= t)
    };
    if met((params0, macs0)) {
        return Err(PruneError::AlreadyMet { params: params0, macs: macs0 });
    }
    // A target's weight: one over the cut it asks for, while it is not met; zero once it is, so that the rest
    // of the cut goes where the other target still needs it.
    let weights = |now: (u64, u64)| {
        let weight = |current: u64, total: u64, target: Option<u64>| match target {
            Some(t) if current > t => 1.0 / (total.saturating_sub(t).max(1)) as f64,
            _ => 0.0,
        };
        (weight(now.0, params0, options.target_params), weight(now.1, macs0, options.target_macs))
    };
    // What removing `unit` saves, in shares of the budget to cut (nothing for a unit that cannot go).
    let saving = |plan: &Plan, now: (u64, u64), unit: &Unit| {
        if !removable(plan, unit) {
            return 0.0;
        }
        let mut without = plan.clone();
        without.remove(unit);
        let after = count(&without);
        let (w_params, w_macs) = weights(now);
        w_params * (now.0 as f64 - after.0 as f64) + w_macs * (now.1 as f64 - after.1 as f64)
    };
    let ratio = |score: f64, saved: f64| if saved > 0.0 { score / saved } else { f64::INFINITY };
    let rank = |plan: &Plan, now: (u64, u64)| -> BinaryHeap<Candidate> {
        units
            .iter()
            .enumerate()
            .filter(|(_, u)| plan.keeps(u))
            .map(|(unit, u)| Candidate { ratio: ratio(scores[unit], saving(plan, now, u)), unit })
            .collect()
    };

    let mut now = (params0, macs0);
    let mut heap = rank(&plan, now);
    let mut removed = Vec::new();
    while !met(now) {
        let Some(top) = heap.pop() else {
            return Err(PruneError::Unreachable { params: now.0, macs: now.1 });
        };
        let unit = &units[top.unit];
        if !removable(&plan, unit) || top.ratio.is_infinite() {
            continue;
        }
        // A block saves less once some of its heads or channels are gone: re-rank it if it fell behind.
        let current = ratio(scores[top.unit], saving(&plan, now, unit));
        if current > top.ratio && heap.peek().is_some_and(|next| current > next.ratio) {
            heap.push(Candidate { ratio: current, unit: top.unit });
            continue;
        }
        plan.remove(unit);
        let before = weights(now);
        now = count(&plan);
        removed.push(unit.clone());
        if weights(now) != before {
            // One target is met: what the other needs decides from here.
            heap = rank(&plan, now);
        }
    }
    Ok((plan, removed))
}

/// The pruned model's config and weights (every variable of the model file), from the unpruned model's store.
pub fn apply(config: &SrModelConfig, vs: &nn::VarStore, plan: &Plan) -> (SrModelConfig, HashMap<String, Tensor>) {
    let vars = vs.variables();
    let network = |prefix: &str| -> HashMap<String, Tensor> {
        vars.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.detach()))).collect()
    };
    let mut weights = HashMap::new();
    let dit = plan.dit_weights(&config.transformer, &network("transformer."));
    weights.extend(dit.into_iter().map(|(k, v)| (format!("transformer.{k}"), v)));
    let ae = plan.ae_weights(&config.vae, &network("vae."));
    weights.extend(ae.into_iter().map(|(k, v)| (format!("vae.{k}"), v)));
    for (k, v) in &vars {
        if !k.starts_with("transformer.") && !k.starts_with("vae.") {
            weights.insert(k.clone(), v.detach());
        }
    }
    (pruned_config(config, plan), weights)
}

/// Builds the pruned model in a new store on `device` from [`apply`]'s output.
pub fn build(
    config: &SrModelConfig,
    weights: HashMap<String, Tensor>,
    device: Device,
) -> Result<(SrModel, nn::VarStore)> {
    let vs = nn::VarStore::new(device);
    let model = SrModel::build(vs.root(), config)?;
    sana_sr_model::checkpoint::copy_into(&vs, weights).map_err(ModelError::from)?;
    Ok((model, vs))
}
