//! Gemma-2, SANA's text encoder, on one prompt of `tokens` tokens (padding included: the reference computes
//! every position). Per layer the four attention projections, the attention's two products over the whole prompt
//! (the eager reference computes every score; the sliding window and the padding are masks) and the GeGLU MLP's
//! three projections; the embedding is a lookup (parameters, no MACs).

use super::{linear, matmul, Cost, Part};
use crate::text::Gemma2Config;

/// The parts `embed_tokens`, `layers.{i}` and `norm`.
pub fn encoder(cfg: &Gemma2Config, tokens: i64) -> Vec<Part> {
    let (hidden, head_dim, heads) = (cfg.hidden_size, cfg.head_dim, cfg.num_attention_heads);
    let (q, kv, bias) = (heads * head_dim, cfg.num_key_value_heads * head_dim, cfg.attention_bias);
    let mlp = cfg.intermediate_size;
    let layer = linear(tokens, hidden, q, bias)
        + linear(tokens, hidden, kv, bias)
        + linear(tokens, hidden, kv, bias)
        + linear(tokens, q, hidden, bias)
        + matmul(heads, tokens, head_dim, tokens)
        + matmul(heads, tokens, tokens, head_dim)
        + linear(tokens, hidden, mlp, false)
        + linear(tokens, hidden, mlp, false)
        + linear(tokens, mlp, hidden, false)
        // Four RMSNorm weights: before and after the attention and the MLP.
        + Cost::params(4 * hidden as u64);
    let mut parts = vec![Part::new("embed_tokens", Cost::params((cfg.vocab_size * hidden) as u64))];
    parts.extend((0..cfg.num_hidden_layers).map(|i| Part::new(format!("layers.{i}"), layer)));
    parts.push(Part::new("norm", Cost::params(hidden as u64)));
    parts
}
