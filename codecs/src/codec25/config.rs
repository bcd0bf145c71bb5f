//! `config.json` of a 25 Hz speech tokenizer (`model_type` `qwen3_tts_tokenizer_25hz`).
//!
//! The structs mirror the reference's `Qwen3TTSTokenizerV1Config` and its sub-configs; missing
//! keys take the reference classes' defaults (none of which is confirmed by a released
//! checkpoint, see codecs.md §3.6), unknown keys are ignored. Every size the model uses comes
//! from here, never from constants.

use std::path::Path;

use serde::Deserialize;

use qwen3_speech_engine::{Error, Result};

/// The `model_type` of the 25 Hz tokenizer.
pub const MODEL_TYPE: &str = "qwen3_tts_tokenizer_25hz";

/// Top level of `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Codec25Config {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub encoder_config: EncoderConfig,
    #[serde(default)]
    pub decoder_config: DecoderConfig,
    /// The class default (24000) is a copy of the 12 Hz value; the encoder's mel, fbank and
    /// reference mel all assume 16 kHz, which [`Codec25Config::validate`] checks.
    #[serde(default = "d_24000")]
    pub input_sample_rate: u32,
    #[serde(default = "d_24000")]
    pub output_sample_rate: u32,
    /// Output samples kept per code (the reference trims the waveform to `codes * rate`).
    #[serde(default = "d_1920")]
    pub decode_upsample_rate: usize,
    /// Informational in the reference (the encoder produces one code per 640 samples).
    #[serde(default = "d_1920")]
    pub encode_downsample_rate: usize,
}

/// `encoder_config`: the Whisper-style encoder with its VQ (`WhisperEncoderVQ`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EncoderConfig {
    pub n_mels: usize,
    pub n_ctx: usize,
    pub n_state: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub n_window: usize,
    pub output_dim: usize,
    pub audio_vq_type: String,
    /// 1-indexed block after which the VQ runs.
    pub audio_vq_layers: usize,
    pub audio_vq_codebook_size: usize,
    pub audio_vq_codebook_dim: usize,
    pub audio_vq_pe: bool,
    pub audio_vq_ds_rate: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            n_mels: 128,
            n_ctx: 1500,
            n_state: 1280,
            n_head: 20,
            n_layer: 32,
            n_window: 100,
            output_dim: 3584,
            audio_vq_type: "GRVQ".into(),
            audio_vq_layers: 6,
            audio_vq_codebook_size: 32768,
            audio_vq_codebook_dim: 1280,
            audio_vq_pe: true,
            audio_vq_ds_rate: 2,
        }
    }
}

/// `decoder_config`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct DecoderConfig {
    pub dit_config: DitConfig,
    pub bigvgan_config: BigVganConfig,
}

/// `decoder_config.dit_config`: the flow-matching DiT and its ECAPA-TDNN reference encoder.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DitConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub ff_mult: usize,
    pub emb_dim: usize,
    pub head_dim: usize,
    /// Ignored by the reference (the RoPE frequencies are a checkpoint buffer).
    pub rope_theta: f64,
    pub block_size: usize,
    pub look_ahead_layers: Vec<usize>,
    pub look_backward_layers: Vec<usize>,
    pub repeats: usize,
    pub num_embeds: usize,
    pub mel_dim: usize,
    pub enc_emb_dim: usize,
    pub enc_dim: usize,
    pub enc_channels: Vec<usize>,
    pub enc_kernel_sizes: Vec<usize>,
    pub enc_dilations: Vec<usize>,
    pub enc_attention_channels: usize,
    pub enc_res2net_scale: usize,
    pub enc_se_channels: usize,
}

