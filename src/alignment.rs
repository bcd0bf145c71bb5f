//! Word timestamps for a known transcript: [`Aligner`].

use crate::aligner::{ForcedAligner, WordTiming};
use crate::engine::device::{ComputeDType, DeviceSpec, Placement};
use crate::engine::hub::{self, FetchOptions, ModelDir, ModelSource};
use crate::engine::{Error, Result};
use crate::models::asr::EncoderAttention;
use crate::transcriber::{AudioInput, load_input};

/// The released forced aligner, used when timestamps are asked for without naming a model.
pub const DEFAULT_ALIGNER: &str = "Qwen/Qwen3-ForcedAligner-0.6B";

/// How to load and run the forced aligner.
#[derive(Debug, Clone)]
pub struct AlignerConfig {
    pub device: DeviceSpec,
    /// `None`: f32 on CPU, bf16 on CUDA.
    pub dtype: Option<ComputeDType>,
    pub attention: EncoderAttention,
    pub fetch: FetchOptions,
}

impl Default for AlignerConfig {
    fn default() -> Self {
        AlignerConfig {
            device: DeviceSpec::Auto,
            dtype: None,
            attention: EncoderAttention::default(),
            fetch: FetchOptions::from_env(),
        }
    }
}

/// A loaded Qwen3-ForcedAligner.
pub struct Aligner {
    model: ForcedAligner,
    config: AlignerConfig,
    dir: ModelDir,
}

impl std::fmt::Debug for Aligner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aligner")
            .field("model", &self.dir.path())
            .finish()
    }
}

impl Aligner {
    /// Loads an aligner named by a local folder or a hub repo id.
    pub fn new(model: &str, config: AlignerConfig) -> Result<Self> {
        let dir = hub::resolve(&ModelSource::parse(model)?, &config.fetch)?;
        Self::from_dir(dir, config)
    }

    pub fn from_dir(dir: ModelDir, config: AlignerConfig) -> Result<Self> {
        let placement = Placement::new(config.device, config.dtype)?;
        let model = ForcedAligner::load(&dir, &placement.device, placement.dtype)?;
        Ok(Aligner { model, config, dir })
    }

    pub fn model(&self) -> &ForcedAligner {
        &self.model
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    /// Longest audio one alignment can cover, in seconds.
    pub fn max_seconds(&self) -> f64 {
        self.model.max_seconds()
    }

    /// Times every word of `text` in `audio`. `language` is a supported language name or code.
    pub fn align(
        &self,
        audio: AudioInput<'_>,
        text: &str,
        language: &str,
    ) -> Result<Vec<WordTiming>> {
        // Check the cheap things before decoding the audio.
        self.model.resolve_language(language)?;
        if text.trim().is_empty() {
            return Err(Error::InvalidArgument("the text to align is empty".into()));
        }
        let samples = load_input(&audio)?;
        self.model
            .align(&samples, text, language, self.config.attention)
    }

    /// Like [`Aligner::align`] on 16 kHz samples that are already normalised.
    pub fn align_samples_16k(
        &self,
        samples: &[f32],
        text: &str,
        language: &str,
    ) -> Result<Vec<WordTiming>> {
        self.model
            .align(samples, text, language, self.config.attention)
    }
}
