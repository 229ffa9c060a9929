//! ReLU linear attention's weighted sums, shared by the DiT's self-attention and the DC-AE's multi-scale
//! attention.

use sana_sr_core::Tensor;

use super::fresh;
use crate::cost;

/// Added to the normaliser (`eps=1e-15` in both of diffusers' processors; the DC-AE's quadratic form of the
/// same attention adds it too).
pub const NORMALISER_EPS: f64 = 1e-15;

/// Per head, `out_n = Σ_m v_m (k_m·q_n) / (Σ_m k_m·q_n + eps)`, for `q` and `k` already through the feature
/// map (ReLU) and `q`, `k`, `v` all `[batch, heads, tokens, head_dim]` (any strides: callers pass views of
/// token-major activations), in their kind (the callers pass float32). The output is
/// `[batch, heads, tokens, head_dim]`.
///
/// The reference keeps each head `[head_dim, tokens]` and appends a row of ones under the values so that its
/// pair of matmuls also yields the normaliser `1ᵀ kᵀ q`. Here the tokens stay the rows, as the projections
/// produce them, so no operand is copied into another layout, and the normaliser is the keys summed over the
/// tokens, times the queries: the same products, without a taller copy of the values (at the DC-AE's 1/8 latent
/// of a 1200x1000 output, 10-25% of these sums' time on a CPU: `tools/bench/dcae_block_ops.py`). The recorded
/// MACs are the reference's: the key sums count as the ones row's products.
pub fn linear_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let (_, _, tokens, head_dim) = v.size4().expect("[batch, heads, tokens, head_dim]");
    let kv = k.transpose(-1, -2).matmul(v);
    cost::record_product(&kv, tokens);
    let numerator = q.matmul(&kv);
    cost::record_product(&numerator, head_dim);
    let key_sums = k.sum_dim_intlist(-2, true, k.kind());
    cost::record_product(&key_sums, tokens);
    let normaliser = q.matmul(&key_sums.transpose(-1, -2));
    cost::record_product(&normaliser, head_dim);
    fresh::div(numerator, &(normaliser + NORMALISER_EPS))
}