impl Default for DitConfig {
    fn default() -> Self {
        DitConfig {
            hidden_size: 1024,
            num_hidden_layers: 22,
            num_attention_heads: 16,
            ff_mult: 2,
            emb_dim: 512,
            head_dim: 64,
            rope_theta: 10000.0,
            block_size: 24,
            look_ahead_layers: vec![10],
            look_backward_layers: vec![0, 20],
            repeats: 2,
            num_embeds: 8193,
            mel_dim: 80,
            enc_emb_dim: 192,
            enc_dim: 128,
            enc_channels: vec![256, 256, 256, 256, 768],
            enc_kernel_sizes: vec![5, 3, 3, 3, 1],
            enc_dilations: vec![1, 2, 3, 4, 1],
            enc_attention_channels: 64,
            enc_res2net_scale: 2,
            enc_se_channels: 64,
        }
    }
}

/// `decoder_config.bigvgan_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BigVganConfig {
    pub mel_dim: usize,
    pub upsample_initial_channel: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
}

impl Default for BigVganConfig {
    fn default() -> Self {
        BigVganConfig {
            mel_dim: 80,
            upsample_initial_channel: 1536,
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            upsample_rates: vec![5, 3, 2, 2, 2, 2],
            upsample_kernel_sizes: vec![11, 7, 4, 4, 4, 4],
        }
    }
}

fn d_24000() -> u32 {
    24000
}
fn d_1920() -> usize {
    1920
}

fn bad(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        message,
    }
}

