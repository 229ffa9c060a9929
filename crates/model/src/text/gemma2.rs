//! Gemma-2, SANA's text encoder: transformers `Gemma2Model` (`models/gemma2/modeling_gemma2.py`), its last
//! hidden state out, with its parameter names as checkpoint keys.
//!
//! Data flow: token embedding × √hidden → N decoder layers (RMSNorm → grouped-query attention with rotary
//! positions, soft-capped logits and, on every other layer, a sliding causal window → RMSNorm, residual;
//! RMSNorm → GeGLU MLP → RMSNorm, residual) → final RMSNorm. Gemma's RMSNorm scales by (1 + w).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{nn, Device, Kind, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointError, Pretrained};
use crate::cost;
use crate::layers::{variables, Layer};

#[derive(Debug, thiserror::Error)]
pub enum Gemma2Error {
    #[error("unsupported Gemma2 config: {0}")]
    Config(String),
    #[error("bad input to Gemma2Model: {0}")]
    Input(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

type Result<T> = std::result::Result<T, Gemma2Error>;

/// Whether a layer attends to every earlier token or to the last `sliding_window` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    FullAttention,
    SlidingAttention,
}

/// transformers' `rope_parameters`; only the default (unscaled) rotary embedding exists in Gemma-2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default = "default_rope_type")]
    pub rope_type: String,
    pub rope_theta: f64,
}

fn default_rope_type() -> String {
    "default".into()
}

/// transformers' `Gemma2Config` (the fields the encoder reads; others in a `config.json` are ignored). The
/// defaults are the reference's, which are gemma-2-2b's sizes. Both layouts of the rotary base are read:
/// `rope_theta` at the top (released files) and `rope_parameters` (transformers 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gemma2Config {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub num_key_value_heads: i64,
    pub head_dim: i64,
    pub hidden_activation: String,
    pub rms_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    pub attention_bias: bool,
    pub query_pre_attn_scalar: f64,
    pub sliding_window: Option<i64>,
    pub layer_types: Option<Vec<LayerType>>,
    pub attn_logit_softcapping: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    pub use_bidirectional_attention: Option<bool>,
}

impl Default for Gemma2Config {
    fn default() -> Self {
        Self {
            vocab_size: 256_000,
            hidden_size: 2304,
            intermediate_size: 9216,
            num_hidden_layers: 26,
            num_attention_heads: 8,
            num_key_value_heads: 4,
            head_dim: 256,
            hidden_activation: "gelu_pytorch_tanh".into(),
            rms_norm_eps: 1e-6,
            pad_token_id: Some(0),
            attention_bias: false,
            query_pre_attn_scalar: 256.0,
            sliding_window: Some(4096),
            layer_types: None,
            attn_logit_softcapping: Some(50.0),
            rope_theta: None,
            rope_parameters: None,
            use_bidirectional_attention: None,
        }
    }
}

impl Gemma2Config {
    /// Layer `i`'s attention: as listed, else the reference's alternation (sliding on even layers).
    pub fn layer_type(&self, i: usize) -> LayerType {
        match &self.layer_types {
            Some(types) => types[i],
            None if i.is_multiple_of(2) => LayerType::SlidingAttention,
            None => LayerType::FullAttention,
        }
    }

    /// The rotary base: `rope_parameters` first (transformers 5 moves the legacy key there), then the
    /// legacy `rope_theta`, then the reference's default.
    pub fn rope_base(&self) -> f64 {
        match (&self.rope_parameters, self.rope_theta) {
            (Some(rope), _) => rope.rope_theta,
            (None, Some(theta)) => theta,
            (None, None) => 10_000.0,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Gemma2Error::Config(what));
        variables::check_sizes(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ])
        .map_err(Gemma2Error::Config)?;
        variables::check_depths(&[("num_hidden_layers", self.num_hidden_layers)]).map_err(Gemma2Error::Config)?;
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim % 2 != 0 {
            return bad(format!("head_dim {} must be even (rotary embedding)", self.head_dim));
        }
        if self.hidden_activation != "gelu_pytorch_tanh" {
            return bad(format!("hidden_activation `{}` (only `gelu_pytorch_tanh`)", self.hidden_activation));
        }
        if let Some(rope) = &self.rope_parameters {
            if rope.rope_type != "default" {
                return bad(format!("rope_type `{}` (only `default`)", rope.rope_type));
            }
        }
        if self.use_bidirectional_attention == Some(true) {
            return bad("use_bidirectional_attention (the text encoder is causal)".into());
        }
        if let Some(types) = &self.layer_types {
            if types.len() as i64 != self.num_hidden_layers {
                return bad(format!("{} layer_types for {} layers", types.len(), self.num_hidden_layers));
            }
        }
        let sliding = (0..self.num_hidden_layers as usize).any(|i| self.layer_type(i) == LayerType::SlidingAttention);
        if sliding && !matches!(self.sliding_window, Some(w) if w >= 1) {
            return bad(format!("sliding layers need a sliding_window of at least 1, got {:?}", self.sliding_window));
        }
        // A scale of infinity would zero the logits (or make the soft cap NaN); NaN fails both tests.
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.query_pre_attn_scalar) || self.attn_logit_softcapping.is_some_and(|c| !positive(c)) {
            return bad("query_pre_attn_scalar and attn_logit_softcapping must be positive and finite".into());
        }
        Ok(())
    }
}

