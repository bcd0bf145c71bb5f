//! The Qwen3-TTS 12 Hz speech tokenizer (`qwen3_tts_tokenizer_12hz`, Qwen3TTSTokenizerV2): 24 kHz
//! mono audio ⇄ 12.5 code frames per second of 16 codes (2048 entries each) in the released
//! models.
//!
//! * [`Codec12::encode`]: the Mimi encoder (SEANet, causal transformer, downsample, split RVQ),
//!   keeping `encoder_valid_num_quantizers` levels and `ceil(samples / samples_per_frame)` frames.
//! * [`Codec12::decode`]: the causal decoder, run in chunks of 300 frames with 25 frames of left
//!   context exactly as the reference's `model.decode` ([`chunked`]).
//! * [`Codec12::incremental_decoder`]: streaming decode with the same output ([`streaming`]).
//!
//! Layout of the modules: [`config`] (config.json), [`conv`] (convolutions, SnakeBeta, ELU on
//! channels-last activations), [`transformer`], [`quantizer`], [`encoder`], [`decoder`],
//! [`chunked`], [`streaming`], [`codes`].

pub mod chunked;
pub mod codes;
pub mod config;
pub mod conv;
pub mod decoder;
pub mod encoder;
pub mod quantizer;
pub mod streaming;
pub mod transformer;

use std::path::Path;

use candle_core::{DType, Device};
use serde::Deserialize;

use qwen3_speech_engine::hub::ModelDir;
use qwen3_speech_engine::weights::Weights;
use qwen3_speech_engine::{Error, Result};

pub use codes::Codes;
pub use config::{Codec12Config, DecoderConfig, EncoderConfig, MODEL_TYPE};
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use streaming::IncrementalDecoder;

/// A loaded 12 Hz speech tokenizer.
#[derive(Debug, Clone)]
pub struct Codec12 {
    config: Codec12Config,
    encoder: Encoder,
    decoder: Decoder,
    device: Device,
}

#[derive(Deserialize)]
struct FeatureExtractorConfig {
    sampling_rate: Option<u32>,
}

impl Codec12 {
    /// Loads a speech tokenizer folder (`config.json`, `model.safetensors`, optionally
    /// `preprocessor_config.json`), such as `speech_tokenizer/` of a Qwen3-TTS model.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let dir = ModelDir::open(dir)?;
        let config_path = dir.file("config.json")?;
        let config = Codec12Config::from_file(&config_path)?;
        if let Some(fe_path) = dir.optional_file("preprocessor_config.json") {
            // The reference resamples input audio to the feature extractor's rate.
            let fe: FeatureExtractorConfig = qwen3_speech_engine::config::read_json(&fe_path)?;
            if let Some(sr) = fe.sampling_rate
                && sr != config.input_sample_rate
            {
                return Err(Error::Config {
                    path: fe_path,
                    message: format!(
                        "sampling_rate {sr} differs from input_sample_rate {} in config.json",
                        config.input_sample_rate
                    ),
                });
            }
        }
        let weights = Weights::from_safetensors(&dir.weight_files()?, device, DType::F32)?;
        Self::from_weights(config, &weights)
    }

    /// Builds the codec from a parsed config and its weights (`encoder.*`, `decoder.*`).
    pub fn from_weights(config: Codec12Config, weights: &Weights) -> Result<Self> {
        let encoder = Encoder::load(
            &weights.pp("encoder"),
            &config.encoder_config,
            config.encoder_valid_num_quantizers,
        )?;
        let decoder = Decoder::load(&weights.pp("decoder"), &config.decoder_config)?;
        Ok(Codec12 {
            config,
            encoder,
            decoder,
            device: weights.device().clone(),
        })
    }

    pub fn config(&self) -> &Codec12Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The model type in config.json.
    pub fn model_type(&self) -> &'static str {
        MODEL_TYPE
    }

    /// Rate of the audio [`Codec12::encode`] takes (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.config.input_sample_rate
    }

    /// Rate of the audio [`Codec12::decode`] returns (Hz).
    pub fn output_sample_rate(&self) -> u32 {
        self.config.output_sample_rate
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.config.frame_rate()
    }

    /// Codes per frame.
    pub fn num_quantizers(&self) -> usize {
        self.decoder.num_quantizers()
    }

    /// Entries per codebook (codes are below this).
    pub fn codebook_size(&self) -> usize {
        self.decoder.codebook_size()
    }

    /// Input samples per code frame (also output samples per frame in the released models).
    pub fn samples_per_frame(&self) -> usize {
        self.config.encode_downsample_rate
    }

    /// Codes of mono audio at [`Codec12::sample_rate`]: `ceil(len / samples_per_frame)` frames.
    pub fn encode(&self, samples: &[f32]) -> Result<Codes> {
        let levels = self.encoder.levels();
        let mut all = self.encoder.encode(samples)?;
        let frames = samples.len().div_ceil(self.samples_per_frame());
        all.truncate(frames * levels);
        let q = self.config.encoder_valid_num_quantizers;
        let data = if levels == q {
            all
        } else {
            all.chunks(levels).flat_map(|f| f[..q].to_vec()).collect()
        };
        Codes::new(data, q)
    }

    /// Audio of `codes` (`frames × samples_per_frame` samples at
    /// [`Codec12::output_sample_rate`]), decoded in the reference's chunks of 300 frames with 25
    /// frames of left context. No frames give no samples.
    pub fn decode(&self, codes: &Codes) -> Result<Vec<f32>> {
        self.decode_chunked(codes, chunked::CHUNK_SIZE, chunked::LEFT_CONTEXT)
    }

    /// [`Codec12::decode`] with other chunk parameters (the reference's `chunked_decode`).
    pub fn decode_chunked(
        &self,
        codes: &Codes,
        chunk_size: usize,
        left_context: usize,
    ) -> Result<Vec<f32>> {
        self.check_codes(codes)?;
        if chunk_size == 0 {
            return Err(Error::InvalidArgument("chunk size must be positive".into()));
        }
        chunked::chunked_decode(
            &self.decoder,
            codes.as_slice(),
            codes.frames(),
            chunk_size,
            left_context,
        )
    }

    /// One decoder pass over all of `codes` (no chunks): what a decoder without the reference's
    /// restarts computes. Equals [`Codec12::decode`] for up to 300 frames.
    pub fn decode_single_pass(&self, codes: &Codes) -> Result<Vec<f32>> {
        self.check_codes(codes)?;
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.decoder.new_state();
        self.decoder
            .forward(codes.as_slice(), codes.frames(), &mut state)
    }

    /// A streaming decoder that reproduces [`Codec12::decode`] (see [`streaming`]).
    pub fn incremental_decoder(&self) -> IncrementalDecoder<'_> {
        IncrementalDecoder::new(self, streaming::reference_restarts())
    }

    fn check_codes(&self, codes: &Codes) -> Result<()> {
        let q = self.num_quantizers();
        if codes.num_quantizers() != q {
            return Err(Error::InvalidArgument(format!(
                "codes have {} levels per frame, the codec takes {q}",
                codes.num_quantizers()
            )));
        }
        let size = self.codebook_size();
        if let Some(&bad) = codes.as_slice().iter().find(|&&c| c as usize >= size) {
            return Err(Error::InvalidArgument(format!(
                "code {bad} is outside the codebooks of {size} entries"
            )));
        }
        Ok(())
    }
}
