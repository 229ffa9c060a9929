//! The one weight-carrying layer of sana-sr.
//!
//! Every linear and convolution of the DiT and of the DC-AE is a [`Layer`], so that LoRA adapters and
//! structured pruning have exactly one type to wrap: both act on `weight` (`[out, in]` or
//! `[out, in/groups, kh, kw]`) and `bias` the same way whatever the operation. The constructors attach a LoRA
//! adapter where a [`lora::with_adapters`] plan in force selects the layer's path.

use std::sync::Mutex;

use sana_sr_core::precision::{compute_kind, weights_cast_in_place};
use sana_sr_core::{nn, Kind, Tensor};

use super::lora::{self, LoraAdapter};
use super::variables;
use crate::cost;

/// What a [`Layer`] computes with its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `x @ W^T + b` over the last dimension (torch `nn.Linear`).
    Linear,
    /// A 2-D convolution over NCHW (torch `nn.Conv2d`, zero padding).
    Conv2d { stride: i64, padding: i64, groups: i64 },
}

/// Options of a convolution; `Default` is torch's `nn.Conv2d` default.
#[derive(Debug, Clone, Copy)]
pub struct ConvConfig {
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
    pub bias: bool,
}

impl Default for ConvConfig {
    fn default() -> Self {
        Self { stride: 1, padding: 0, groups: 1, bias: true }
    }
}

#[derive(Debug)]
pub struct Layer {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub op: Op,
    /// The low-rank update added to this layer's output, if a LoRA plan selected it when it was built.
    pub adapter: Option<LoraAdapter>,
    /// LinearSR's LoRA experts: one more update per expert, of which the active one is added
    /// ([`lora::with_expert_adapters`]); empty for most layers.
    pub experts: Vec<LoraAdapter>,
    /// The weight and the bias in the last compute kind they were cast to, while they do not train: inference
    /// under mixed precision casts them once, not at every call (for a 600 M-parameter DiT the per-call cast
    /// moves more memory than the bf16 products save; on a GPU each cast is one more kernel launch per layer).
    cast_weight: CastCache,
    cast_bias: CastCache,
}

/// One frozen variable's cast, kept while the variable is unchanged.
#[derive(Debug, Default)]
struct CastCache(Mutex<Option<Cast>>);

#[derive(Debug)]
struct Cast {
    kind: Kind,
    /// What tells that the variable is still the one that was cast: torch's version counter (bumped by every
    /// in-place write, a checkpoint load included) and the storage it points to (replaced by `set_data`).
    version: i64,
    data: usize,
    value: Tensor,
}

impl CastCache {
    /// `variable` in `kind`: cast at every call while it trains (the cast is part of the graph that takes its
    /// gradient back to float32), else cast once and kept until the variable changes; inside
    /// [`sana_sr_core::precision::with_weights_cast_in_place`] the variable itself becomes the cast one.
    fn get(&self, variable: &Tensor, kind: Kind) -> Tensor {
        if variable.requires_grad() {
            return variable.to_kind(kind);
        }
        let mut cast = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (version, data) = (variable.internal_version(), variable.data_ptr() as usize);
        let cached = cast.as_ref().filter(|c| (c.kind, c.version, c.data) == (kind, version, data));
        let convert = weights_cast_in_place() && variable.kind() != kind;
        let value = match cached {
            Some(c) if !convert => return c.value.shallow_clone(),
            Some(c) => c.value.shallow_clone(),
            None => variable.to_kind(kind),
        };
        if convert {
            // The variable (shared with the var store) now holds the cast values; its float32 storage is freed.
            variable.shallow_clone().set_data(&value);
        }
        let (version, data) = (variable.internal_version(), variable.data_ptr() as usize);
        *cast = Some(Cast { kind, version, data, value: value.shallow_clone() });
        value
    }
}

