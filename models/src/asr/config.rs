//! `config.json` of Qwen3-ASR and Qwen3-ForcedAligner checkpoints.

use serde::Deserialize;

use qwen3_speech_engine::transformer::Qwen3Config;
use qwen3_speech_engine::{Error, Result};

/// Top level (`model_type: "qwen3_asr"`).
#[derive(Debug, Clone, Deserialize)]
pub struct AsrConfig {
    pub thinker_config: ThinkerConfig,
    /// Languages the model was trained on (informational; the prompt list is fixed).
    #[serde(default)]
    pub support_languages: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    /// Forced aligner: the `<timestamp>` token.
    #[serde(default)]
    pub timestamp_token_id: Option<u32>,
    /// Forced aligner: milliseconds per classifier class.
    #[serde(default)]
    pub timestamp_segment_time: Option<f64>,
}

/// `thinker_config`: audio encoder + text decoder + the audio placeholder ids.
#[derive(Debug, Clone, Deserialize)]
pub struct ThinkerConfig {
    pub audio_config: AudioEncoderConfig,
    pub text_config: Qwen3Config,
    pub audio_token_id: u32,
    #[serde(default)]
    pub audio_start_token_id: Option<u32>,
    #[serde(default)]
    pub audio_end_token_id: Option<u32>,
    /// `"qwen3_asr"`, or `"qwen3_forced_aligner"` for the aligner (classifier head).
    #[serde(default)]
    pub model_type: Option<String>,
    /// Forced aligner: number of timestamp classes of the head.
    #[serde(default)]
    pub classify_num: Option<usize>,
}

/// `thinker_config.audio_config`.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioEncoderConfig {
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub output_dim: usize,
    pub downsample_hidden_size: usize,
    /// Half the conv chunk, in mel frames (50 in every release).
    pub n_window: usize,
    /// Attention window in mel frames (800 = 8 s in the releases).
    pub n_window_infer: usize,
    #[serde(default = "default_conv_chunksize")]
    pub conv_chunksize: usize,
    #[serde(default = "default_max_source_positions")]
    pub max_source_positions: usize,
    #[serde(default = "default_activation")]
    pub activation_function: String,
}

fn default_conv_chunksize() -> usize {
    500
}
fn default_max_source_positions() -> usize {
    1500
}
fn default_activation() -> String {
    "gelu".into()
}

impl ThinkerConfig {
    pub fn is_forced_aligner(&self) -> bool {
        self.model_type
            .as_deref()
            .is_some_and(|t| t.contains("forced_aligner"))
    }
}

impl AudioEncoderConfig {
    /// Mel frames per conv chunk (100).
    pub fn chunk_frames(&self) -> usize {
        2 * self.n_window
    }

    /// The reference's checks: its token-count formula hard-codes 100-frame chunks with 13
    /// outputs, so any other `n_window` would make the prompt disagree with the encoder.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(format!("invalid audio encoder config: {m}")));
        if self.n_window != 50 {
            return bad(format!(
                "n_window is {}, but Qwen3-ASR's token count assumes 50",
                self.n_window
            ));
        }
        if self.n_window_infer < self.chunk_frames()
            || !self.n_window_infer.is_multiple_of(self.chunk_frames())
        {
            return bad(format!(
                "n_window_infer {} must be a positive multiple of {}",
                self.n_window_infer,
                self.chunk_frames()
            ));
        }
        if self.encoder_attention_heads == 0
            || !self.d_model.is_multiple_of(self.encoder_attention_heads)
        {
            return bad(format!(
                "d_model {} is not divisible by {} heads",
                self.d_model, self.encoder_attention_heads
            ));
        }
        if !self.d_model.is_multiple_of(2) {
            return bad("d_model must be even (sinusoidal positions)".into());
        }
        if self.activation_function != "gelu" {
            return bad(format!(
                "activation '{}' is not supported (gelu)",
                self.activation_function
            ));
        }
        if self.conv_chunksize == 0 {
            return bad("conv_chunksize must be positive".into());
        }
        Ok(())
    }

    /// Frequency bins left after the three stride-2 convolutions.
    pub fn freq_after_convs(&self) -> usize {
        let mut f = self.num_mel_bins;
        for _ in 0..3 {
            f = f.div_ceil(2);
        }
        f
    }
}
