//! The ASR prompt, as the released chat template renders it:
//!
//! ```text
//! <|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>{N × <|audio_pad|>}
//! <|audio_end|><|im_end|>\n<|im_start|>assistant\n[language {Lang}<asr_text>]
//! ```
//!
//! The text around the placeholders is tokenized in two pieces; special tokens delimit them, so
//! this gives the same ids as tokenizing the whole rendered string.

use qwen3_speech_engine::Result;
use qwen3_speech_engine::tokenizer::Tokenizer;

/// Ids of the tokens the ASR pipeline relies on, looked up by name in the tokenizer (the tiny
/// test checkpoints use other ids than the releases).
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub audio_pad: u32,
    pub im_end: u32,
    pub endoftext: u32,
}

impl SpecialTokens {
    pub fn from_tokenizer(tok: &Tokenizer, audio_pad: u32) -> Result<Self> {
        Ok(SpecialTokens {
            audio_pad,
            im_end: tok.require_token("<|im_end|>")?,
            endoftext: tok.require_token("<|endoftext|>")?,
        })
    }

    /// Tokens that end a transcription.
    pub fn stop_ids(&self) -> Vec<u32> {
        vec![self.im_end, self.endoftext]
    }
}

/// The prompt text before the audio placeholders.
pub fn prompt_prefix(context: &str) -> String {
    format!("<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>")
}

/// The prompt text after the audio placeholders.
pub fn prompt_suffix(forced_language: Option<&str>) -> String {
    let mut s = String::from("<|audio_end|><|im_end|>\n<|im_start|>assistant\n");
    if let Some(lang) = forced_language {
        s.push_str("language ");
        s.push_str(lang);
        s.push_str("<asr_text>");
    }
    s
}

/// Token ids of the prompt for a clip giving `audio_tokens` encoder outputs.
pub fn build_prompt(
    tok: &Tokenizer,
    special: &SpecialTokens,
    context: &str,
    forced_language: Option<&str>,
    audio_tokens: usize,
) -> Result<Vec<u32>> {
    let mut ids = tok.encode(&prompt_prefix(context))?;
    ids.extend(std::iter::repeat_n(special.audio_pad, audio_tokens));
    ids.extend(tok.encode(&prompt_suffix(forced_language))?);
    Ok(ids)
}