impl Layer {
    /// A linear layer, initialised as torch does: weight and bias uniform in ±1/sqrt(fan_in) (torch's
    /// `kaiming_uniform_(a=sqrt(5))`; tch's own default uses the ReLU gain, a bound sqrt(6) times larger,
    /// which matters when a network trains from scratch).
    pub fn linear(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Self {
        let weight = variables::var(&p, "weight", &[out_dim, in_dim], torch_uniform(in_dim));
        let bias = bias.then(|| variables::var(&p, "bias", &[out_dim], torch_uniform(in_dim)));
        let adapter = lora::attach(&p, &weight, Op::Linear);
        let experts = lora::attach_experts(&p, &[out_dim, in_dim], Op::Linear);
        Self::new(weight, bias, Op::Linear, adapter, experts)
    }

    /// A square-kernel convolution.
    pub fn conv2d(p: nn::Path, in_ch: i64, out_ch: i64, kernel: i64, cfg: ConvConfig) -> Self {
        let fan_in = in_ch / cfg.groups * kernel * kernel;
        let shape = [out_ch, in_ch / cfg.groups, kernel, kernel];
        let weight = variables::var(&p, "weight", &shape, torch_uniform(fan_in));
        let bias = cfg.bias.then(|| variables::var(&p, "bias", &[out_ch], torch_uniform(fan_in)));
        let op = Op::Conv2d { stride: cfg.stride, padding: cfg.padding, groups: cfg.groups };
        let adapter = lora::attach(&p, &weight, op);
        let experts = lora::attach_experts(&p, &shape, op);
        Self::new(weight, bias, op, adapter, experts)
    }

    fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        op: Op,
        adapter: Option<LoraAdapter>,
        experts: Vec<LoraAdapter>,
    ) -> Self {
        Self { weight, bias, op, adapter, experts, cast_weight: CastCache::default(), cast_bias: CastCache::default() }
    }

    /// A `kernel`×`kernel` convolution with stride 1 and "same" zero padding, the most common one here.
    pub fn conv2d_same(p: nn::Path, in_ch: i64, out_ch: i64, kernel: i64, bias: bool) -> Self {
        Self::conv2d(p, in_ch, out_ch, kernel, ConvConfig { padding: kernel / 2, bias, ..Default::default() })
    }

    /// The layer's operation; under mixed precision ([`sana_sr_core::precision`]) in the compute kind.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = compute_kind();
        let cast = |t: &Tensor| match kind {
            Some(kind) => t.to_kind(kind),
            None => t.shallow_clone(),
        };
        let (weight, bias) = match kind {
            Some(kind) => (
                self.cast_weight.get(&self.weight, kind),
                self.bias.as_ref().map(|bias| self.cast_bias.get(bias, kind)),
            ),
            None => (self.weight.shallow_clone(), self.bias.as_ref().map(Tensor::shallow_clone)),
        };
        let x = cast(x);
        let y = match self.op {
            Op::Linear => x.linear(&weight, bias.as_ref()),
            Op::Conv2d { stride, padding, groups } => {
                x.conv2d(&weight, bias.as_ref(), [stride, stride], [padding, padding], [1, 1], groups)
            }
        };
        // Every output element reduces over the rest of the weight's shape (in, or in/groups × k × k).
        cost::record_product(&y, self.weight.size()[1..].iter().product());
        let y = match &self.adapter {
            None => y,
            Some(adapter) => y + adapter.forward(&x, self.op, cast),
        };
        if self.experts.is_empty() {
            return y;
        }
        let k = lora::active_expert().expect("a layer with expert adapters runs inside `lora::with_active_expert`");
        let expert = self.experts.get(k).unwrap_or_else(|| panic!("expert {k} of {}", self.experts.len()));
        y + expert.forward(&x, self.op, cast)
    }
}

impl nn::Module for Layer {
    fn forward(&self, xs: &Tensor) -> Tensor {
        Layer::forward(self, xs)
    }
}

