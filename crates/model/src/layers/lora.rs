//! LoRA adapters on the [`Layer`](super::Layer)s of the DiT and the DC-AE.
//!
//! SANA-SR turns a pretrained text-to-image DiT into a one-step super-resolver, and, as OSEDiff does
//! (Wu et al. 2024, "One-Step Effective Diffusion Network for Real-World Image Super-Resolution",
//! arXiv:2406.08177), adapts the VAE encoder to degraded inputs too. Both keep the pretrained weights frozen and
//! train LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685): each
//! selected layer gets a low-rank update, `y = base(x) + (alpha/rank) · B(A(x))`, so only a small fraction of
//! the parameters (and of the optimizer state) is trained, the generative prior stays intact, and after
//! training the update folds into the weight (`W += alpha/rank · B·A`), leaving inference as fast as before.
//!
//! A is `[rank, in]` (a convolution's A is a convolution with the layer's kernel, stride and padding,
//! `[rank, in, k, k]`), B is `[out, rank]` (`[out, rank, 1, 1]`, 1×1). A starts as PEFT's default,
//! Kaiming-uniform with `a = √5`, i.e. U(±1/√fan_in); B starts at zero, so an untrained adapter changes
//! nothing. The variables are named as in diffusers/PEFT LoRA files, `<layer path>.lora_A.weight` and
//! `<layer path>.lora_B.weight`, so [`save_adapters`] writes a file that reads like diffusers'
//! `save_lora_weights` output.
//!
//! LinearSR's LoRA experts use the same machinery for another end: [`with_expert_adapters`] gives each selected
//! layer K adapters, one per expert, that stay in the model (saved and loaded with its weights, never merged),
//! and [`with_active_expert`] says whose update the layers add.
//!
//! Adapters are attached while a network is built, by a plan in force for the duration of a closure:
//! [`with_adapters`] installs the plan on the current thread, and every `Layer` constructor called inside
//! it (on this thread) consults it with the layer's variable path, which is the diffusers module name. No
//! constructor takes a LoRA argument, and a network built outside a plan has no adapters at all.
//!
//! ```
//! use std::path::Path;
//! use sana_sr_core::{Device, Kind};
//! use sana_sr_model::checkpoint::Pretrained;
//! use sana_sr_model::layers::lora::{self, LoraConfig, Trainable};
//! use sana_sr_model::transformers::SanaTransformer2DModel;
//!
//! let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sana_transformer/p1_plain");
//! // rank 4, alpha 4, the default targets: attention projections and the Mix-FFN's 1×1 convolutions.
//! let config: LoraConfig = serde_json::from_str(r#"{"rank": 4, "alpha": 4.0}"#)?;
//! // `build`'s error type must take a `LoraError` too: here a boxed error.
//! let build = || -> Result<_, Box<dyn std::error::Error>> {
//!     Ok(SanaTransformer2DModel::from_pretrained(&dir, Device::Cpu)?)
//! };
//! let ((_model, vs), adapters) = lora::with_adapters(&config, build)?;
//! assert_eq!(adapters.layers().len(), 3 * 10); // three blocks, ten adapted layers each
//! lora::set_trainable(&vs, Trainable::Adapters)?; // an optimizer over `vs` now trains the adapters only
//! let out = tempfile::tempdir()?;
//! lora::save_adapters(&vs, &out.path().join("adapters.safetensors"), Kind::Float)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::thread::LocalKey;

use sana_sr_core::{nn, no_grad, Kind, Tensor};
use serde::{Deserialize, Serialize};

use super::Op;
use crate::checkpoint::{self, CheckpointError};
use crate::cost;

/// Module names of the two factors, as in PEFT (`lora_A`, `lora_B`).
const A_MODULE: &str = "lora_A";
const B_MODULE: &str = "lora_B";

