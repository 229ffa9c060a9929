//! What one forward pass of a network costs: its parameters and its multiply-accumulates (MACs), per part,
//! counted from the shapes each layer computes on. The counts are functions of a config and an input size,
//! so the real configs (a 1.6 B-parameter DiT) are counted without building them; [`count_macs`] counts what
//! a built network really computes, and the tests hold the two equal.
//!
//! What is counted, PyTorch's `torch.utils.flop_counter.FlopCounterMode` convention (MACs = its FLOPs / 2):
//! - linear layers: output elements × input features;
//! - convolutions: output elements × input channels per group × kernel area (depthwise and grouped ones
//!   included, stride and padding as they are);
//! - the matrix products of attention: linear attention's two products per head (the values extended by
//!   the row of ones that yields the normaliser, as the reference computes it), the DC-AE's quadratic form
//!   on tiny maps, and softmax cross-attention's `Q Kᵀ` and `A V`.
//!
//! What is not counted: bias adds, norms, activations, gates and modulation, softmax, residual adds, the
//! DC-AE's parameter-free shortcuts (channel means and repeats), pixel (un)shuffles and nearest upsampling:
//! one or a few operations per element, not multiply-accumulates over a reduction (thop and fvcore differ
//! here: thop counts some elementwise work, fvcore counts one "flop" per MAC).
//!
//! Parameters are torch's `parameters()`: every learned tensor; batch norm's running statistics are buffers
//! and not counted.

pub mod dc_ae;
pub mod esrgan;
pub mod gemma2;
pub mod sana_transformer;

use std::cell::Cell;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use sana_sr_core::Tensor;
use serde::Serialize;

/// Parameters and multiply-accumulates of a part of a network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub params: u64,
    pub macs: u64,
}

impl Cost {
    pub const fn macs(macs: u64) -> Self {
        Self { params: 0, macs }
    }

    pub const fn params(params: u64) -> Self {
        Self { params, macs: 0 }
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, other: Cost) -> Cost {
        Cost { params: self.params + other.params, macs: self.macs + other.macs }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        *self = *self + other;
    }
}

impl Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), Add::add)
    }
}

/// A named part of a network (a diffusers module path such as `down_blocks.1.0` or `transformer_blocks.3`)
/// and its cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    pub name: String,
    #[serde(flatten)]
    pub cost: Cost,
}

impl Part {
    pub fn new(name: impl Into<String>, cost: Cost) -> Self {
        Self { name: name.into(), cost }
    }
}

/// The sum of `parts`.
pub fn total(parts: &[Part]) -> Cost {
    parts.iter().map(|p| p.cost).sum()
}

/// `parts` with `prefix.` before every name.
pub fn prefixed(prefix: &str, parts: Vec<Part>) -> Vec<Part> {
    parts.into_iter().map(|p| Part { name: format!("{prefix}.{}", p.name), cost: p.cost }).collect()
}

fn n(x: i64) -> u64 {
    u64::try_from(x).expect("sizes are never negative")
}

/// `nn.Linear(in_features, out_features, bias)` applied to `tokens` rows.
pub fn linear(tokens: i64, in_features: i64, out_features: i64, bias: bool) -> Cost {
    Cost {
        params: n(in_features * out_features + if bias { out_features } else { 0 }),
        macs: n(tokens) * n(in_features) * n(out_features),
    }
}

/// A square-kernel `nn.Conv2d` whose output is `out_height`×`out_width` (one image).
pub fn conv2d(out: (i64, i64), in_ch: i64, out_ch: i64, kernel: i64, groups: i64, bias: bool) -> Cost {
    let per_output = n(in_ch / groups) * n(kernel * kernel);
    Cost {
        params: n(out_ch) * per_output + if bias { n(out_ch) } else { 0 },
        macs: n(out.0 * out.1) * n(out_ch) * per_output,
    }
}

/// `batch` products of an `m`×`k` by a `k`×`n` matrix.
pub fn matmul(batch: i64, m: i64, k: i64, cols: i64) -> Cost {
    Cost::macs(n(batch) * n(m) * n(k) * n(cols))
}

/// The output size of a `kernel`×`kernel` convolution of `stride` and zero `padding` on `size`.
pub fn conv_out_size(size: (i64, i64), kernel: i64, stride: i64, padding: i64) -> (i64, i64) {
    let side = |s: i64| (s + 2 * padding - kernel) / stride + 1;
    (side(size.0), side(size.1))
}

thread_local! {
    /// MACs recorded on this thread while [`count_macs`] runs; `None` outside it.
    static COUNTED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` and returns, beside its result, the MACs that the layers and attention products computed on this
/// thread meanwhile (by the rules of the module docs, from the shapes they really ran on).
pub fn count_macs<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let outer = COUNTED.with(|c| c.replace(Some(0)));
    let out = f();
    let counted = COUNTED.with(|c| c.replace(outer)).unwrap_or(0);
    if let Some(outer) = outer {
        COUNTED.with(|c| c.set(Some(outer + counted)));
    }
    (out, counted)
}

/// Adds `macs` to the count in progress, if any.
pub(crate) fn record(macs: impl FnOnce() -> u64) {
    COUNTED.with(|c| {
        if let Some(sum) = c.get() {
            c.set(Some(sum + macs()));
        }
    });
}

/// Records a product that gave `out` by reducing over `k` terms per output element.
pub(crate) fn record_product(out: &Tensor, k: i64) {
    record(|| n(out.numel() as i64) * n(k));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_counts_follow_torch_shapes() {
        // nn.Linear(3, 5) on 7 rows: 7·3·5 MACs, 3·5 + 5 parameters.
        assert_eq!(linear(7, 3, 5, true), Cost { params: 20, macs: 105 });
        // A depthwise 3x3 conv of 4 channels to a 5x6 output: 9 MACs per output element.
        assert_eq!(conv2d((5, 6), 4, 4, 3, 4, false), Cost { params: 36, macs: 30 * 4 * 9 });
        // A stride-2, pad-1 3x3 conv halves even sizes and rounds odd ones up.
        assert_eq!(conv_out_size((64, 63), 3, 2, 1), (32, 32));
        assert_eq!(matmul(2, 3, 4, 5).macs, 120);
    }

    #[test]
    fn count_macs_nests_and_ignores_work_outside() {
        record(|| 5);
        let ((), outer) = count_macs(|| {
            record(|| 2);
            let ((), inner) = count_macs(|| record(|| 3));
            assert_eq!(inner, 3);
        });
        assert_eq!(outer, 5);
    }
}
