//! `config.json` of a 12 Hz speech tokenizer (`model_type` `qwen3_tts_tokenizer_12hz`).
//!
//! The structs mirror the released file: the top level with rates and the number of kept
//! quantizers, `encoder_config` (a transformers `MimiConfig`) and `decoder_config`. Missing keys
//! take the reference classes' defaults, unknown keys are ignored. The decoder defaults differ
//! from the released values (e.g. `hidden_size` 1024 vs 512), so a real config always names
//! them; `codebook_dim` has no default in the reference (a config without it crashes there) and
//! is required here too.

use std::path::Path;

use serde::Deserialize;

use qwen3_speech_engine::{Error, Result};

/// The `model_type` of the 12 Hz tokenizer.
pub const MODEL_TYPE: &str = "qwen3_tts_tokenizer_12hz";

/// Top level of `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Codec12Config {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub encoder_config: EncoderConfig,
    pub decoder_config: DecoderConfig,
    /// Code levels kept by `encode` (the encoder computes `encoder_config.num_quantizers`).
    #[serde(default = "d_16")]
    pub encoder_valid_num_quantizers: usize,
    #[serde(default = "d_24000")]
    pub input_sample_rate: u32,
    #[serde(default = "d_24000")]
    pub output_sample_rate: u32,
    /// Output samples per code frame.
    #[serde(default = "d_1920")]
    pub decode_upsample_rate: usize,
    /// Input samples per code frame.
    #[serde(default = "d_1920")]
    pub encode_downsample_rate: usize,
}

/// `encoder_config`: the Mimi encoder (SEANet, transformer, downsample, split RVQ).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EncoderConfig {
    pub sampling_rate: u32,
    /// Code frame rate; absent in configs that let Mimi derive it from the strides.
    #[serde(rename = "_frame_rate", alias = "frame_rate")]
    pub frame_rate: Option<f64>,
    pub audio_channels: usize,
    pub hidden_size: usize,
    pub num_filters: usize,
    pub num_residual_layers: usize,
    /// Decoder-side ratios; the encoder strides are these in reverse order.
    pub upsampling_ratios: Vec<usize>,
    pub kernel_size: usize,
    pub last_kernel_size: usize,
    pub residual_kernel_size: usize,
    pub dilation_growth_rate: usize,
    pub use_causal_conv: bool,
    pub pad_mode: String,
    pub compress: usize,
    pub codebook_size: usize,
    pub codebook_dim: usize,
    pub num_quantizers: usize,
    pub use_conv_shortcut: bool,
    pub vector_quantization_hidden_dimension: usize,
    pub num_semantic_quantizers: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    pub norm_eps: f64,
    pub rope_theta: f64,
    /// Configured but ignored by the reference (its eager/sdpa attention is fully causal).
    pub sliding_window: Option<usize>,
    pub attention_bias: bool,
}

impl Default for EncoderConfig {
    /// `transformers.MimiConfig()` defaults (kyutai/mimi).
    fn default() -> Self {
        EncoderConfig {
            sampling_rate: 24_000,
            frame_rate: None,
            audio_channels: 1,
            hidden_size: 512,
            num_filters: 64,
            num_residual_layers: 1,
            upsampling_ratios: vec![8, 6, 5, 4],
            kernel_size: 7,
            last_kernel_size: 3,
            residual_kernel_size: 3,
            dilation_growth_rate: 2,
            use_causal_conv: true,
            pad_mode: "constant".into(),
            compress: 2,
            codebook_size: 2048,
            codebook_dim: 256,
            num_quantizers: 32,
            use_conv_shortcut: false,
            vector_quantization_hidden_dimension: 256,
            num_semantic_quantizers: 1,
            num_hidden_layers: 8,
            intermediate_size: 2048,
            num_attention_heads: 8,
            num_key_value_heads: 8,
            head_dim: None,
            hidden_act: "gelu".into(),
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            sliding_window: Some(250),
            attention_bias: false,
        }
    }
}