/// PEFT's initialisation of A (`nn.init.kaiming_uniform_(lora_A.weight, a=math.sqrt(5))`, torch's default for
/// linear layers): the leaky-ReLU gain `sqrt(2 / (1 + a²)) = 1/√3` makes the bound `√3 · gain / √fan_in` equal
/// to 1/√fan_in.
const A_INIT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ExplicitGain(0.577_350_269_189_625_8),
};

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("invalid LoRA config: {0}")]
    Config(String),
    #[error("LoRA target pattern(s) [{}] select no layer that can be adapted (grouped and depthwise convolutions never are); compare them with the layer paths, e.g. `transformer_blocks.0.attn1.to_q`", patterns.join(", "))]
    UnmatchedTargets { patterns: Vec<String> },
    #[error("a LoRA plan of the same kind is already in force on this thread: `with_adapters` (or `with_expert_adapters`) calls do not nest")]
    Nested,
    #[error("the store has no LoRA adapters; was the network built inside `lora::with_adapters`?")]
    NoAdapters,
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

type Result<T> = std::result::Result<T, LoraError>;

/// Which layers get adapters, and their size. Reads from a training config, e.g. TOML:
///
/// ```toml
/// rank = 16
/// alpha = 16.0
/// targets = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.*", "ff.conv_inverted"]
/// ```
///
/// A target pattern selects the layers whose path ends with it at a dot: `attn1.to_q` selects
/// `transformer_blocks.3.attn1.to_q` in every block, as PEFT's `target_modules` list does (`key == target or
/// key.endswith("." + target)`). In a pattern `*` stands for any run of characters, dots included (`attn2.*`
/// is every projection of the cross-attention, `to_out.0` included), and a pattern ending in `.` selects
/// everything under that module (`encoder.` = `encoder.*`: the whole DC-AE encoder). Every pattern must select
/// at least one layer, so that a misspelt target is an error instead of an adapter that silently trains
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// The rank r of the update B·A.
    pub rank: i64,
    /// The update is scaled by `alpha / rank`, so that changing the rank does not change the useful learning
    /// rate (Hu et al. 2021, §4.1); `alpha = rank` (scale 1) is diffusers' training scripts' choice.
    pub alpha: f64,
    /// Layer-path patterns, see above; by default [`default_targets`].
    #[serde(default = "default_targets")]
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// The factor `alpha / rank` of the update.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether a target pattern selects the layer at `path` (if it can be adapted at all: grouped
    /// convolutions never are).
    pub fn selects(&self, path: &str) -> bool {
        self.targets.iter().any(|t| Target::new(t).matches(path))
    }

    fn validate(&self) -> Result<()> {
        if self.rank < 1 {
            return Err(LoraError::Config(format!("rank must be at least 1, not {}", self.rank)));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(LoraError::Config(format!("alpha must be a positive number, not {}", self.alpha)));
        }
        if self.targets.is_empty() || self.targets.iter().any(|t| t.is_empty()) {
            return Err(LoraError::Config(format!("targets must be non-empty patterns, not {:?}", self.targets)));
        }
        Ok(())
    }
}

/// The DiT's layers SANA-SR adapts by default: the four projections of the linear self-attention (`attn1`) and
/// of the cross-attention (`attn2`), and the two 1×1 convolutions of the Mix-FFN. The Mix-FFN's 3×3 depthwise
/// convolution is not adapted (see [`with_adapters`]).
pub fn default_targets() -> Vec<String> {
    let attention = ["attn1", "attn2"]
        .into_iter()
        .flat_map(|attn| ["to_q", "to_k", "to_v", "to_out.0"].into_iter().map(move |proj| format!("{attn}.{proj}")));
    attention.chain(["ff.conv_inverted".to_string(), "ff.conv_point".to_string()]).collect()
}

/// The low-rank update of one [`Layer`](super::Layer): `scale · B(A(x))`, added to the layer's output.
#[derive(Debug)]
pub struct LoraAdapter {
    /// `[rank, in]`, or for a convolution `[rank, in, k, k]` applied with the layer's stride and padding.
    pub a: Tensor,
    /// `[out, rank]`, or `[out, rank, 1, 1]` for a convolution; zero when created.
    pub b: Tensor,
    /// `alpha / rank`.
    pub scale: f64,
}