impl Codec25Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let c: Codec25Config = qwen3_speech_engine::config::read_json(path)?;
        c.validate(path)?;
        Ok(c)
    }

    /// Checks the constraints the reference code relies on (with clear errors instead of the
    /// reference's shape errors).
    pub fn validate(&self, path: &Path) -> Result<()> {
        if let Some(t) = &self.model_type
            && t != MODEL_TYPE
        {
            return Err(bad(
                path,
                format!("model_type is '{t}', expected '{MODEL_TYPE}'"),
            ));
        }
        if self.input_sample_rate != 16000 {
            return Err(bad(
                path,
                format!(
                    "input_sample_rate {} is not supported: the 25 Hz encoder's mel, fbank and \
                     reference mel are defined at 16000 Hz",
                    self.input_sample_rate
                ),
            ));
        }
        let e = &self.encoder_config;
        if e.n_mels != 128 {
            return Err(bad(
                path,
                format!(
                    "encoder n_mels {} (the reference only computes 128)",
                    e.n_mels
                ),
            ));
        }
        if e.audio_vq_type != "GRVQ" {
            return Err(bad(
                path,
                format!("audio_vq_type '{}' (only GRVQ exists)", e.audio_vq_type),
            ));
        }
        if e.n_head == 0 || !e.n_state.is_multiple_of(e.n_head) {
            return Err(bad(
                path,
                format!(
                    "n_state {} is not a multiple of n_head {}",
                    e.n_state, e.n_head
                ),
            ));
        }
        if e.audio_vq_layers == 0 || e.audio_vq_layers > e.n_layer {
            return Err(bad(
                path,
                format!(
                    "audio_vq_layers {} outside 1..={}",
                    e.audio_vq_layers, e.n_layer
                ),
            ));
        }
        if e.audio_vq_ds_rate == 0 || e.n_window == 0 {
            return Err(bad(
                path,
                "audio_vq_ds_rate and n_window must be positive".into(),
            ));
        }
        if e.audio_vq_codebook_dim != e.n_state {
            return Err(bad(
                path,
                format!(
                    "audio_vq_codebook_dim {} != n_state {}: projected codebooks are not supported",
                    e.audio_vq_codebook_dim, e.n_state
                ),
            ));
        }
        let d = &self.decoder_config.dit_config;
        let n = d.enc_channels.len();
        if n < 2 || d.enc_kernel_sizes.len() != n || d.enc_dilations.len() != n {
            return Err(bad(
                path,
                "enc_channels, enc_kernel_sizes and enc_dilations need the same length (>= 2)"
                    .into(),
            ));
        }
        if d.enc_res2net_scale == 0
            || d.enc_channels
                .iter()
                .any(|c| !c.is_multiple_of(d.enc_res2net_scale))
        {
            return Err(bad(
                path,
                "enc_channels must be multiples of enc_res2net_scale".into(),
            ));
        }
        if d.block_size == 0 || d.repeats == 0 || !d.head_dim.is_multiple_of(2) {
            return Err(bad(
                path,
                "block_size and repeats must be positive, head_dim even".into(),
            ));
        }
        let b = &self.decoder_config.bigvgan_config;
        if b.upsample_rates.len() != b.upsample_kernel_sizes.len()
            || b.resblock_kernel_sizes.len() != b.resblock_dilation_sizes.len()
            || b.resblock_kernel_sizes.is_empty()
        {
            return Err(bad(
                path,
                "bigvgan upsample/resblock lists have mismatched lengths".into(),
            ));
        }
        if b.resblock_dilation_sizes.iter().any(|d| d.len() != 3) {
            return Err(bad(
                path,
                "each resblock_dilation_sizes entry needs 3 dilations".into(),
            ));
        }
        if b.upsample_initial_channel >> b.upsample_rates.len() == 0 {
            return Err(bad(
                path,
                "upsample_initial_channel too small for the number of stages".into(),
            ));
        }
        if b.mel_dim != d.mel_dim {
            return Err(bad(
                path,
                format!("bigvgan mel_dim {} != dit mel_dim {}", b.mel_dim, d.mel_dim),
            ));
        }
        Ok(())
    }

    /// Input samples per code: `160 * 2 * audio_vq_ds_rate` (mel hop, conv stride, VQ stride).
    pub fn samples_per_code(&self) -> usize {
        160 * 2 * self.encoder_config.audio_vq_ds_rate
    }

    /// Waveform samples the vocoder produces per mel frame (product of the upsample rates).
    pub fn vocoder_hop(&self) -> usize {
        self.decoder_config
            .bigvgan_config
            .upsample_rates
            .iter()
            .product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Codec25Config> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "codec25-config-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, json).expect("temp file");
        let r = Codec25Config::from_file(&path);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn defaults_are_the_reference_class_defaults() {
        let c = parse(r#"{"model_type": "qwen3_tts_tokenizer_25hz", "input_sample_rate": 16000}"#)
            .unwrap();
        assert_eq!(c.encoder_config.n_state, 1280);
        assert_eq!(c.encoder_config.audio_vq_layers, 6);
        assert_eq!(c.decoder_config.dit_config.num_hidden_layers, 22);
        assert_eq!(
            c.decoder_config.dit_config.look_backward_layers,
            vec![0, 20]
        );
        assert_eq!(c.vocoder_hop(), 240);
        assert_eq!(c.samples_per_code(), 640);
        assert_eq!(c.decode_upsample_rate, 1920);
    }

    #[test]
    fn inconsistent_configs_are_errors() {
        for (json, needle) in [
            (r#"{}"#, "input_sample_rate 24000"),
            (
                r#"{"model_type": "x", "input_sample_rate": 16000}"#,
                "model_type",
            ),
            (
                r#"{"input_sample_rate": 16000, "encoder_config": {"n_mels": 80}}"#,
                "n_mels",
            ),
            (
                r#"{"input_sample_rate": 16000, "encoder_config": {"audio_vq_layers": 40}}"#,
                "audio_vq_layers",
            ),
            (
                r#"{"input_sample_rate": 16000, "encoder_config": {"audio_vq_codebook_dim": 64}}"#,
                "codebook_dim",
            ),
            (
                r#"{"input_sample_rate": 16000, "decoder_config": {"dit_config": {"enc_dilations": [1]}}}"#,
                "enc_channels",
            ),
            (
                r#"{"input_sample_rate": 16000, "decoder_config": {"bigvgan_config": {"upsample_rates": [2]}}}"#,
                "mismatched",
            ),
        ] {
            let e = parse(json).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