fn torch_uniform(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::{Device, Kind};

    #[test]
    fn weights_start_as_torch_initialises_them() {
        // torch: `nn.Conv2d(16, 8, 3)` weights are U(±1/sqrt(16 * 9)) = U(±1/12).
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = Layer::conv2d(vs.root() / "c", 16, 8, 3, ConvConfig::default());
        // The samples are float32: the largest may round up to the bound's float32 value (0.05 is stored as
        // 0.0500000007), so that, not the real number, is the limit.
        let bound = |b: f64| b as f32 as f64;
        let max = conv.weight.abs().max().double_value(&[]);
        assert!(max <= bound(1.0 / 12.0) && max > 0.9 / 12.0, "{max}");
        let lin = Layer::linear(vs.root() / "l", 400, 300, true);
        let max = lin.weight.abs().max().double_value(&[]);
        assert!(max <= bound(0.05) && max > 0.049, "{max}");
    }

    #[test]
    fn linear_and_conv_follow_torch_semantics() {
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = Layer::linear(vs.root() / "lin", 3, 2, true);
        let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let want = x.matmul(&lin.weight.tr()) + lin.bias.as_ref().unwrap();
        // Three products of values of order 1 summed by another kernel: a few roundings (u = 2^-24 ≈ 6e-8).
        assert!(lin.forward(&x).allclose(&want, 1e-6, 1e-6, false));

        // A depthwise 3x3 convolution keeps the spatial size and applies one filter per channel.
        let dw = Layer::conv2d(vs.root() / "dw", 4, 4, 3, ConvConfig { padding: 1, groups: 4, ..Default::default() });
        assert_eq!(dw.weight.size(), [4, 1, 3, 3]);
        let img = Tensor::randn([1, 4, 5, 7], (Kind::Float, Device::Cpu));
        assert_eq!(dw.forward(&img).size(), [1, 4, 5, 7]);
        let names: Vec<_> = {
            let mut v: Vec<_> = vs.variables().into_keys().collect();
            v.sort();
            v
        };
        assert_eq!(names, ["dw.bias", "dw.weight", "lin.bias", "lin.weight"]);
    }

    /// A frozen linear layer `lin` (8 → 4, with bias), its var store and an input.
    fn frozen_linear() -> (nn::VarStore, Layer, Tensor) {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let lin = Layer::linear(vs.root() / "lin", 8, 4, true);
        vs.freeze();
        (vs, lin, Tensor::randn([2, 8], (Kind::Float, Device::Cpu)))
    }

    #[test]
    fn a_frozen_weight_and_bias_are_cast_once_and_again_after_they_change() {
        use sana_sr_core::{no_grad, precision::with_compute_kind};
        let (_vs, lin, x) = frozen_linear();
        let bf16 = |t: &Tensor| t.to_kind(Kind::BFloat16);
        let run = || with_compute_kind(Some(Kind::BFloat16), || lin.forward(&x));
        // The same operations on the same bf16 operands: equal, not close.
        let want = || bf16(&x).linear(&bf16(&lin.weight), Some(&bf16(lin.bias.as_ref().unwrap())));
        assert!(run().equal(&want()));
        let bias = lin.bias.as_ref().unwrap();
        let cast_weight = || lin.cast_weight.get(&lin.weight, Kind::BFloat16).data_ptr();
        let cast_bias = || lin.cast_bias.get(bias, Kind::BFloat16).data_ptr();
        let kept = (cast_weight(), cast_bias());
        assert_eq!((cast_weight(), cast_bias()), kept, "the second call reuses the casts");
        // A variable written in place (as a checkpoint load writes it) is cast afresh.
        no_grad(|| lin.weight.shallow_clone().copy_(&(&lin.weight * 2.0)));
        assert!(run().equal(&want()));
        assert_ne!(cast_weight(), kept.0);
        assert_eq!(cast_bias(), kept.1);
        no_grad(|| bias.shallow_clone().copy_(&(bias * 2.0)));
        assert!(run().equal(&want()));
        assert_ne!(cast_bias(), kept.1);
    }

    #[test]
    fn a_weight_cast_in_place_is_converted_and_no_longer_held_twice() {
        use sana_sr_core::precision::{with_compute_kind, with_weights_cast_in_place};
        let (vs, lin, x) = frozen_linear();
        let run = || with_compute_kind(Some(Kind::BFloat16), || lin.forward(&x));
        let kept_beside = run();
        assert_eq!(lin.weight.kind(), Kind::Float, "outside the scope the float32 weight stays");
        let converted = with_weights_cast_in_place(run);
        assert!(converted.equal(&kept_beside), "the same bf16 operands: equal, not close");
        // The variable itself, as the var store holds it, is now the cast weight, and the layer keeps no copy.
        let bias = lin.bias.as_ref().unwrap();
        for (name, variable, cache) in [("weight", &lin.weight, &lin.cast_weight), ("bias", bias, &lin.cast_bias)] {
            assert_eq!(vs.variables()[&format!("lin.{name}")].kind(), Kind::BFloat16, "{name}");
            assert_eq!(cache.get(variable, Kind::BFloat16).data_ptr(), variable.data_ptr(), "{name}");
        }
        assert!(run().equal(&kept_beside));
    }
}
