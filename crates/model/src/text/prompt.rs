//! From prompt text to the condition SANA's DiT reads: the tokenizer of a transformers folder
//! (`tokenizer.json`, through the `tokenizers` crate that transformers itself runs on) and the prompt handling
//! of diffusers' `SanaPipeline.encode_prompt` (right padding to a fixed length, the attention mask, the
//! optional complex-human-instruction prefix and the tokens kept after it).

use std::path::{Path, PathBuf};

use sana_sr_core::{Kind, Tensor};

use super::gemma2::{Gemma2Error, Gemma2Model};

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("the prompt's maximum length must be at least 2 tokens (the first is kept apart), got {0}")]
    Length(usize),
    #[error(transparent)]
    Encoder(#[from] Gemma2Error),
}

type Result<T> = std::result::Result<T, PromptError>;

/// How prompt text becomes tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptStyle {
    /// Tokens per prompt after padding and truncation, the first (`<bos>`) included: the DiT's condition length.
    pub max_length: usize,
    /// Lower-case and trim the text first, as `SanaPipeline` does (`clean_caption=False`); SANA-SR's training
    /// code passes its tag text as it is.
    pub lowercase: bool,
    /// Lines joined by newlines and put before every prompt (SANA's "complex human instruction"); the
    /// encoder then sees the longer sequence and the first token and last `max_length - 1` are kept.
    pub instruction: Option<Vec<String>>,
}

impl PromptStyle {
    /// SANA-SR's: 300 tokens, the text as given, no instruction.
    pub fn sana_sr() -> Self {
        Self { max_length: 300, lowercase: false, instruction: None }
    }
}

/// A transformers tokenizer folder's `tokenizer.json`, padding with the token its `tokenizer_config.json`
/// names (`<pad>` when it names none).
#[derive(Debug, Clone)]
pub struct PromptTokenizer {
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    pad_token: String,
    /// The `tokenizer.json` it was read from, for errors.
    file: PathBuf,
}

/// Token ids and attention mask of a batch of prompts, `[B, L]` int64 each.
#[derive(Debug)]
pub struct Tokens {
    pub ids: Tensor,
    pub mask: Tensor,
}

impl PromptTokenizer {
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let file = dir.join("tokenizer.json");
        let problem = |reason: String| PromptError::Tokenizer { path: file.clone(), reason };
        let text = sana_sr_core::fs::read_text(&file).map_err(|e| problem(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| problem(e.to_string()))?;
        Self::from_json(&json, &Self::pad_token_of_folder(dir)?, &file)
    }

    /// The padding token a transformers tokenizer folder names in `tokenizer_config.json` (`<pad>` without one).
    pub fn pad_token_of_folder(dir: &Path) -> Result<String> {
        let file = dir.join("tokenizer_config.json");
        let problem = |reason: String| PromptError::Tokenizer { path: file.clone(), reason };
        let text = match sana_sr_core::fs::read_text(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("<pad>".to_string()),
            Err(e) => return Err(problem(e.to_string())),
        };
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| problem(e.to_string()))?;
        // A plain string, or an added-token object with its `content`.
        Ok(match &config["pad_token"] {
            serde_json::Value::String(token) => token.clone(),
            serde_json::Value::Object(token) => token["content"].as_str().unwrap_or("<pad>").to_string(),
            _ => "<pad>".to_string(),
        })
    }

    /// A tokenizer from the content of a `tokenizer.json` (as a model file stores it); `origin` names it in errors.
    pub fn from_json(json: &serde_json::Value, pad_token: &str, origin: &Path) -> Result<Self> {
        let problem = |reason: String| PromptError::Tokenizer { path: origin.to_path_buf(), reason };
        // Read from the value in place: a real tokenizer.json is tens of megabytes.
        let tokenizer = <tokenizers::Tokenizer as serde::Deserialize>::deserialize(json)
            .map_err(|e| problem(format!("not a tokenizer.json: {e}")))?;
        let pad_id = tokenizer
            .token_to_id(pad_token)
            .ok_or_else(|| problem(format!("the padding token `{pad_token}` is not in the vocabulary")))?;
        Ok(Self { tokenizer, pad_id, pad_token: pad_token.to_string(), file: origin.to_path_buf() })
    }

    /// Tokens with the special ones the tokenizer adds (`<bos>`), truncated to `max_length` and padded on the
    /// right to it, as transformers' `padding="max_length", truncation=True`.
    pub fn encode(&self, texts: &[String], max_length: usize) -> Result<Tokens> {
        let mut tokenizer = self.tokenizer.clone();
        let truncation = tokenizers::TruncationParams { max_length, ..Default::default() };
        tokenizer.with_truncation(Some(truncation)).map_err(|e| self.problem(e))?;
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(max_length),
            direction: tokenizers::PaddingDirection::Right,
            pad_id: self.pad_id,
            pad_token: self.pad_token.clone(),
            ..Default::default()
        }));
        let encodings = tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| self.problem(e))?;
        let rows = |of: fn(&tokenizers::Encoding) -> Vec<i64>| {
            let flat: Vec<i64> = encodings.iter().flat_map(of).collect();
            Tensor::from_slice(&flat).view([texts.len() as i64, max_length as i64])
        };
        Ok(Tokens {
            ids: rows(|e| e.get_ids().iter().map(|&id| id as i64).collect()),
            mask: rows(|e| e.get_attention_mask().iter().map(|&m| m as i64).collect()),
        })
    }

    /// The number of tokens of `text`, special ones included (`len(tokenizer.encode(text))`).
    pub fn count(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode(text, true).map_err(|e| self.problem(e))?.len())
    }

    fn problem(&self, e: tokenizers::Error) -> PromptError {
        PromptError::Tokenizer { path: self.file.clone(), reason: e.to_string() }
    }
}

/// Prompt text to the DiT's condition: tokenizer, Gemma-2 and a [`PromptStyle`].
#[derive(Debug)]
pub struct TextEncoder {
    pub tokenizer: PromptTokenizer,
    pub encoder: Gemma2Model,
    pub style: PromptStyle,
}

impl TextEncoder {
    /// The condition `[B, max_length, hidden]` and its mask `[B, max_length]` (int64, 1 = token) of each
    /// prompt, as `SanaPipeline.encode_prompt` computes `prompt_embeds` and `prompt_attention_mask`.
    pub fn encode(&self, prompts: &[&str]) -> Result<(Tensor, Tensor)> {
        let style = &self.style;
        if style.max_length < 2 {
            return Err(PromptError::Length(style.max_length));
        }
        let texts: Vec<String> = prompts
            .iter()
            .map(|p| if style.lowercase { p.to_lowercase().trim().to_string() } else { p.to_string() })
            .collect();
        let (texts, total) = match &style.instruction {
            None => (texts, style.max_length),
            Some(lines) => {
                let instruction = lines.join("\n");
                let total = self.tokenizer.count(&instruction)? + style.max_length - 2;
                (texts.into_iter().map(|t| format!("{instruction}{t}")).collect(), total)
            }
        };
        let tokens = self.tokenizer.encode(&texts, total)?;
        let device = self.encoder.device();
        let (ids, mask) = (tokens.ids.to_device(device), tokens.mask.to_device(device));
        let embeds = self.encoder.forward(&ids, &mask)?;
        // The first token and the last `max_length - 1` (all of them without an instruction).
        let keep = style.max_length as i64 - 1;
        let select = |t: &Tensor| Tensor::cat(&[t.narrow(1, 0, 1), t.narrow(1, total as i64 - keep, keep)], 1);
        Ok((select(&embeds), select(&mask).to_kind(Kind::Int64)))
    }
}
