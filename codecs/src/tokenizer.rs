//! [`SpeechTokenizer`]: one entry point for every speech tokenizer type.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;

use qwen3_speech_engine::{Error, Result};

use crate::codec12::{self, Codec12, Codes};

/// `model_type` of the 25 Hz tokenizer (not implemented yet).
pub const MODEL_TYPE_25HZ: &str = "qwen3_tts_tokenizer_25hz";

/// A loaded speech tokenizer of any supported type.
#[derive(Debug, Clone)]
pub enum SpeechTokenizer {
    /// `qwen3_tts_tokenizer_12hz`.
    Codec12(Codec12),
}

#[derive(Deserialize)]
struct TypeOnly {
    model_type: Option<String>,
}

/// The speech tokenizer folder for `dir`: `dir` itself when it holds a tokenizer's
/// `config.json`, else its `speech_tokenizer/` subfolder (a Qwen3-TTS model folder). Errors say
/// which of the two was expected.
pub fn find_tokenizer_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Model(format!(
            "speech tokenizer folder {} does not exist",
            dir.display()
        )));
    }
    let sub = dir.join("speech_tokenizer");
    if sub.join("config.json").is_file() {
        return Ok(sub);
    }
    if dir.join("config.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    Err(Error::Model(format!(
        "{} is neither a speech tokenizer folder (config.json, model.safetensors) nor a \
         Qwen3-TTS model folder with a speech_tokenizer/ subfolder",
        dir.display()
    )))
}

impl SpeechTokenizer {
    /// Loads the tokenizer in `dir` (see [`find_tokenizer_dir`]) after reading its type from
    /// `config.json`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let dir = find_tokenizer_dir(dir)?;
        let config = dir.join("config.json");
        let t: TypeOnly = qwen3_speech_engine::config::read_json(&config)?;
        match t.model_type.as_deref() {
            Some(codec12::MODEL_TYPE) => Ok(SpeechTokenizer::Codec12(Codec12::load(&dir, device)?)),
            Some(MODEL_TYPE_25HZ) => Err(Error::Model(format!(
                "{}: the 25 Hz speech tokenizer ({MODEL_TYPE_25HZ}) is not supported yet; only \
                 {} is",
                config.display(),
                codec12::MODEL_TYPE
            ))),
            Some(other) => Err(Error::Model(format!(
                "{}: unknown speech tokenizer model_type '{other}' (supported: {})",
                config.display(),
                codec12::MODEL_TYPE
            ))),
            None => Err(Error::Model(format!(
                "{}: no model_type; is this a speech tokenizer folder?",
                config.display()
            ))),
        }
    }

    pub fn model_type(&self) -> &'static str {
        match self {
            SpeechTokenizer::Codec12(c) => c.model_type(),
        }
    }

    /// The 12 Hz codec, when that is the type.
    pub fn as_codec12(&self) -> Option<&Codec12> {
        match self {
            SpeechTokenizer::Codec12(c) => Some(c),
        }
    }

    /// Rate of the audio `encode` takes (Hz).
    pub fn sample_rate(&self) -> u32 {
        match self {
            SpeechTokenizer::Codec12(c) => c.sample_rate(),
        }
    }

    /// Rate of the audio `decode` returns (Hz).
    pub fn output_sample_rate(&self) -> u32 {
        match self {
            SpeechTokenizer::Codec12(c) => c.output_sample_rate(),
        }
    }

    pub fn frame_rate(&self) -> f64 {
        match self {
            SpeechTokenizer::Codec12(c) => c.frame_rate(),
        }
    }

    pub fn num_quantizers(&self) -> usize {
        match self {
            SpeechTokenizer::Codec12(c) => c.num_quantizers(),
        }
    }

    pub fn samples_per_frame(&self) -> usize {
        match self {
            SpeechTokenizer::Codec12(c) => c.samples_per_frame(),
        }
    }

    /// Codes of mono audio at [`SpeechTokenizer::sample_rate`].
    pub fn encode(&self, samples: &[f32]) -> Result<Codes> {
        match self {
            SpeechTokenizer::Codec12(c) => c.encode(samples),
        }
    }

    /// Audio of `codes` at [`SpeechTokenizer::output_sample_rate`].
    pub fn decode(&self, codes: &Codes) -> Result<Vec<f32>> {
        match self {
            SpeechTokenizer::Codec12(c) => c.decode(codes),
        }
    }
}