impl EncoderConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Product of the SEANet strides: input samples per transformer frame.
    pub fn hop_length(&self) -> usize {
        self.upsampling_ratios.iter().product()
    }

    /// Mimi's `encodec_frame_rate`: `ceil(sampling_rate / hop)`.
    pub fn encodec_frame_rate(&self) -> f64 {
        (self.sampling_rate as f64 / self.hop_length().max(1) as f64).ceil()
    }

    /// Mimi's `frame_rate`: the configured one, else the rate implied by all strides
    /// (SEANet strides times the stride-2 downsample).
    pub fn code_frame_rate(&self) -> f64 {
        self.frame_rate
            .unwrap_or(self.sampling_rate as f64 / (2 * self.hop_length().max(1)) as f64)
    }

    /// Kernel of the downsample conv (`2 * int(encodec_frame_rate / frame_rate)`), or `None`
    /// when the two rates are equal and Mimi builds no downsample.
    pub fn downsample_kernel(&self) -> Option<usize> {
        let (enc, frame) = (self.encodec_frame_rate(), self.code_frame_rate());
        (enc != frame).then(|| 2 * (enc / frame) as usize)
    }
}

/// `decoder_config` (Qwen3TTSTokenizerV2DecoderConfig).
#[derive(Debug, Clone, Deserialize)]
pub struct DecoderConfig {
    #[serde(default = "d_2048")]
    pub codebook_size: usize,
    /// Width of the quantizer output; the codebooks are `codebook_dim / 2` wide.
    pub codebook_dim: usize,
    #[serde(default = "d_1024")]
    pub hidden_size: usize,
    #[serde(default = "d_1024")]
    pub latent_dim: usize,
    #[serde(default = "d_theta")]
    pub rope_theta: f64,
    #[serde(default = "d_16")]
    pub num_attention_heads: usize,
    #[serde(default = "d_16")]
    pub num_key_value_heads: usize,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "d_72")]
    pub sliding_window: usize,
    #[serde(default = "d_3072")]
    pub intermediate_size: usize,
    #[serde(default = "d_silu")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "d_8")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_16")]
    pub num_quantizers: usize,
    #[serde(default = "d_rates")]
    pub upsample_rates: Vec<usize>,
    #[serde(default = "d_ratios")]
    pub upsampling_ratios: Vec<usize>,
    #[serde(default = "d_1536")]
    pub decoder_dim: usize,
}

impl DecoderConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Output samples per code frame: the product of all upsampling factors.
    pub fn total_upsample(&self) -> usize {
        self.upsample_rates
            .iter()
            .chain(&self.upsampling_ratios)
            .product()
    }
}

fn d_16() -> usize {
    16
}
fn d_8() -> usize {
    8
}
fn d_72() -> usize {
    72
}
fn d_1024() -> usize {
    1024
}
fn d_1536() -> usize {
    1536
}
fn d_1920() -> usize {
    1920
}
fn d_2048() -> usize {
    2048
}
fn d_3072() -> usize {
    3072
}
fn d_24000() -> u32 {
    24_000
}
fn d_theta() -> f64 {
    10_000.0
}
fn d_eps() -> f64 {
    1e-5
}
fn d_silu() -> String {
    "silu".into()
}
fn d_rates() -> Vec<usize> {
    vec![8, 5, 4, 3]
}
fn d_ratios() -> Vec<usize> {
    vec![2, 2]
}