impl LoraAdapter {
    /// The factors of a layer whose weight has `shape`, under `p`'s `lora_A`/`lora_B` modules (and, for an
    /// expert's adapter, under the adapter's `name` inside them), made by `var`.
    fn new(
        p: &nn::Path,
        name: Option<&str>,
        shape: &[i64],
        (rank, scale): (i64, f64),
        var: impl Fn(&nn::Path, &str, &[i64], nn::Init) -> Tensor,
    ) -> Self {
        let module = |module: &str| match name {
            Some(name) => p / module / name,
            None => p / module,
        };
        let mut a_shape = shape.to_vec();
        a_shape[0] = rank;
        let mut b_shape = vec![shape[0], rank];
        b_shape.resize(shape.len(), 1);
        let a = var(&module(A_MODULE), "weight", &a_shape, A_INIT);
        let b = var(&module(B_MODULE), "weight", &b_shape, nn::Init::Const(0.0));
        Self { a, b, scale }
    }

    /// `scale · B(A(x))` for the layer's operation `op` (never a grouped convolution), with A and B passed
    /// through `cast` as the layer's own weight is.
    pub(crate) fn forward(&self, x: &Tensor, op: Op, cast: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let (a, b) = (cast(&self.a), cast(&self.b));
        let h = match op {
            Op::Linear => x.linear::<Tensor>(&a, None),
            Op::Conv2d { stride, padding, .. } => {
                x.conv2d::<Tensor>(&a, None, [stride, stride], [padding, padding], [1, 1], 1)
            }
        };
        cost::record_product(&h, self.a.size()[1..].iter().product());
        let y = match op {
            Op::Linear => (h * self.scale).linear::<Tensor>(&b, None),
            Op::Conv2d { .. } => (h * self.scale).conv2d::<Tensor>(&b, None, [1, 1], [0, 0], [1, 1], 1),
        };
        cost::record_product(&y, self.b.size()[1]);
        y
    }

    fn shallow_clone(&self) -> Self {
        Self { a: self.a.shallow_clone(), b: self.b.shallow_clone(), scale: self.scale }
    }
}

/// One layer [`with_adapters`] attached an adapter to; its tensors are the network's own (shallow clones).
#[derive(Debug)]
pub struct AdaptedLayer {
    /// The layer's variable path, e.g. `transformer_blocks.0.attn1.to_q`.
    pub path: String,
    /// The layer's base weight.
    pub weight: Tensor,
    pub adapter: LoraAdapter,
}

/// The adapters attached by one [`with_adapters`] call, in the order the layers were built.
#[derive(Debug)]
pub struct Adapters {
    layers: Vec<AdaptedLayer>,
}

impl Adapters {
    pub fn layers(&self) -> &[AdaptedLayer] {
        &self.layers
    }

    /// Folds every adapter into its base weight, `W += alpha/rank · B·A` (for a convolution B·A is the
    /// `[out, in·k·k]` product reshaped to the kernel: a 1×1 conv after a k×k conv is one k×k conv), computed in
    /// float32, then zeroes B. The network computes what it computed before, its store saves as a plain base
    /// checkpoint (which never holds adapters), and the zeroed adapters may train on from the merged weights.
    pub fn merge(&self) {
        no_grad(|| {
            for layer in &self.layers {
                let LoraAdapter { a, b, scale } = &layer.adapter;
                let update = b.flatten(1, -1).to_kind(Kind::Float).mm(&a.flatten(1, -1).to_kind(Kind::Float)) * *scale;
                let merged = layer.weight.to_kind(Kind::Float) + update.reshape(layer.weight.size());
                layer.weight.shallow_clone().copy_(&merged);
                let _ = b.shallow_clone().zero_();
            }
        })
    }
}

/// What a [`with_adapters`] (or [`with_expert_adapters`]) call attaches, and what it attached so far.
struct Plan {
    targets: Vec<Target>,
    /// Per target, whether it selected a layer.
    used: Vec<bool>,
    rank: i64,
    scale: f64,
    adapted: Vec<AdaptedLayer>,
}

impl Plan {
    fn new(config: &LoraConfig) -> Self {
        Self {
            targets: config.targets.iter().map(|t| Target::new(t)).collect(),
            used: vec![false; config.targets.len()],
            rank: config.rank,
            scale: config.scale(),
            adapted: Vec::new(),
        }
    }