/// Gemma's RMSNorm: in float32, times (1 + w), back to the input's kind.
#[derive(Debug)]
struct GemmaRmsNorm {
    weight: Tensor,
    eps: f64,
}

impl GemmaRmsNorm {
    fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        Self { weight: variables::var(&p, "weight", &[dim], nn::Init::Const(0.0)), eps }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let xf = x.to_kind(Kind::Float);
        let normed = &xf * (xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float) + self.eps).rsqrt();
        (normed * (self.weight.to_kind(Kind::Float) + 1.0)).to_kind(x.kind())
    }
}

/// Rotary cos/sin `[1, 1, L, head_dim]` for positions 0..L, computed in float32 as the reference does.
fn rotary(length: i64, head_dim: i64, base: f64, device: Device) -> (Tensor, Tensor) {
    let exponent = Tensor::arange_start_step(0, head_dim, 2, (Kind::Float, device)) / head_dim as f64;
    let inv_freq = Tensor::pow_scalar(base, &exponent).reciprocal();
    let positions = Tensor::arange(length, (Kind::Float, device));
    let freqs = positions.unsqueeze(-1) * inv_freq.unsqueeze(0);
    let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(0).unsqueeze(0);
    (emb.cos(), emb.sin())
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    Tensor::cat(&[&x.narrow(3, half, half).neg(), &x.narrow(3, 0, half)], 3)
}

/// The additive attention bias `[B, 1, L, L]` of one layer type: 0 where query i may see key j (j ≤ i, j not
/// padding, and within the window if sliding), float32's lowest value elsewhere, as transformers' eager mask.
fn attention_bias(mask: &Tensor, window: Option<i64>) -> Tensor {
    let length = mask.size()[1];
    let device = mask.device();
    let query = Tensor::arange(length, (Kind::Int64, device)).unsqueeze(1);
    let key = Tensor::arange(length, (Kind::Int64, device)).unsqueeze(0);
    let mut allowed = key.le_tensor(&query);
    if let Some(window) = window {
        allowed = allowed.logical_and(&key.gt_tensor(&(&query - window)));
    }
    let allowed = allowed.unsqueeze(0).logical_and(&mask.ne(0).unsqueeze(1)).unsqueeze(1);
    Tensor::zeros(allowed.size(), (Kind::Float, device)).masked_fill(&allowed.logical_not(), f32::MIN as f64)
}

#[derive(Debug)]
struct Attention {
    q_proj: Layer,
    k_proj: Layer,
    v_proj: Layer,
    o_proj: Layer,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    scaling: f64,
    softcap: Option<f64>,
}

impl Attention {
    fn new(p: nn::Path, cfg: &Gemma2Config) -> Self {
        let (dim, hd, bias) = (cfg.hidden_size, cfg.head_dim, cfg.attention_bias);
        Self {
            q_proj: Layer::linear(&p / "q_proj", dim, cfg.num_attention_heads * hd, bias),
            k_proj: Layer::linear(&p / "k_proj", dim, cfg.num_key_value_heads * hd, bias),
            v_proj: Layer::linear(&p / "v_proj", dim, cfg.num_key_value_heads * hd, bias),
            o_proj: Layer::linear(&p / "o_proj", cfg.num_attention_heads * hd, dim, bias),
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
            scaling: cfg.query_pre_attn_scalar.powf(-0.5),
            softcap: cfg.attn_logit_softcapping,
        }
    }

