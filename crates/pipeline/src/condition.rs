//! What the DiT's cross-attention reads. A model without a text encoder has one stored condition, learned,
//! the same for every image (the built-in models). A model with one (SANA-SR as its papers run it) encodes a
//! prompt made of the image's tags with Gemma-2 and may guide towards it: classifier-free guidance against the
//! empty prompt, as diffusers' `SanaPipeline` guides against its negative prompt `""`.

use std::path::Path;
use std::sync::Mutex;

use lru::LruCache;
use sana_sr_core::precision::compute_kind;
use sana_sr_core::{nn, no_grad, Tensor};
use sana_sr_model::text::{
    Gemma2Config, Gemma2Error, Gemma2Model, PromptError, PromptStyle, PromptTokenizer, TextEncoder,
};
use serde::{Deserialize, Serialize};

/// Where the tag list goes in a prompt template.
pub const TAGS_PLACEHOLDER: &str = "{tags}";

/// A model's text side: how tags become a prompt, how the prompt is tokenized, and the encoder's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// The prompt of a tag list, [`TAGS_PLACEHOLDER`] replaced by the tags as given (SANA-SR:
    /// `"{tags}, clean, extremely detailed, best quality, sharp, high-resolution"`).
    pub template: String,
    /// The prompt when no tags are given (SANA-SR: its quality suffix alone).
    pub untagged: String,
    /// Tokens per prompt: the DiT's condition length.
    pub max_length: usize,
    /// Lower-case and trim the prompt first (diffusers' `SanaPipeline`; SANA-SR does not).
    #[serde(default)]
    pub lowercase: bool,
    /// SANA's complex-human-instruction lines put before the prompt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<Vec<String>>,
    /// The token prompts are padded with.
    pub pad_token: String,
    /// The tokenizer, a transformers folder's `tokenizer.json` as it is.
    pub tokenizer: serde_json::Value,
    pub encoder: Gemma2Config,
}

impl TextConfig {
    pub fn validate(&self, caption_channels: i64) -> Result<(), String> {
        if !self.template.contains(TAGS_PLACEHOLDER) {
            return Err(format!("the prompt template `{}` has no `{TAGS_PLACEHOLDER}`", self.template));
        }
        if self.max_length < 2 {
            return Err(format!("the prompt's max_length {} is under 2 tokens", self.max_length));
        }
        if self.encoder.hidden_size != caption_channels {
            return Err(format!(
                "the text encoder's width {} is not the transformer's caption_channels {caption_channels}",
                self.encoder.hidden_size
            ));
        }
        Ok(())
    }

    fn style(&self) -> PromptStyle {
        PromptStyle { max_length: self.max_length, lowercase: self.lowercase, instruction: self.instruction.clone() }
    }

    /// The prompt of `tags` (none or blank: [`Self::untagged`]).
    pub fn prompt(&self, tags: Option<&str>) -> String {
        match tags.map(str::trim).filter(|t| !t.is_empty()) {
            Some(tags) => self.template.replace(TAGS_PLACEHOLDER, tags),
            None => self.untagged.clone(),
        }
    }
}

/// The cross-attention input of one image: tokens `[1, L, caption_channels]` and, for a prompt, which are real
/// (`[1, L]`, 1) and which padding (0).
#[derive(Debug)]
pub struct Condition {
    pub tokens: Tensor,
    pub mask: Option<Tensor>,
}

impl Condition {
    pub fn shallow_clone(&self) -> Self {
        Self { tokens: self.tokens.shallow_clone(), mask: self.mask.as_ref().map(Tensor::shallow_clone) }
    }

    /// The memory its tensors hold.
    fn bytes(&self) -> usize {
        let bytes = |t: &Tensor| t.numel() * t.kind().elt_size_in_bytes();
        bytes(&self.tokens) + self.mask.as_ref().map_or(0, bytes)
    }
}