impl Codec12Config {
    /// Reads and validates `config.json` (errors name the file and the field).
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: Codec12Config = qwen3_speech_engine::config::read_json(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Parses and validates config text that came from `path` (used in messages only).
    pub fn from_json(path: &Path, text: &str) -> Result<Self> {
        let cfg: Codec12Config = qwen3_speech_engine::config::parse_json(path, text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks what the port supports and the consistency the reference assumes.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                message,
            })
        };
        if let Some(t) = &self.model_type
            && t != MODEL_TYPE
        {
            return bad(format!(
                "model_type is '{t}', expected '{MODEL_TYPE}' for the 12 Hz tokenizer"
            ));
        }
        let e = &self.encoder_config;
        let d = &self.decoder_config;
        let positive = [
            ("encoder_config.hidden_size", e.hidden_size),
            ("encoder_config.num_filters", e.num_filters),
            ("encoder_config.num_attention_heads", e.num_attention_heads),
            ("encoder_config.num_key_value_heads", e.num_key_value_heads),
            ("encoder_config.codebook_size", e.codebook_size),
            ("encoder_config.codebook_dim", e.codebook_dim),
            ("encoder_config.compress", e.compress),
            ("encoder_config.kernel_size", e.kernel_size),
            ("encoder_config.last_kernel_size", e.last_kernel_size),
            (
                "encoder_config.residual_kernel_size",
                e.residual_kernel_size,
            ),
            ("decoder_config.hidden_size", d.hidden_size),
            ("decoder_config.codebook_size", d.codebook_size),
            ("decoder_config.codebook_dim", d.codebook_dim),
            ("decoder_config.latent_dim", d.latent_dim),
            ("decoder_config.decoder_dim", d.decoder_dim),
            ("decoder_config.num_attention_heads", d.num_attention_heads),
            ("decoder_config.num_key_value_heads", d.num_key_value_heads),
            ("decoder_config.sliding_window", d.sliding_window),
            (
                "encoder_valid_num_quantizers",
                self.encoder_valid_num_quantizers,
            ),
            ("input_sample_rate", self.input_sample_rate as usize),
            ("output_sample_rate", self.output_sample_rate as usize),
        ];
        for (name, v) in positive {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if e.upsampling_ratios.is_empty() || e.upsampling_ratios.contains(&0) {
            return bad("encoder_config.upsampling_ratios must be positive numbers".into());
        }
        if d.upsample_rates.contains(&0) || d.upsampling_ratios.contains(&0) {
            return bad("decoder_config upsampling factors must be positive".into());
        }
        if e.audio_channels != 1 {
            return bad(format!(
                "encoder_config.audio_channels is {}, only mono (1) is supported",
                e.audio_channels
            ));
        }
        if !e.use_causal_conv {
            return bad("encoder_config.use_causal_conv false is not supported".into());
        }
        if e.pad_mode != "constant" {
            return bad(format!(
                "encoder_config.pad_mode '{}' is not supported (expected 'constant')",
                e.pad_mode
            ));
        }
        if e.use_conv_shortcut {
            return bad("encoder_config.use_conv_shortcut true is not supported".into());
        }
        if e.hidden_act != "gelu" {
            return bad(format!(
                "encoder_config.hidden_act '{}' is not supported (expected 'gelu')",
                e.hidden_act
            ));
        }
        if d.hidden_act != "silu" {
            return bad(format!(
                "decoder_config.hidden_act '{}' is not supported (expected 'silu')",
                d.hidden_act
            ));
        }
        if !e.num_attention_heads.is_multiple_of(e.num_key_value_heads)
            || !d.num_attention_heads.is_multiple_of(d.num_key_value_heads)
        {
            return bad("num_attention_heads must be a multiple of num_key_value_heads".into());
        }
        if e.num_semantic_quantizers == 0 || e.num_semantic_quantizers >= e.num_quantizers {
            return bad(format!(
                "encoder_config.num_semantic_quantizers {} must be at least 1 and below \
                 num_quantizers {}",
                e.num_semantic_quantizers, e.num_quantizers
            ));
        }
        if e.vector_quantization_hidden_dimension != e.codebook_dim {
            return bad(format!(
                "encoder_config.vector_quantization_hidden_dimension {} must equal codebook_dim {}",
                e.vector_quantization_hidden_dimension, e.codebook_dim
            ));
        }
        if self.encoder_valid_num_quantizers > e.num_quantizers {
            return bad(format!(
                "encoder_valid_num_quantizers {} exceeds encoder_config.num_quantizers {}",
                self.encoder_valid_num_quantizers, e.num_quantizers
            ));
        }
        if self.encoder_valid_num_quantizers != d.num_quantizers {
            return bad(format!(
                "encoder_valid_num_quantizers {} differs from decoder_config.num_quantizers {}: \
                 the codes the encoder keeps must be the codes the decoder takes",
                self.encoder_valid_num_quantizers, d.num_quantizers
            ));
        }
        if d.num_quantizers < 2 {
            return bad(
                "decoder_config.num_quantizers must be at least 2 (1 semantic + acoustic)".into(),
            );
        }
        if !d.codebook_dim.is_multiple_of(2) {
            return bad(format!(
                "decoder_config.codebook_dim {} must be even",
                d.codebook_dim
            ));
        }
        if !d.decoder_dim.is_multiple_of(1 << d.upsample_rates.len()) {
            return bad(format!(
                "decoder_config.decoder_dim {} cannot be halved {} times",
                d.decoder_dim,
                d.upsample_rates.len()
            ));
        }
        if d.total_upsample() != self.decode_upsample_rate {
            return bad(format!(
                "decode_upsample_rate {} differs from the decoder's upsampling product {}",
                self.decode_upsample_rate,
                d.total_upsample()
            ));
        }
        let enc_hop = e.hop_length()
            * if e.downsample_kernel().is_some() {
                2
            } else {
                1
            };
        if enc_hop != self.encode_downsample_rate {
            return bad(format!(
                "encode_downsample_rate {} differs from the encoder's stride product {enc_hop}",
                self.encode_downsample_rate
            ));
        }
        if e.downsample_kernel() == Some(0) {
            return bad("encoder frame rate above the SEANet rate is not supported".into());
        }
        if e.sampling_rate != self.input_sample_rate {
            return bad(format!(
                "encoder_config.sampling_rate {} differs from input_sample_rate {}",
                e.sampling_rate, self.input_sample_rate
            ));
        }
        Ok(())
    }