    /// `x` `[B, L, D]`; `rope` the cos/sin of [`rotary`]; `bias` of [`attention_bias`].
    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), bias: &Tensor) -> Tensor {
        let (batch, length) = (x.size()[0], x.size()[1]);
        let heads_of = |t: Tensor, heads: i64| t.view([batch, length, heads, self.head_dim]).transpose(1, 2);
        let (cos, sin) = (rope.0.to_kind(x.kind()), rope.1.to_kind(x.kind()));
        let rotate = |t: Tensor| &t * &cos + rotate_half(&t) * &sin;
        let q = rotate(heads_of(self.q_proj.forward(x), self.heads));
        let k = rotate(heads_of(self.k_proj.forward(x), self.kv_heads));
        let v = heads_of(self.v_proj.forward(x), self.kv_heads);
        // Grouped-query attention: each key/value head serves `heads / kv_heads` query heads in a row.
        let repeat = |t: Tensor| {
            let groups = self.heads / self.kv_heads;
            t.unsqueeze(2).expand([batch, self.kv_heads, groups, length, self.head_dim], false).reshape([
                batch,
                self.heads,
                length,
                self.head_dim,
            ])
        };
        let (k, v) = (repeat(k), repeat(v));
        let mut logits = q.matmul(&k.transpose(2, 3)) * self.scaling;
        cost::record_product(&logits, self.head_dim);
        if let Some(cap) = self.softcap {
            logits = (logits / cap).tanh() * cap;
        }
        let weights = (logits + bias).softmax(-1, Kind::Float).to_kind(q.kind());
        let out = weights.matmul(&v);
        cost::record_product(&out, length);
        let out = out.transpose(1, 2).reshape([batch, length, self.heads * self.head_dim]);
        self.o_proj.forward(&out)
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Layer,
    up_proj: Layer,
    down_proj: Layer,
}

impl Mlp {
    fn new(p: nn::Path, dim: i64, hidden: i64) -> Self {
        Self {
            gate_proj: Layer::linear(&p / "gate_proj", dim, hidden, false),
            up_proj: Layer::linear(&p / "up_proj", dim, hidden, false),
            down_proj: Layer::linear(&p / "down_proj", hidden, dim, false),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.down_proj.forward(&(self.gate_proj.forward(x).gelu("tanh") * self.up_proj.forward(x)))
    }
}

#[derive(Debug)]
struct DecoderLayer {
    input_layernorm: GemmaRmsNorm,
    self_attn: Attention,
    post_attention_layernorm: GemmaRmsNorm,
    pre_feedforward_layernorm: GemmaRmsNorm,
    mlp: Mlp,
    post_feedforward_layernorm: GemmaRmsNorm,
    layer_type: LayerType,
}

impl DecoderLayer {
    fn new(p: nn::Path, cfg: &Gemma2Config, layer_type: LayerType) -> Self {
        let norm = |name: &str| GemmaRmsNorm::new(&p / name, cfg.hidden_size, cfg.rms_norm_eps);
        Self {
            input_layernorm: norm("input_layernorm"),
            self_attn: Attention::new(&p / "self_attn", cfg),
            post_attention_layernorm: norm("post_attention_layernorm"),
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm"),
            mlp: Mlp::new(&p / "mlp", cfg.hidden_size, cfg.intermediate_size),
            post_feedforward_layernorm: norm("post_feedforward_layernorm"),
            layer_type,
        }
    }

    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), bias: &Tensor) -> Tensor {
        let attended = self.self_attn.forward(&self.input_layernorm.forward(x), rope, bias);
        let x = x + self.post_attention_layernorm.forward(&attended);
        let fed = self.mlp.forward(&self.pre_feedforward_layernorm.forward(&x));
        &x + self.post_feedforward_layernorm.forward(&fed)
    }
}

/// transformers `Gemma2Model`: token ids in, the final norm's hidden states out.
#[derive(Debug)]
pub struct Gemma2Model {
    pub config: Gemma2Config,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: GemmaRmsNorm,
}

impl Pretrained for Gemma2Model {
    type Config = Gemma2Config;
    type Error = Gemma2Error;

    fn build(p: nn::Path, config: &Gemma2Config) -> Result<Self> {
        Self::new(p, config)
    }

    fn config(&self) -> &Gemma2Config {
        &self.config
    }

    /// A transformers folder of `Gemma2Model` or of the causal LM around it ([`EncoderWeights`]).
    fn from_pretrained(dir: &Path, device: Device) -> Result<(Self, nn::VarStore)> {
        let config: Gemma2Config = checkpoint::read_config(dir)?;
        let weights = EncoderWeights::open(dir)?;
        let vs = nn::VarStore::new(device);
        let model = variables::with_stored_shapes(weights.shapes()?, || Self::new(vs.root(), &config))?;
        checkpoint::copy_into(&vs, weights.tensors()?)?;
        Ok((model, vs))
    }
}