    /// Whether the plan adapts the layer at `path` built for `op`, noting which targets selected it.
    fn selects(&mut self, path: &str, op: Op) -> bool {
        if matches!(op, Op::Conv2d { groups, .. } if groups != 1) {
            return false;
        }
        let mut selected = false;
        for (target, used) in self.targets.iter().zip(self.used.iter_mut()) {
            if target.matches(path) {
                *used = true;
                selected = true;
            }
        }
        selected
    }

    /// The patterns of `config` (whose plan this is) that selected no layer, as an error.
    fn check_used(&self, config: &LoraConfig) -> Result<()> {
        let unmatched: Vec<String> =
            config.targets.iter().zip(&self.used).filter(|(_, &used)| !used).map(|(t, _)| t.clone()).collect();
        match unmatched.is_empty() {
            true => Ok(()),
            false => Err(LoraError::UnmatchedTargets { patterns: unmatched }),
        }
    }
}

/// A plan in force and the number of experts it gives each selected layer (`None`: one plain adapter).
type Slot = RefCell<Option<(Plan, Option<usize>)>>;

thread_local! {
    /// The plan of [`with_adapters`]: adapters that train and then merge.
    static PLAN: Slot = const { RefCell::new(None) };
    /// The plan of [`with_expert_adapters`]: adapters that are part of the model.
    static EXPERT_PLAN: Slot = const { RefCell::new(None) };
    /// Whose adapters layers with expert adapters add ([`with_active_expert`]).
    static ACTIVE_EXPERT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Builds a network with `build` while attaching LoRA adapters, as `config` says, to the `Layer`s built
/// inside it on this thread (the plan is thread-local: layers built on other threads get none). Returns what
/// `build` returned and the adapters; `build`'s own error comes first, then an error if some target pattern
/// selected no layer. `build` may load a checkpoint, e.g. `Pretrained::from_pretrained`: checkpoints hold base
/// weights only and leave the fresh adapters as they are.
///
/// Grouped and depthwise convolutions are never adapted: B·A is a dense kernel that connects every input
/// channel to every output channel, which a grouped weight has no entries for, so the update could not be
/// merged; and a depthwise kernel has only k·k weights per channel, nothing a low rank would save. A target
/// that selects only such layers is therefore an unmatched target.
pub fn with_adapters<T, E: From<LoraError>>(
    config: &LoraConfig,
    build: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<(T, Adapters), E> {
    let (built, plan) = run_plan(&PLAN, config, None, build)?;
    Ok((built, Adapters { layers: plan.adapted }))
}

/// Builds a network with `build` while giving each `Layer` that `config` selects `count` adapters of its own,
/// one per expert: LinearSR's LoRA experts, adapter sets on one shared network. Expert k's factors are named
/// `<layer>.lora_A.expert_{k}.weight` (PEFT's name for an adapter inside a module that holds several), are
/// variables of the model like its weights (saved, loaded and counted with them) and start as every adapter
/// does, B at zero, so that every expert first computes what the shared network does. A layer adds the
/// active expert's update ([`with_active_expert`]). Such a build may run inside a [`with_adapters`] call
/// (its adapters then train on top), not inside another of its kind.
pub fn with_expert_adapters<T, E: From<LoraError>>(
    config: &LoraConfig,
    count: usize,
    build: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    if count < 1 {
        return Err(LoraError::Config("expert adapters need at least one expert".into()).into());
    }
    Ok(run_plan(&EXPERT_PLAN, config, Some(count), build)?.0)
}

/// Runs `build` with `config`'s plan installed in `slot`; what it built and the plan as it ended, after
/// checking that every target selected a layer.
fn run_plan<T, E: From<LoraError>>(
    slot: &'static LocalKey<Slot>,
    config: &LoraConfig,
    experts: Option<usize>,
    build: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<(T, Plan), E> {
    config.validate()?;
    let guard = PlanGuard::install(slot, (Plan::new(config), experts))?;
    let built = build();
    let plan = guard.finish();
    let built = built?;
    plan.check_used(config)?;
    Ok((built, plan))
}

/// Runs `f` with the layers that hold expert adapters adding expert `k`'s update, then restores the previous
/// choice, also when `f` panics.
pub fn with_active_expert<T>(k: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE_EXPERT.with(|e| e.set(self.0));
        }
    }
    let _restore = Restore(ACTIVE_EXPERT.with(|e| e.replace(Some(k))));
    f()
}

/// The expert whose adapters run, inside [`with_active_expert`].
pub(crate) fn active_expert() -> Option<usize> {
    ACTIVE_EXPERT.with(Cell::get)
}

/// Holds a thread's plan for one [`run_plan`] call and removes it even if `build` panics.
struct PlanGuard(&'static LocalKey<Slot>);

impl PlanGuard {
    fn install(slot: &'static LocalKey<Slot>, plan: (Plan, Option<usize>)) -> Result<Self> {
        slot.with_borrow_mut(|installed| match installed {
            Some(_) => Err(LoraError::Nested),
            None => {
                *installed = Some(plan);
                Ok(PlanGuard(slot))
            }
        })
    }

    fn finish(self) -> Plan {
        self.0.with_borrow_mut(Option::take).expect("the plan stays installed until its guard finishes").0
    }
}

impl Drop for PlanGuard {
    fn drop(&mut self) {
        self.0.with_borrow_mut(Option::take);
    }
}

/// The adapter of the layer at `p` (whose base `weight` was just created for `op`), if a [`with_adapters`]
/// plan in force on this thread selects it; called by the `Layer` constructors.
pub(crate) fn attach(p: &nn::Path, weight: &Tensor, op: Op) -> Option<LoraAdapter> {
    PLAN.with_borrow_mut(|plan| {
        let (plan, _) = plan.as_mut()?;
        // Counting parameters (the weight is a placeholder): adapters that train are not part of the model.
        if super::variables::counting() {
            return None;
        }
        let path = layer_path(p);
        if !plan.selects(&path, op) {
            return None;
        }
        let adapter = LoraAdapter::new(p, None, &weight.size(), (plan.rank, plan.scale), |p, name, shape, init| {
            p.var(name, shape, init)
        });
        plan.adapted.push(AdaptedLayer { path, weight: weight.shallow_clone(), adapter: adapter.shallow_clone() });
        Some(adapter)
    })
}

/// The expert adapters of the layer at `p` (whose weight has `shape`, for `op`), if a
/// [`with_expert_adapters`] plan in force on this thread selects it; called by the `Layer` constructors.
/// They are variables of the model ([`super::variables::var`]), checked against stored shapes and counted.
pub(crate) fn attach_experts(p: &nn::Path, shape: &[i64], op: Op) -> Vec<LoraAdapter> {
    EXPERT_PLAN.with_borrow_mut(|slot| {
        let Some((plan, Some(count))) = slot.as_mut() else { return Vec::new() };
        if !plan.selects(&layer_path(p), op) {
            return Vec::new();
        }
        (0..*count)
            .map(|k| LoraAdapter::new(p, Some(&expert_name(k)), shape, (plan.rank, plan.scale), super::variables::var))
            .collect()
    })
}

fn layer_path(p: &nn::Path) -> String {
    p.components().collect::<Vec<_>>().join(".")
}

/// The name of expert `k`'s adapter inside a layer's `lora_A`/`lora_B` modules.
fn expert_name(k: usize) -> String {
    format!("expert_{k}")
}

/// The expert whose adapter a variable is a factor of (`….lora_A.expert_{k}.weight`), if it is one.
pub fn expert_of_variable(name: &str) -> Option<usize> {
    let rest = name.strip_suffix(".weight")?;
    let (rest, adapter) = rest.rsplit_once('.')?;
    let k = adapter.strip_prefix("expert_")?.parse().ok()?;
    let (_, module) = rest.rsplit_once('.')?;
    [A_MODULE, B_MODULE].contains(&module).then_some(k)
}

/// A target pattern of [`LoraConfig`], with a trailing `.` already turned into `.*`.
struct Target {
    glob: String,
}

impl Target {
    fn new(pattern: &str) -> Self {
        let glob = if pattern.ends_with('.') { format!("{pattern}*") } else { pattern.to_string() };
        Self { glob }
    }

    /// Whether the pattern matches the whole of `path` from one of its dot-separated components on.
    fn matches(&self, path: &str) -> bool {
        let mut starts = std::iter::once(0).chain(path.match_indices('.').map(|(i, _)| i + 1));
        starts.any(|start| wildcard_match(self.glob.as_bytes(), &path.as_bytes()[start..]))
    }
}

/// Whether `text` matches `pattern` entirely, `*` standing for any run of bytes: the greedy scan that, on a
/// mismatch, lets the last `*` absorb one more byte (linear in practice, quadratic at worst).
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and where the text resumed the last time.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            p += 1;
            backtrack = Some((p, t));
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((resume_p, resume_t)) = backtrack {
            p = resume_p;
            t = resume_t + 1;
            backtrack = Some((resume_p, t));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether a variable name is a LoRA factor (`….lora_A.weight` or `….lora_B.weight`). Base checkpoints never
/// hold such names: diffusers modules have no `lora_A`/`lora_B` children.
pub fn is_adapter_variable(name: &str) -> bool {
    [A_MODULE, B_MODULE].iter().any(|module| {
        name.strip_suffix(".weight").and_then(|rest| rest.strip_suffix(module)).is_some_and(|rest| rest.ends_with('.'))
    })
}

/// Which variables of a store an optimizer may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainable {
    /// The adapters only: every other variable gets `requires_grad(false)`, so it has no gradient and
    /// libtorch's optimizers skip it (weight decay included), even when built over all of the store.
    Adapters,
    /// Every trainable variable of the store, base and adapters: full fine-tuning.
    All,
}

/// Makes the adapters only, or every parameter, of `vs` trainable. `Adapters` on a store without adapters
/// is an error, as it would train nothing.
pub fn set_trainable(vs: &nn::VarStore, which: Trainable) -> Result<()> {
    let variables = vs.variables_.lock().expect("the var store's lock is not poisoned");
    match which {
        Trainable::Adapters => {
            if !variables.named_variables.keys().any(|name| is_adapter_variable(name)) {
                return Err(LoraError::NoAdapters);
            }
            for (name, tensor) in &variables.named_variables {
                let _ = tensor.set_requires_grad(is_adapter_variable(name));
            }
        }
        Trainable::All => {
            for var in &variables.trainable_variables {
                let _ = var.tensor.set_requires_grad(true);
            }
        }
    }
    Ok(())
}

fn adapter_variables(vs: &nn::VarStore) -> Result<HashMap<String, Tensor>> {
    let adapters: HashMap<String, Tensor> =
        vs.variables().into_iter().filter(|(name, _)| is_adapter_variable(name)).collect();
    if adapters.is_empty() {
        return Err(LoraError::NoAdapters);
    }
    Ok(adapters)
}

/// Writes the adapters of `vs`, and nothing else, as one safetensors file in `kind` (F32, F16 or BF16).
pub fn save_adapters(vs: &nn::VarStore, path: &Path, kind: Kind) -> Result<()> {
    Ok(checkpoint::save_variables(adapter_variables(vs)?, path, kind, HashMap::new())?)
}

/// Loads an adapter file (or a model folder or index, as [`checkpoint::load_into`]) into the adapters of
/// `vs`, strictly: the file must hold exactly the store's adapters, with their shapes, and nothing else.
pub fn load_adapters(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let adapters = adapter_variables(vs)?;
    let tensors = checkpoint::read_tensors(&checkpoint::weight_files(path)?)?;
    Ok(checkpoint::copy_into_variables(adapters, tensors)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_matches(pattern: &str, path: &str) -> bool {
        Target::new(pattern).matches(path)
    }

    #[test]
    fn targets_match_whole_components_from_the_end() {
        let q = "transformer_blocks.0.attn1.to_q";
        assert!(target_matches("attn1.to_q", q));
        assert!(target_matches("to_q", q));
        assert!(target_matches(q, q));
        assert!(!target_matches("attn1.to_q", "transformer_blocks.0.attn1.to_qk"));
        assert!(!target_matches("attn1.to_q", "transformer_blocks.0.xattn1.to_q"));
        assert!(!target_matches("attn1", q), "a module name selects nothing by itself: its layers need `attn1.*`");
        assert!(target_matches("attn2.*", "transformer_blocks.2.attn2.to_out.0"));
        assert!(!target_matches("attn2.*", "transformer_blocks.2.attn1.to_out.0"));
        assert!(target_matches("attn*.to_v", "transformer_blocks.2.attn2.to_v"));
        assert!(target_matches("transformer_blocks.1.*", "transformer_blocks.1.ff.conv_point"));
        assert!(!target_matches("transformer_blocks.1.*", "transformer_blocks.11.ff.conv_point"));
        assert!(target_matches("encoder.", "encoder.down_blocks.1.0.attn.to_q"));
        assert!(target_matches("encoder.", "vae.encoder.conv_in"));
        assert!(!target_matches("encoder.", "decoder.conv_in"));
        assert!(!target_matches("encoder.", "encoder"));
    }

    #[test]
    fn wildcards_backtrack() {
        assert!(wildcard_match(b"*a*b", b"xaxxab"));
        assert!(wildcard_match(b"a**", b"a"));
        assert!(!wildcard_match(b"*a*b", b"xaxxa"));
        assert!(!wildcard_match(b"", b"a"));
        assert!(wildcard_match(b"", b""));
    }

    #[test]
    fn adapter_variables_are_told_apart_by_name() {
        assert!(is_adapter_variable("transformer_blocks.0.attn1.to_q.lora_A.weight"));
        assert!(is_adapter_variable("encoder.conv_in.lora_B.weight"));
        assert!(!is_adapter_variable("transformer_blocks.0.attn1.to_q.weight"));
        assert!(!is_adapter_variable("x.lora_A.bias"));
        assert!(!is_adapter_variable("x.my_lora_A.weight"));
        assert!(!is_adapter_variable("lora_A.weight"), "an adapter always belongs to a layer");
        assert!(!is_adapter_variable("x.to_q.lora_A.expert_0.weight"), "experts' adapters are the model's own");
        assert_eq!(expert_of_variable("transformer.transformer_blocks.0.attn1.to_q.lora_A.expert_0.weight"), Some(0));
        assert_eq!(expert_of_variable("x.conv_point.lora_B.expert_12.weight"), Some(12));
        assert_eq!(expert_of_variable("x.to_q.lora_A.weight"), None);
        assert_eq!(expert_of_variable("x.to_q.lora_C.expert_1.weight"), None);
        assert_eq!(expert_of_variable("x.to_q.lora_A.expert_x.weight"), None);
        assert_eq!(expert_of_variable("experts.1.to_q.weight"), None);
    }

    #[test]
    fn default_targets_are_the_dit_attention_and_mix_ffn_projections() {
        let targets = default_targets();
        assert_eq!(targets.len(), 10);
        for t in ["attn1.to_q", "attn1.to_out.0", "attn2.to_k", "attn2.to_v", "ff.conv_inverted", "ff.conv_point"] {
            assert!(targets.iter().any(|x| x == t), "{t}");
        }
    }

    #[test]
    fn configs_read_from_json_with_default_targets_and_reject_bad_values() {
        let config: LoraConfig = serde_json::from_str(r#"{"rank": 8, "alpha": 16}"#).unwrap();
        assert_eq!(config, LoraConfig { rank: 8, alpha: 16.0, targets: default_targets() });
        assert_eq!(config.scale(), 2.0);
        assert!(serde_json::from_str::<LoraConfig>(r#"{"rank": 8, "alpha": 8, "target": ["x"]}"#).is_err());
        for bad in [
            LoraConfig { rank: 0, ..config.clone() },
            LoraConfig { alpha: f64::NAN, ..config.clone() },
            LoraConfig { targets: vec![], ..config.clone() },
            LoraConfig { targets: vec!["attn1.to_q".into(), String::new()], ..config.clone() },
        ] {
            let err = with_adapters(&bad, || Ok::<_, LoraError>(())).unwrap_err();
            assert!(matches!(err, LoraError::Config(_)), "{err}");
        }
    }
}