/// The condition of every step of one upscale, and, when guided, the empty prompt's and the scale `s`: the
/// velocity is then v(empty) + s · (v(condition) − v(empty)).
#[derive(Debug)]
pub struct Conditioning {
    pub condition: Condition,
    pub guidance: Option<(Condition, f64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConditionError {
    #[error(
        "model `{0}` has no text encoder: its condition is learned and fixed, so it takes no tags and no guidance"
    )]
    NoTextEncoder(String),
    #[error("guidance scale {0} must be a finite number of at least 1 (1 = no guidance)")]
    Guidance(f64),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Encoder(#[from] Gemma2Error),
}

/// A model's text encoder with its tokenizer and the conditions it has computed, by prompt: an upscale's tiles
/// and a batch's images with the same tags encode once.
#[derive(Debug)]
pub struct TextSide {
    pub config: TextConfig,
    pub encoder: TextEncoder,
    cache: Mutex<ConditionCache>,
}

/// How many bytes of conditions a text side keeps: about 185 prompts of SANA-SR's 300 tokens of 2304 float32
/// channels, enough for a training pool's tags, while a service fed endless new tags stays bounded.
const CONDITION_CACHE_BYTES: usize = 512 << 20;

/// Conditions by prompt; past `budget` bytes the least recently used go first.
#[derive(Debug)]
struct ConditionCache {
    entries: LruCache<String, Condition>,
    bytes: usize,
    budget: usize,
}

impl ConditionCache {
    fn new(budget: usize) -> Self {
        Self { entries: LruCache::unbounded(), bytes: 0, budget }
    }

    fn get(&mut self, key: &str) -> Option<Condition> {
        self.entries.get(key).map(Condition::shallow_clone)
    }

    fn insert(&mut self, key: String, condition: Condition) {
        self.bytes += condition.bytes();
        if let Some(replaced) = self.entries.put(key, condition) {
            self.bytes -= replaced.bytes();
        }
        while self.bytes > self.budget && self.entries.len() > 1 {
            let (_, dropped) = self.entries.pop_lru().expect("more than one entry");
            self.bytes -= dropped.bytes();
        }
    }
}

impl TextSide {
    /// Builds the encoder's variables under `p` (`text_encoder.` in a model file); `origin` names the model in
    /// errors about its tokenizer.
    pub fn build(p: nn::Path, config: &TextConfig, origin: &Path) -> Result<Self, ConditionError> {
        let tokenizer = PromptTokenizer::from_json(&config.tokenizer, &config.pad_token, origin)?;
        let encoder = Gemma2Model::new(p, &config.encoder)?;
        let encoder = TextEncoder { tokenizer, encoder, style: config.style() };
        Ok(Self { config: config.clone(), encoder, cache: Mutex::new(ConditionCache::new(CONDITION_CACHE_BYTES)) })
    }

    /// The condition of `prompt`, encoded once while it stays among the kept conditions (per compute kind: a
    /// bfloat16 upscale's condition is not a float32 one's).
    pub fn condition(&self, prompt: &str) -> Result<Condition, ConditionError> {
        let key = format!("{:?}\0{prompt}", compute_kind());
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit);
        }
        let (tokens, mask) = no_grad(|| self.encoder.encode(&[prompt]))?;
        let condition = Condition { tokens, mask: Some(mask) };
        cache.insert(key, condition.shallow_clone());
        Ok(condition)
    }
}

/// Checks a guidance scale: finite and at least 1.
pub fn check_guidance(scale: f64) -> Result<(), ConditionError> {
    if scale.is_finite() && scale >= 1.0 {
        Ok(())
    } else {
        Err(ConditionError::Guidance(scale))
    }
}

#[cfg(test)]
mod tests {
    use sana_sr_core::{Device, Kind};

    use super::*;

    fn condition(tokens: i64) -> Condition {
        let options = (Kind::Float, Device::Cpu);
        Condition { tokens: Tensor::zeros([1, tokens, 4], options), mask: Some(Tensor::ones([1, tokens], options)) }
    }

    #[test]
    fn the_cache_keeps_to_its_budget_dropping_the_least_recently_used() {
        let size = condition(10).bytes();
        assert_eq!(size, (10 * 4 + 10) * 4);
        let mut cache = ConditionCache::new(3 * size);
        for key in ["a", "b", "c"] {
            cache.insert(key.into(), condition(10));
        }
        assert!(cache.get("a").is_some(), "now the most recently used");
        cache.insert("d".into(), condition(10));
        assert!(cache.get("b").is_none(), "the least recently used went");
        for key in ["a", "c", "d"] {
            assert!(cache.get(key).is_some(), "{key}");
        }
        assert_eq!(cache.bytes, 3 * size);
        // A replaced entry counts once; one entry over the whole budget is kept alone.
        cache.insert("d".into(), condition(10));
        assert_eq!(cache.bytes, 3 * size);
        cache.insert("long".into(), condition(50));
        assert_eq!((cache.entries.len(), cache.bytes), (1, condition(50).bytes()));
    }
}