    /// Samples per second of the audio that `encode` takes.
    pub fn input_sample_rate(&self) -> u32 {
        self.input_sample_rate
    }

    /// Code frames per second (`input_sample_rate / encode_downsample_rate`).
    pub fn frame_rate(&self) -> f64 {
        self.input_sample_rate as f64 / self.encode_downsample_rate as f64
    }

    /// Code levels per frame (what `encode` returns and `decode` takes).
    pub fn num_quantizers(&self) -> usize {
        self.decoder_config.num_quantizers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASED: &str = r#"{
      "architectures": ["Qwen3TTSTokenizerV2Model"],
      "model_type": "qwen3_tts_tokenizer_12hz",
      "encoder_valid_num_quantizers": 16,
      "input_sample_rate": 24000, "output_sample_rate": 24000,
      "decode_upsample_rate": 1920, "encode_downsample_rate": 1920,
      "encoder_config": {"_frame_rate": 12.5, "model_type": "mimi", "some_new_key": [1]},
      "decoder_config": {"codebook_dim": 512, "hidden_size": 512, "intermediate_size": 1024,
                         "head_dim": 64, "latent_dim": 1024, "num_semantic_quantizers": 1,
                         "semantic_codebook_size": 4096}
    }"#;

    #[test]
    fn released_layout_and_defaults() {
        let c = Codec12Config::from_json(Path::new("config.json"), RELEASED).unwrap();
        let e = &c.encoder_config;
        assert_eq!(e.hop_length(), 960);
        assert_eq!(e.encodec_frame_rate(), 25.0);
        assert_eq!(e.code_frame_rate(), 12.5);
        assert_eq!(e.downsample_kernel(), Some(4));
        assert_eq!(e.head_dim(), 64);
        let d = &c.decoder_config;
        assert_eq!(d.total_upsample(), 1920);
        assert_eq!(d.head_dim(), 64);
        assert_eq!(d.sliding_window, 72);
        assert_eq!(d.decoder_dim, 1536);
        assert_eq!(c.num_quantizers(), 16);
        assert_eq!(c.frame_rate(), 12.5);
    }

    #[test]
    fn inconsistent_configs_are_errors() {
        let p = Path::new("x/config.json");
        let no_dim = RELEASED.replace("\"codebook_dim\": 512,", "");
        let err = Codec12Config::from_json(p, &no_dim)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("codebook_dim") && err.contains("x/config.json"),
            "{err}"
        );
        let wrong_type = RELEASED.replace("qwen3_tts_tokenizer_12hz", "qwen3_tts_tokenizer_25hz");
        let err = Codec12Config::from_json(p, &wrong_type)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model_type"), "{err}");
        let wrong_rate = RELEASED.replace(
            "\"decode_upsample_rate\": 1920",
            "\"decode_upsample_rate\": 960",
        );
        let err = Codec12Config::from_json(p, &wrong_rate)
            .unwrap_err()
            .to_string();
        assert!(err.contains("decode_upsample_rate"), "{err}");
        let too_many = RELEASED.replace(
            "\"encoder_valid_num_quantizers\": 16",
            "\"encoder_valid_num_quantizers\": 40",
        );
        assert!(Codec12Config::from_json(p, &too_many).is_err());
    }
}