/// The weights of a transformers folder under the encoder's variable names: of `Gemma2Model`, or of the causal
/// LM around it (`gemma-2-2b-it` as released), whose `model.` prefix is dropped and whose output head (tied to
/// the embedding) is not needed.
pub struct EncoderWeights {
    files: Vec<PathBuf>,
    causal_lm: bool,
}

impl EncoderWeights {
    pub fn open(dir: &Path) -> Result<Self> {
        let files = checkpoint::weight_files(dir)?;
        let shapes = checkpoint::read_shapes(&files)?;
        let causal_lm = !shapes.is_empty() && shapes.keys().all(|k| k.starts_with("model.") || k == LM_HEAD);
        Ok(Self { files, causal_lm })
    }

    /// The stored shapes, read from the headers alone.
    pub fn shapes(&self) -> Result<checkpoint::Shapes> {
        Ok(checkpoint::read_shapes(&self.files)?.into_iter().filter_map(|(k, s)| Some((self.rename(k)?, s))).collect())
    }

    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(checkpoint::read_tensors(&self.files)?.into_iter().filter_map(|(k, t)| Some((self.rename(k)?, t))).collect())
    }

    fn rename(&self, key: String) -> Option<String> {
        match (self.causal_lm, key.strip_prefix("model.")) {
            (true, _) if key == LM_HEAD => None,
            (true, Some(name)) => Some(name.to_string()),
            _ => Some(key),
        }
    }
}

/// The causal LM's output head, which a text encoder does not use.
const LM_HEAD: &str = "lm_head.weight";

impl Gemma2Model {
    /// Builds the encoder's variables under `p`; the norms start at w = 0 (a scale of 1) as in the reference.
    pub fn new(p: nn::Path, config: &Gemma2Config) -> Result<Self> {
        config.check()?;
        let layers = (0..config.num_hidden_layers as usize)
            .map(|i| DecoderLayer::new(&p / "layers" / i, config, config.layer_type(i)))
            .collect();
        Ok(Self {
            config: config.clone(),
            embed_tokens: variables::var(
                &(&p / "embed_tokens"),
                "weight",
                &[config.vocab_size, config.hidden_size],
                nn::Init::Randn { mean: 0.0, stdev: 0.02 },
            ),
            layers,
            norm: GemmaRmsNorm::new(&p / "norm", config.hidden_size, config.rms_norm_eps),
        })
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.device()
    }

    /// `input_ids` `[B, L]` (int64) and `attention_mask` `[B, L]` (1 = token, 0 = padding) → `[B, L, hidden]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        Ok(self.stages(input_ids, attention_mask)?.pop().expect("the output is the last stage"))
    }

    /// What [`Self::forward`] computes on the way: the input of every layer (the scaled embedding first),
    /// then the output.
    pub fn stages(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Vec<Tensor>> {
        self.check_inputs(input_ids, attention_mask)?;
        let weight = &self.embed_tokens;
        // The scale is a tensor of the weights' kind in the reference: √2304 = 48 is exact, and in bfloat16
        // another width's root is rounded there first.
        let scale = Tensor::from((self.config.hidden_size as f64).sqrt() as f32).to_kind(weight.kind());
        let mut x = Tensor::embedding(weight, input_ids, -1, false, false) * scale.to_device(weight.device());
        let device = x.device();
        let rope = rotary(input_ids.size()[1], self.config.head_dim, self.config.rope_base(), device);
        let mask = attention_mask.to_device(device);
        let full = attention_bias(&mask, None);
        let sliding = attention_bias(&mask, self.config.sliding_window);
        let mut stages = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            let bias = match layer.layer_type {
                LayerType::FullAttention => &full,
                LayerType::SlidingAttention => &sliding,
            };
            stages.push(x.shallow_clone());
            x = layer.forward(&x, &rope, bias);
        }
        stages.push(self.norm.forward(&x));
        Ok(stages)
    }

    fn check_inputs(&self, ids: &Tensor, mask: &Tensor) -> Result<()> {
        let bad = |what: String| Err(Gemma2Error::Input(what));
        if ids.dim() != 2 || ids.kind() != Kind::Int64 {
            return bad(format!("input_ids must be [B, L] int64, got {:?} {:?}", ids.size(), ids.kind()));
        }
        if mask.size() != ids.size() {
            return bad(format!("attention_mask must be {:?} like input_ids, got {:?}", ids.size(), mask.size()));
        }
        if ids.numel() > 0 {
            let (low, high) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
            if low < 0 || high >= self.config.vocab_size {
                return bad(format!(
                    "token ids span {low}..={high}, outside the vocabulary of {}",
                    self.config.vocab_size
                ));
            }
        }
        Ok(())
    }
}
