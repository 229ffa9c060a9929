//! Text conditioning: SANA's text encoder (Gemma-2) and the prompt handling around it.

pub mod gemma2;
pub mod prompt;

pub use gemma2::{EncoderWeights, Gemma2Config, Gemma2Error, Gemma2Model};
pub use prompt::{PromptError, PromptStyle, PromptTokenizer, TextEncoder, Tokens};
