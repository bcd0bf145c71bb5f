//! [`SpeechTokenizer`]: one entry point for every speech tokenizer type.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;

use qwen3_speech_engine::{Error, Result};

use crate::codec12::{self, Codec12, Codes};
use crate::codec25::{self, Codec25, Encoded25, SpeakerConditioning};

/// `model_type` of the 25 Hz tokenizer.
pub const MODEL_TYPE_25HZ: &str = codec25::MODEL_TYPE;

/// A loaded speech tokenizer of any supported type (one per loaded model: the variants' sizes
/// do not matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum SpeechTokenizer {
    /// `qwen3_tts_tokenizer_12hz`.
    Codec12(Codec12),
    /// `qwen3_tts_tokenizer_25hz` (one codebook; decode also needs the speaker conditioning).
    Codec25(Codec25),
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
            Some(MODEL_TYPE_25HZ) => Ok(SpeechTokenizer::Codec25(Codec25::load(&dir, device)?)),
            Some(other) => Err(Error::Model(format!(
                "{}: unknown speech tokenizer model_type '{other}' (supported: {}, {})",
                config.display(),
                codec12::MODEL_TYPE,
                MODEL_TYPE_25HZ
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
            SpeechTokenizer::Codec25(c) => c.model_type(),
        }
    }

    /// The 12 Hz codec, when that is the type.
    pub fn as_codec12(&self) -> Option<&Codec12> {
        match self {
            SpeechTokenizer::Codec12(c) => Some(c),
            SpeechTokenizer::Codec25(_) => None,
        }
    }

    /// The 25 Hz codec, when that is the type.
    pub fn as_codec25(&self) -> Option<&Codec25> {
        match self {
            SpeechTokenizer::Codec25(c) => Some(c),
            SpeechTokenizer::Codec12(_) => None,
        }
    }

    /// Whether decoding needs a [`SpeakerConditioning`] (the 25 Hz codec).
    pub fn needs_speaker(&self) -> bool {
        matches!(self, SpeechTokenizer::Codec25(_))
    }

    /// Rate of the audio `encode` takes (Hz).
    pub fn sample_rate(&self) -> u32 {
        match self {
            SpeechTokenizer::Codec12(c) => c.sample_rate(),
            SpeechTokenizer::Codec25(c) => c.sample_rate(),
        }
    }

    /// Rate of the audio `decode` returns (Hz).
    pub fn output_sample_rate(&self) -> u32 {
        match self {
            SpeechTokenizer::Codec12(c) => c.output_sample_rate(),
            SpeechTokenizer::Codec25(c) => c.output_sample_rate(),
        }
    }

    pub fn frame_rate(&self) -> f64 {
        match self {
            SpeechTokenizer::Codec12(c) => c.frame_rate(),
            SpeechTokenizer::Codec25(c) => c.frame_rate(),
        }
    }

    pub fn num_quantizers(&self) -> usize {
        match self {
            SpeechTokenizer::Codec12(c) => c.num_quantizers(),
            SpeechTokenizer::Codec25(_) => 1,
        }
    }

    /// Codes per codebook: what a talker may hand to [`SpeechTokenizer::decode`].
    pub fn codebook_size(&self) -> usize {
        match self {
            SpeechTokenizer::Codec12(c) => c.codebook_size(),
            SpeechTokenizer::Codec25(c) => c.config().encoder_config.audio_vq_codebook_size,
        }
    }

    /// Output samples per code frame (12 Hz: also the input samples per frame).
    pub fn samples_per_frame(&self) -> usize {
        match self {
            SpeechTokenizer::Codec12(c) => c.samples_per_frame(),
            SpeechTokenizer::Codec25(c) => c.decode_upsample_rate(),
        }
    }

    /// Codes of mono audio at [`SpeechTokenizer::sample_rate`] (25 Hz: one level per frame;
    /// use [`SpeechTokenizer::encode_with_speaker`] to keep what its decoder needs).
    pub fn encode(&self, samples: &[f32]) -> Result<Codes> {
        match self {
            SpeechTokenizer::Codec12(c) => c.encode(samples),
            SpeechTokenizer::Codec25(c) => Codes::new(c.encode_codes(samples)?, 1),
        }
    }

    /// Codes plus, for the 25 Hz codec, the speaker conditioning its decoder needs.
    pub fn encode_with_speaker(
        &self,
        samples: &[f32],
    ) -> Result<(Codes, Option<SpeakerConditioning>)> {
        match self {
            SpeechTokenizer::Codec12(c) => Ok((c.encode(samples)?, None)),
            SpeechTokenizer::Codec25(c) => {
                let e = c.encode(samples)?;
                Ok((Codes::new(e.codes, 1)?, Some(e.speaker)))
            }
        }
    }

    /// Audio of `codes` at [`SpeechTokenizer::output_sample_rate`]. The 25 Hz codec needs
    /// [`SpeechTokenizer::decode_with_speaker`].
    pub fn decode(&self, codes: &Codes) -> Result<Vec<f32>> {
        self.decode_with_speaker(codes, None, 0)
    }

    /// Audio of `codes`; the 25 Hz codec takes the speaker conditioning from its encoder and
    /// draws its flow-matching noise with the torch-compatible generator seeded with `seed`
    /// (ignored by the 12 Hz codec, which is deterministic).
    pub fn decode_with_speaker(
        &self,
        codes: &Codes,
        speaker: Option<&SpeakerConditioning>,
        seed: u64,
    ) -> Result<Vec<f32>> {
        match self {
            SpeechTokenizer::Codec12(c) => c.decode(codes),
            SpeechTokenizer::Codec25(c) => {
                if codes.num_quantizers() != 1 {
                    return Err(Error::InvalidArgument(format!(
                        "codes have {} levels per frame, the 25 Hz codec takes 1",
                        codes.num_quantizers()
                    )));
                }
                let speaker = speaker.ok_or_else(|| {
                    Error::InvalidArgument(
                        "the 25 Hz codec decodes with the x-vector and reference mel of its \
                         encoder; none were given"
                            .into(),
                    )
                })?;
                if codes.is_empty() {
                    return Ok(Vec::new());
                }
                let enc = Encoded25 {
                    codes: codes.as_slice().to_vec(),
                    speaker: speaker.clone(),
                };
                c.decode(&enc, seed)
            }
        }
    }
}
